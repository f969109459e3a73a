"""``plateau``: its values, spec strings and validation, and the pure state machine
``observe`` against torch's ``ReduceLROnPlateau`` itself (the LR and every counter equal,
with ``==``, after every metric)."""

from __future__ import annotations

import math
import pickle
import time

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lrlab import schedules as S
from lrlab.schedules.plateau import (
    MAX_REDUCTIONS,
    PlateauState,
    active_plateaus,
    find_plateaus,
    in_effect,
    initial_states,
    observe,
    reduce_on_plateau,
)

EXACT = settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


def torch_reduction(value: float, factor: float, min_lr: float, eps: float) -> float:
    """torch's ``_reduce_lr`` on one param group holding ``value``."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=value)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=factor, min_lr=min_lr, eps=eps)
    scheduler._reduce_lr(0)
    return optimizer.param_groups[0]["lr"]


# ---------------------------------------------------------------- values


def test_no_reductions_is_a_constant():
    s = S.plateau(0.1)
    assert s(0) == s(10**9) == 0.1
    np.testing.assert_array_equal(s(np.arange(5.0)), np.full(5, 0.1))


@pytest.mark.parametrize(
    ("lr", "factor", "min_lr", "eps"),
    [
        pytest.param(0.1, 0.1, 0.0, 1e-8, id="defaults"),
        pytest.param(1.0, 0.5, 0.0, 0.0, id="to-zero"),
        pytest.param(0.3, 0.7, 0.01, 1e-8, id="min-lr-floor"),
        pytest.param(3e-4, 0.9, 0.0, 1e-8, id="stops-at-eps"),
        pytest.param(0.1, 0.3, 0.5, 1e-8, id="min-lr-above-lr"),
        pytest.param(2e-8, 0.5, 0.0, 1e-8, id="lowered-by-exactly-eps"),  # 2e-8 - 1e-8 == 1e-8: kept
    ],
)
def test_reductions_repeat_torchs_reduction(lr, factor, min_lr, eps):
    expected = lr
    for reductions in range(40):
        assert S.plateau(lr, factor=factor, min_lr=min_lr, eps=eps, reductions=reductions)(7) == expected
        expected = torch_reduction(expected, factor, min_lr, eps)


def test_reduced_counts_only_reductions_that_lower_the_lr():
    s = S.plateau(0.1, factor=0.5, min_lr=0.05)
    once = s.reduced()
    assert once.reductions == 1 and once(0) == 0.05
    assert once.reduced() is once  # at min_lr: nothing left to lower


def test_plateau_pickles_and_keeps_its_value():
    s = S.warmup(S.plateau(0.2, factor=0.5, reductions=2), steps=3)
    assert pickle.loads(pickle.dumps(s)) == s
    assert pickle.loads(pickle.dumps(s))(10) == 0.05


# ---------------------------------------------------------------- spec and validation


@pytest.mark.parametrize(
    "schedule",
    [
        pytest.param(S.plateau(0.1), id="defaults"),
        pytest.param(S.plateau(0.1, reductions=3), id="reductions"),
        pytest.param(
            S.plateau(
                3e-4,
                factor=0.5,
                patience=0,
                threshold=0.0,
                threshold_mode="abs",
                cooldown=2,
                min_lr=1e-6,
                mode="max",
                eps=0.0,
            ),
            id="every-parameter",
        ),
        pytest.param(S.warmup(S.plateau(0.1, factor=0.5, reductions=1), steps=500), id="warmup"),
        pytest.param(
            S.sequence([S.cosine(0.1, total_steps=100), S.plateau(0.01, patience=3)], boundaries=[100]),
            id="sequence",
        ),
    ],
)
def test_spec_and_dict_round_trip(schedule):
    assert S.parse(str(schedule)) == schedule
    assert S.from_dict(schedule.to_dict()) == schedule


def test_spec_prints_reductions_only_when_nonzero():
    assert str(S.plateau(0.1, factor=0.5)) == "plateau(lr=0.1, factor=0.5)"
    assert str(S.plateau(0.1, reductions=2)) == "plateau(lr=0.1, reductions=2)"
    assert S.parse('plateau(0.1, mode="max", patience=3)') == S.plateau(0.1, mode="max", patience=3)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        pytest.param({"lr": -0.1}, "lr must be >= 0", id="lr"),
        pytest.param({"factor": 1.0}, "factor must be in (0, 1)", id="factor-one"),
        pytest.param({"factor": 0.0}, "factor must be in (0, 1)", id="factor-zero"),
        pytest.param({"patience": -1}, "patience must be a whole number >= 0", id="patience-negative"),
        pytest.param({"patience": 2.5}, "patience must be a whole number >= 0", id="patience-fraction"),
        pytest.param({"patience": True}, "patience must be a whole number >= 0", id="patience-bool"),
        pytest.param({"cooldown": -2}, "cooldown must be a whole number >= 0", id="cooldown"),
        pytest.param({"threshold": -1e-4}, "threshold must be a finite number >= 0", id="threshold"),
        pytest.param({"threshold": math.nan}, "threshold must be finite", id="threshold-nan"),
        pytest.param(
            {"threshold_mode": "relative"}, "threshold_mode must be one of 'rel', 'abs'", id="threshold-mode"
        ),
        pytest.param({"mode": "minimum"}, "mode must be one of 'min', 'max'", id="mode"),
        pytest.param({"min_lr": -1e-6}, "min_lr must be >= 0", id="min-lr"),
        pytest.param({"eps": -1.0}, "eps must be a finite number >= 0", id="eps"),
        pytest.param({"reductions": -1}, "reductions must be a whole number >= 0", id="reductions"),
        pytest.param(
            {"reductions": MAX_REDUCTIONS + 1}, f"reductions must be <= {MAX_REDUCTIONS}", id="reductions-max"
        ),
    ],
)
def test_invalid_parameter_is_named(kwargs, fragment):
    params = {"lr": 0.1, **kwargs}
    with pytest.raises(ValueError) as info:
        S.plateau(**params)
    assert fragment in str(info.value)


def test_whole_float_counts_are_ints():
    s = S.plateau(0.1, patience=3.0, cooldown=np.int64(2))
    assert type(s.patience) is int and type(s.cooldown) is int
    assert S.parse(str(s)) == s


def test_largest_reductions_stay_fast():
    # The slowest value to compute: a factor close to 1 with eps=0 lowers the LR every time.
    start = time.process_time()
    S.parse(f"plateau(lr=1.0, factor=0.9999999, eps=0.0, reductions={MAX_REDUCTIONS})")
    assert time.process_time() - start < 1.0


# ---------------------------------------------------------------- the state machine against torch


class TorchPlateau:
    """torch's ReduceLROnPlateau on one SGD param group: the reference."""

    def __init__(self, schedule: S.Plateau) -> None:
        self.optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=schedule.lr)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer,
            mode=schedule.mode,
            factor=schedule.factor,
            patience=schedule.patience,
            threshold=schedule.threshold,
            threshold_mode=schedule.threshold_mode,
            cooldown=schedule.cooldown,
            min_lr=schedule.min_lr,
            eps=schedule.eps,
        )

    def step(self, metric: float) -> None:
        self.scheduler.step(metric)

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    @property
    def state(self) -> PlateauState:
        s = self.scheduler
        return PlateauState(s.best, s.num_bad_epochs, s.cooldown_counter, s.last_epoch)


def tie(schedule: S.Plateau, best: float) -> float:
    """The metric exactly at the threshold from ``best`` (not better, by torch's rule)."""
    if schedule.threshold_mode == "rel":
        return (
            best * (1.0 - schedule.threshold) if schedule.mode == "min" else best * (schedule.threshold + 1.0)
        )
    return best - schedule.threshold if schedule.mode == "min" else best + schedule.threshold


def metric_from(token, schedule: S.Plateau, best: float, previous: float) -> float:
    """A drawn token as a metric: a number, NaN, a repeat, or a tie at the threshold (or
    one ulp past it) from the reference's best so far."""
    if isinstance(token, float):
        return token
    if token == "nan":
        return math.nan
    if token == "same" or not math.isfinite(best):
        return previous
    at = tie(schedule, best)
    if token == "tie":
        return at
    return math.nextafter(at, -math.inf if schedule.mode == "min" else math.inf)  # "past"


tokens = st.one_of(
    st.sampled_from([1.0, 2.0, 0.5, 0.0, -1.0]),  # few values: plateaus and exact repeats
    st.floats(min_value=-1e3, max_value=1e3, allow_nan=False),
    st.sampled_from(["nan", "same", "tie", "past"]),
)
metric_sequences = st.lists(tokens, min_size=1, max_size=60)


@st.composite
def plateaus(draw, mode, threshold_mode, cooldown, patience, with_min_lr):
    lr = draw(st.sampled_from([0.1, 1.0, 3e-4, 0.0123456789]))
    return S.plateau(
        lr,
        factor=draw(st.one_of(st.sampled_from([0.1, 0.5]), st.floats(min_value=0.01, max_value=0.99))),
        patience=patience,
        threshold=draw(st.sampled_from([1e-4, 0.0, 0.1])),
        threshold_mode=threshold_mode,
        cooldown=cooldown,
        min_lr=lr * draw(st.sampled_from([1e-3, 0.3])) if with_min_lr else 0.0,
        mode=mode,
        eps=draw(st.sampled_from([1e-8, 0.0])),
    )


def combinations():
    for mode in ("min", "max"):
        for threshold_mode in ("rel", "abs"):
            for cooldown in (0, 2):
                for patience in (0, 1, 3):
                    for with_min_lr in (False, True):
                        name = f"{mode}-{threshold_mode}-cooldown{cooldown}-patience{patience}-{'min_lr' if with_min_lr else 'no_min_lr'}"
                        yield pytest.param(mode, threshold_mode, cooldown, patience, with_min_lr, id=name)


@pytest.mark.parametrize(
    ("mode", "threshold_mode", "cooldown", "patience", "with_min_lr"), list(combinations())
)
@settings(EXACT, max_examples=25)
@given(data=st.data())
def test_observe_equals_reduce_lr_on_plateau(mode, threshold_mode, cooldown, patience, with_min_lr, data):
    schedule = data.draw(plateaus(mode, threshold_mode, cooldown, patience, with_min_lr))
    reference = TorchPlateau(schedule)
    tree, states = schedule, initial_states(schedule)
    previous = 1.0
    for step, token in enumerate(data.draw(metric_sequences)):
        metric = metric_from(token, schedule, reference.scheduler.best, previous)
        reference.step(metric)
        tree, states = observe(tree, step, metric, states)
        assert tree(step + 1) == reference.lr
        assert states == (reference.state,)
        previous = metric


def test_nan_is_a_bad_epoch_as_in_torch():
    schedule = S.plateau(1.0, factor=0.5, patience=1)
    reference = TorchPlateau(schedule)
    tree, states = schedule, None
    for step, metric in enumerate([1.0, math.nan, math.nan, math.nan, 0.5, math.nan]):
        reference.step(metric)
        tree, states = observe(tree, step, metric, states)
        assert tree(0) == reference.lr and states == (reference.state,)
    assert states[0].best == 0.5
    assert tree.reductions == 1  # the second NaN in a row was more than patience=1


def test_max_mode_starts_from_minus_infinity():
    assert PlateauState.start(S.plateau(0.1, mode="max")).best == -math.inf
    assert PlateauState.start(S.plateau(0.1)).best == math.inf


def test_cooldown_ignores_bad_epochs():
    s = S.plateau(1.0, factor=0.5, patience=0, cooldown=2)
    state = PlateauState.start(s)
    values = []
    for metric in [1.0, 2.0, 2.0, 2.0, 2.0]:
        s, state = reduce_on_plateau(s, state, metric)
        values.append(s(0))
    # Reduced after the first bad metric, then two metrics of cooldown, then again.
    assert values == [1.0, 0.5, 0.5, 0.5, 0.25]


def test_observe_is_pure():
    s = S.plateau(1.0, factor=0.5, patience=0)
    states = initial_states(s)
    first = observe(s, 0, 1.0, states)
    assert observe(s, 0, 1.0, states) == first
    assert s.reductions == 0 and states == initial_states(s)


def test_observe_takes_zero_dim_tensors():
    _, states = observe(S.plateau(1.0), 0, torch.tensor(0.25))
    assert states[0].best == 0.25


def test_states_must_match_the_plateau_nodes():
    with pytest.raises(ValueError, match="one state per plateau node"):
        observe(S.plateau(1.0), 0, 1.0, states=())


# ---------------------------------------------------------------- inside warmup and sequence


def test_warmup_counts_metrics_only_after_the_warmup():
    inner = S.plateau(1.0, factor=0.5, patience=1)
    tree, states = S.warmup(inner, steps=4, start_lr=0.2), None
    reference = TorchPlateau(inner)
    metrics = [9.0, 9.0, 9.0, 9.0, 3.0, 3.0, 3.0, 2.0, 2.0, 2.0, 2.0, 2.0]
    lrs = []
    for step, metric in enumerate(metrics):
        lrs.append(tree(step))
        tree, states = observe(tree, step, metric, states)
        if step >= 4:
            reference.step(metric)
            assert tree(step + 1) == reference.lr
    # The ramp from start_lr to the plateau's LR; the warmup's metrics were never counted.
    assert lrs[:5] == [0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
    assert states[0].last_epoch == len(metrics) - 4
    assert tree.schedule.reductions == 3


def test_sequence_counts_metrics_for_the_part_in_effect():
    first, second = S.plateau(1.0, factor=0.5, patience=0), S.plateau(0.1, factor=0.5, patience=0)
    tree = S.sequence([first, S.constant(0.3), second], boundaries=[3, 5])
    states = None
    for step in range(8):
        assert active_plateaus(tree, step) == ((0,) if step < 3 else () if step < 5 else (1,))
        tree, states = observe(tree, step, 1.0, states)
    # Three metrics each: the first is the best, the next two are each a reduction.
    assert [p.reductions for p in find_plateaus(tree)] == [2, 2]
    assert [s.last_epoch for s in states] == [3, 3]
    assert tree(0) == 0.25 and tree(3) == 0.3 and tree(7) == 0.025


def test_nested_trees_are_rebuilt_along_the_path():
    inner = S.sequence(
        [S.constant(0.5), S.warmup(S.plateau(1.0, factor=0.5, patience=0), steps=2)], boundaries=[10]
    )
    tree = S.warmup(inner, steps=5)
    assert active_plateaus(tree, 16) == () and active_plateaus(tree, 17) == (0,)
    states = None
    for step in range(17, 20):
        tree, states = observe(tree, step, 1.0, states)
    assert find_plateaus(tree)[0].reductions == 2
    assert tree(100) == 0.25 and S.parse(str(tree)) == tree


def test_in_effect_describes_only_warmup_and_sequence():
    assert in_effect(S.cosine(0.1, total_steps=10), 3) == []
    assert in_effect(S.warmup(S.constant(1.0), steps=2), 1) == [(S.constant(1.0), -1, False)]
