"""lrlab.torch.LRScheduler with a plateau schedule: ``step(metric)`` is torch's
``ReduceLROnPlateau.step(val_loss)``, checked against torch itself (the LRs equal with
``==`` after every step), inside a warmup, and across a save and a resume."""

from __future__ import annotations

import io
import math
import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lrlab import schedules as S
from lrlab.torch import LRScheduler

torch.set_num_threads(1)

EXACT = settings(
    max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


def sgd(lr: float = 0.0, **group) -> torch.optim.SGD:
    return torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], **group}], lr=lr)


def torch_reference(
    schedule: S.Plateau,
) -> tuple[torch.optim.SGD, torch.optim.lr_scheduler.ReduceLROnPlateau]:
    optimizer = sgd(schedule.lr)
    return optimizer, torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode=schedule.mode,
        factor=schedule.factor,
        patience=schedule.patience,
        threshold=schedule.threshold,
        threshold_mode=schedule.threshold_mode,
        cooldown=schedule.cooldown,
        min_lr=schedule.min_lr,
        eps=schedule.eps,
    )


def lr(optimizer: torch.optim.Optimizer) -> float:
    return optimizer.param_groups[0]["lr"]


# Metrics: a few values (plateaus, exact repeats), any value, NaN, and ties exactly at the
# threshold from torch's best so far (or one ulp past it), resolved as the run goes.
tokens = st.one_of(
    st.sampled_from([1.0, 2.0, 0.5, 0.0, -1.0]),
    st.floats(min_value=-1e3, max_value=1e3, allow_nan=False),
    st.sampled_from(["nan", "same", "tie", "past"]),
)


def metric_from(token, schedule: S.Plateau, best: float, previous: float) -> float:
    if isinstance(token, float):
        return token
    if token == "nan":
        return math.nan
    if token == "same" or not math.isfinite(best):
        return previous
    rel = schedule.threshold_mode == "rel"
    if schedule.mode == "min":
        at = best * (1.0 - schedule.threshold) if rel else best - schedule.threshold
    else:
        at = best * (schedule.threshold + 1.0) if rel else best + schedule.threshold
    if token == "tie":
        return at
    return math.nextafter(at, -math.inf if schedule.mode == "min" else math.inf)


def combinations():
    for mode in ("min", "max"):
        for threshold_mode in ("rel", "abs"):
            for cooldown in (0, 2):
                for patience in (0, 1, 3):
                    for min_lr in ("no_min_lr", "min_lr"):
                        yield pytest.param(
                            mode,
                            threshold_mode,
                            cooldown,
                            patience,
                            min_lr == "min_lr",
                            id=f"{mode}-{threshold_mode}-cooldown{cooldown}-patience{patience}-{min_lr}",
                        )


@pytest.mark.parametrize(
    ("mode", "threshold_mode", "cooldown", "patience", "with_min_lr"), list(combinations())
)
@EXACT
@given(data=st.data())
def test_step_metric_equals_reduce_lr_on_plateau(mode, threshold_mode, cooldown, patience, with_min_lr, data):
    base = data.draw(st.sampled_from([0.1, 1.0, 3e-4, 0.0123456789]))
    schedule = S.plateau(
        base,
        factor=data.draw(st.one_of(st.sampled_from([0.1, 0.5]), st.floats(min_value=0.01, max_value=0.99))),
        patience=patience,
        threshold=data.draw(st.sampled_from([1e-4, 0.0, 0.1])),
        threshold_mode=threshold_mode,
        cooldown=cooldown,
        min_lr=base * data.draw(st.sampled_from([1e-3, 0.3])) if with_min_lr else 0.0,
        mode=mode,
        eps=data.draw(st.sampled_from([1e-8, 0.0])),
    )
    reference_optimizer, reference = torch_reference(schedule)
    optimizer = sgd()
    scheduler = LRScheduler(optimizer, schedule)
    assert lr(optimizer) == lr(reference_optimizer)
    previous = 1.0
    for token in data.draw(st.lists(tokens, min_size=1, max_size=60)):
        metric = metric_from(token, schedule, reference.best, previous)
        reference_optimizer.step()
        reference.step(metric)
        optimizer.step()
        scheduler.step(metric)
        assert lr(optimizer) == lr(reference_optimizer)
        assert scheduler.get_last_lr() == reference.get_last_lr()
        previous = metric


def test_warmup_then_plateau_counts_only_metrics_after_the_warmup():
    inner = S.plateau(0.1, factor=0.5, patience=2, cooldown=1)
    optimizer = sgd()
    scheduler = LRScheduler(optimizer, S.warmup(inner, steps=5))
    reference_optimizer, reference = torch_reference(inner)
    # Falling during the warmup (ignored there: it would set a best no later metric beats).
    during_warmup = [0.001] * 5
    metrics = [*during_warmup, 3.0, 2.0, 2.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    lrs = [lr(optimizer)]
    for step, metric in enumerate(metrics):
        optimizer.step()
        scheduler.step(metric)
        lrs.append(lr(optimizer))
        if step >= 5:
            reference_optimizer.step()
            reference.step(metric)
            assert lr(optimizer) == lr(reference_optimizer)
    # The ramp, as the schedule gives it, up to the plateau's LR.
    assert lrs[:6] == [S.warmup(inner, steps=5)(t) for t in range(6)]
    assert lrs[0] == 0.0 and lrs[5] == 0.1 and lrs[:6] == sorted(lrs[:6])
    assert lr(optimizer) == 0.025  # reduced twice (counting the warmup's 0.001 would reduce it more)


def test_step_without_metric_advances_the_warmup():
    # Per-batch step() through the warmup, step(metric) once per epoch after it.
    optimizer = sgd()
    scheduler = LRScheduler(optimizer, S.warmup(S.plateau(1.0, factor=0.5, patience=0), steps=4))
    for _ in range(4):
        optimizer.step()
        scheduler.step()
    assert lr(optimizer) == 1.0
    for metric, expected in [(1.0, 1.0), (1.0, 0.5), (0.5, 0.5), (0.7, 0.25)]:
        optimizer.step()
        scheduler.step(metric)
        assert lr(optimizer) == expected


def test_lr_mult_scales_the_value_after_min_lr():
    optimizer = sgd(lr_mult=0.1)
    scheduler = LRScheduler(optimizer, S.plateau(1.0, factor=0.5, patience=0, min_lr=0.4))
    for metric in [1.0, 1.0, 1.0, 1.0]:
        optimizer.step()
        scheduler.step(metric)
    # The schedule is held at min_lr=0.4; the group gets 0.4 * lr_mult (torch would floor at 0.4).
    assert scheduler.schedule(0) == 0.4
    assert lr(optimizer) == 0.4 * 0.1


def test_metric_may_be_a_tensor():
    optimizer = sgd()
    scheduler = LRScheduler(optimizer, S.plateau(1.0, patience=0))
    for metric in [torch.tensor(1.0), torch.tensor(1.0)]:
        optimizer.step()
        scheduler.step(metric)
    assert lr(optimizer) == 0.1


def test_without_a_plateau_step_takes_a_fractional_epoch():
    optimizer = sgd()
    scheduler = LRScheduler(optimizer, S.cosine(1.0, total_steps=10))
    optimizer.step()
    scheduler.step(2.5)
    assert scheduler.last_epoch == 2.5 and lr(optimizer) == S.cosine(1.0, total_steps=10)(2.5)


# ---------------------------------------------------------------- the missing metric


def test_stepping_without_a_metric_warns_once_when_the_plateau_is_in_effect():
    optimizer = sgd()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scheduler = LRScheduler(optimizer, S.warmup(S.plateau(0.1), steps=3))
        for _ in range(3):  # the warmup: nothing to reduce yet
            optimizer.step()
            scheduler.step()
        assert caught == []
        for _ in range(5):
            optimizer.step()
            scheduler.step()
    assert len(caught) == 1
    assert "step(metric)" in str(caught[0].message)
    assert caught[0].filename == __file__


def test_no_warning_when_metrics_are_given():
    optimizer = sgd()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scheduler = LRScheduler(optimizer, S.plateau(0.1))
        for _ in range(5):
            optimizer.step()
            scheduler.step(1.0)
        optimizer.step()
        scheduler.step()  # a step without a metric after metrics came: no reminder


# ---------------------------------------------------------------- resume


SCHEDULE = S.warmup(S.plateau(0.1, factor=0.5, patience=2, cooldown=2, min_lr=1e-3), steps=3)
METRICS = [5.0, 4.0, 3.0, 2.0, 2.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]


def run(scheduler: LRScheduler, optimizer: torch.optim.Optimizer, metrics: list[float]) -> list[float]:
    lrs = []
    for metric in metrics:
        optimizer.step()
        scheduler.step(metric)
        lrs.append(lr(optimizer))
    return lrs


@pytest.mark.parametrize("stop", [1, 4, 7, 9, 12, 16])
def test_resume_continues_the_identical_sequence(stop):
    optimizer = sgd()
    uninterrupted = run(LRScheduler(optimizer, SCHEDULE), optimizer, METRICS)

    optimizer = sgd()
    scheduler = LRScheduler(optimizer, SCHEDULE)
    before = run(scheduler, optimizer, METRICS[:stop])
    buffer = io.BytesIO()
    torch.save(scheduler.state_dict(), buffer)
    buffer.seek(0)

    optimizer = sgd()  # rebuilt from scratch, as after a crash
    scheduler = LRScheduler(optimizer, SCHEDULE)
    scheduler.load_state_dict(torch.load(buffer, weights_only=True))
    assert lr(optimizer) == before[-1]
    assert before + run(scheduler, optimizer, METRICS[stop:]) == uninterrupted


def test_state_dict_carries_each_plateau_nodes_state():
    optimizer = sgd()
    scheduler = LRScheduler(optimizer, SCHEDULE)
    run(scheduler, optimizer, METRICS[:12])
    state = scheduler.state_dict()
    assert state["schedule"]["schedule"]["reductions"] == scheduler.schedule.schedule.reductions > 0
    (plateau,) = state["_plateau_states"]
    assert set(plateau) == {"best", "num_bad_epochs", "cooldown_counter", "last_epoch"}
    assert plateau["best"] == 1.0 and plateau["last_epoch"] == 12 - 3


def test_loading_a_state_for_another_tree_is_refused():
    optimizer = sgd()
    state = LRScheduler(optimizer, S.constant(0.1)).state_dict()
    state["_plateau_states"] = [{"best": 1.0, "num_bad_epochs": 0, "cooldown_counter": 0, "last_epoch": 1}]
    with pytest.raises(ValueError, match="1 plateau states for a schedule with 0 plateau nodes"):
        LRScheduler(sgd(), S.constant(0.1)).load_state_dict(state)
