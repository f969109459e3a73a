"""Values that mean nothing, refused where they are received; a schedule stepped past its
horizon, said once. Through the public ``lrlab.torch.LRScheduler`` and the schedules, with
torch's own schedulers as the peer where they have an opinion (``OneCycleLR`` raises past
its ``total_steps``)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lrlab.schedules import (
    constant,
    cosine,
    cosine_restarts,
    cyclic,
    linear,
    one_cycle,
    parse,
    polynomial,
    sequence,
    step_decay,
    warmup,
    wsd,
)
from lrlab.torch import LRScheduler, horizon


def _opt(lr: float = 0.1, **group: object) -> torch.optim.Optimizer:
    model = torch.nn.Linear(2, 1)
    return torch.optim.SGD([{"params": model.parameters(), **group}], lr=lr)


def _stepped(schedule, steps: int, **group: object) -> tuple[LRScheduler, list[warnings.WarningMessage]]:
    opt = _opt(**group)
    sched = LRScheduler(opt, schedule)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(steps):
            opt.step()
            sched.step()
    return sched, [w for w in caught if "horizon" in str(w.message)]


# ------------------------------------------------------------ past the horizon: warned once

HORIZONS = [
    pytest.param(one_cycle(0.1, total_steps=20), 20.0, id="one_cycle"),
    pytest.param(cosine(0.1, total_steps=20), 20.0, id="cosine"),
    pytest.param(polynomial(0.1, total_steps=20, power=2.0), 20.0, id="polynomial"),
    pytest.param(linear(0.1, 0.01, total_steps=20), 20.0, id="linear"),
    pytest.param(wsd(0.1, total_steps=20, warmup_steps=2, decay_steps=5), 20.0, id="wsd"),
    pytest.param(warmup(cosine(0.1, total_steps=20), steps=5), 25.0, id="warmup+cosine"),
    pytest.param(sequence([constant(0.1), cosine(0.1, total_steps=10)], [10]), 20.0, id="sequence"),
]


@pytest.mark.parametrize(("schedule", "steps"), HORIZONS)
def test_a_schedule_stepped_past_its_horizon_warns_exactly_once(schedule, steps):
    assert horizon(schedule) == steps
    opt = _opt()
    sched = LRScheduler(opt, schedule)
    for _ in range(int(steps)):  # a loop of exactly total_steps optimizer steps: no warning
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            opt.step()
            sched.step()
    with pytest.warns(UserWarning, match=r"stepped past its horizon: step 21|stepped past its horizon: step 26") as w:
        for _ in range(3 * int(steps)):
            opt.step()
            sched.step()
    past = [x for x in w if "horizon" in str(x.message)]
    assert len(past) == 1
    assert str(schedule) in str(past[0].message)
    assert past[0].filename == __file__  # the user's line, not lrlab's or torch's
    # The value held is the schedule's last one, as documented.
    assert sched.get_last_lr()[0] == pytest.approx(float(schedule(steps)), abs=1e-15)


def test_torch_one_cycle_raises_where_lrlab_warns():
    """The peer: torch's OneCycleLR raises on the step lrlab warns at."""
    opt = _opt()
    peer = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=20)
    for _ in range(20):
        opt.step()
        peer.step()
    with pytest.raises(ValueError, match="Tried to step 21 times"):
        opt.step()
        peer.step()
    _, past = _stepped(one_cycle(0.1, total_steps=20), 21)
    assert len(past) == 1


@pytest.mark.parametrize(
    "schedule",
    [constant(0.1), step_decay(0.1, step_size=3), cosine_restarts(0.1, period=5),
     cyclic(0.01, 0.1, step_size=4)],
    ids=["constant", "step_decay", "cosine_restarts", "cyclic"],
)
def test_schedules_without_a_horizon_never_warn(schedule):
    assert horizon(schedule) is None
    _, past = _stepped(schedule, 200)
    assert past == []


def test_the_warning_comes_back_after_a_resume_past_the_horizon_once():
    sched, past = _stepped(cosine(0.1, total_steps=10), 30)
    assert len(past) == 1
    state = sched.state_dict()
    assert "_horizon_of" not in state and "_horizon" not in state  # caches are not saved
    torch.save(state, buffer := __import__("io").BytesIO())
    buffer.seek(0)
    assert torch.load(buffer, weights_only=True)["last_epoch"] == 30


def test_a_fractional_epoch_past_the_horizon_warns_too():
    opt = _opt()
    sched = LRScheduler(opt, cosine(0.1, total_steps=4))
    with pytest.warns(UserWarning, match="horizon"):
        sched.step(4.5)


# ------------------------------------------------------------ lr_mult

BAD_MULTS = [math.nan, -1.0, -1e-12, math.inf, -math.inf, "2", True, None, [1.0], torch.tensor([1.0, 2.0])]


@pytest.mark.parametrize("mult", BAD_MULTS, ids=repr)
def test_a_meaningless_lr_mult_is_refused_at_construction(mult):
    opt = _opt(lr_mult=mult)
    before = opt.param_groups[0]["lr"]
    with pytest.raises(ValueError, match=r"param group 0: lr_mult must be a finite number >= 0, got "):
        LRScheduler(opt, constant(0.1))
    assert opt.param_groups[0]["lr"] == before


@pytest.mark.parametrize("mult", [math.nan, -0.5, "0.1"], ids=repr)
def test_an_lr_mult_set_later_is_refused_at_the_step_that_reads_it(mult):
    opt = _opt(lr_mult=1.0)
    sched = LRScheduler(opt, constant(0.1))
    opt.param_groups[0]["lr_mult"] = mult
    opt.step()
    with pytest.raises(ValueError, match=r"lr_mult must be a finite number >= 0, got " + repr(mult).replace(".", r"\.")):
        sched.step()
    assert math.isfinite(opt.param_groups[0]["lr"]) and opt.param_groups[0]["lr"] >= 0


@pytest.mark.parametrize("mult", [0.0, 0.5, 2, np.float32(0.25), torch.tensor(3.0)], ids=repr)
def test_a_real_lr_mult_multiplies(mult):
    opt = _opt(lr_mult=mult)
    sched = LRScheduler(opt, constant(0.1))
    opt.step()
    sched.step()
    assert sched.get_last_lr() == [pytest.approx(0.1 * float(mult))]


@pytest.mark.parametrize("last_epoch", [-2, math.nan, 1.5, "3", True], ids=repr)
def test_a_meaningless_last_epoch_argument_is_refused(last_epoch):
    with pytest.raises(ValueError, match=r"last_epoch must be a whole number >= -1"):
        LRScheduler(_opt(), constant(0.1), last_epoch=last_epoch)


# ------------------------------------------------------------ steps that are not numbers

BAD_STEPS = ["5", b"5", "nan", True, np.bool_(False), ["5"], np.array(["1", "2"]), np.array([True]),
             1 + 2j, np.array([1 + 0j]), np.datetime64("2020-01-01"), None, object()]  # fmt: skip


@pytest.mark.parametrize("t", BAD_STEPS, ids=lambda t: type(t).__name__ + ":" + repr(t)[:20])
@pytest.mark.parametrize("schedule", [constant(0.1), cosine(0.1, total_steps=10), one_cycle(0.1, total_steps=10)],
                         ids=["constant", "cosine", "one_cycle"])  # fmt: skip
def test_a_step_that_is_not_a_number_is_a_value_error(schedule, t):
    with pytest.raises(ValueError, match=r"step t must be "):
        schedule(t)


@pytest.mark.parametrize("t", [5, 5.0, np.int64(5), np.float32(5.0), torch.tensor(5), [5], (5,), np.array([5])],
                         ids=lambda t: type(t).__name__)  # fmt: skip
def test_real_steps_give_the_same_value(t):
    schedule = cosine(0.1, total_steps=10)
    assert np.asarray(schedule(t)).reshape(-1)[0] == schedule(5)


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=6))
def test_any_string_step_is_refused(text):
    with pytest.raises(ValueError, match="step t must be a number or an array of numbers"):
        cosine(0.1, total_steps=10)(text)


# ------------------------------------------------------------ corrupted scheduler states

def _state(**changes: object) -> dict:
    opt = _opt()
    sched = LRScheduler(opt, cosine(0.1, total_steps=100))
    for _ in range(5):
        opt.step()
        sched.step()
    return {**sched.state_dict(), **changes}


CORRUPT = [
    pytest.param({"last_epoch": math.nan}, r"last_epoch must be a finite number >= 0 \(or -1\), got nan", id="nan"),
    pytest.param({"last_epoch": -5}, r"last_epoch must be a finite number >= 0 \(or -1\), got -5", id="negative"),
    pytest.param({"last_epoch": -0.5}, r"last_epoch must be a finite number >= 0 \(or -1\), got -0.5", id="neg-frac"),
    pytest.param({"last_epoch": math.inf}, r"last_epoch must be a finite number >= 0 \(or -1\), got inf", id="inf"),
    pytest.param({"last_epoch": "7"}, r"last_epoch must be a number, got '7'", id="string"),
    pytest.param({"last_epoch": None}, r"last_epoch must be a number, got None", id="none"),
    pytest.param({"last_epoch": True}, r"last_epoch must be a number, got True", id="bool"),
    pytest.param({"_step_count": -1}, r"_step_count must be a whole number >= 0, got -1", id="step-count"),
    pytest.param({"_step_count": 2.5}, r"_step_count must be a whole number >= 0, got 2.5", id="step-count-frac"),
    pytest.param({"schedule": "cosine"}, r"schedule must be a schedule's to_dict\(\) or None", id="schedule-str"),
    pytest.param({"momentum": 0.9}, r"momentum must be a schedule's to_dict\(\) or None", id="momentum-num"),
    pytest.param({"_plateau_states": "x"}, r"_plateau_states must be a list of dicts", id="plateaus"),
]


@pytest.mark.parametrize(("changes", "message"), CORRUPT)
def test_a_corrupted_state_is_refused_at_load_and_changes_nothing(changes, message):
    opt = _opt()
    sched = LRScheduler(opt, cosine(0.1, total_steps=100))
    opt.step()
    sched.step()
    before = (sched.last_epoch, sched.get_last_lr(), opt.param_groups[0]["lr"])
    with pytest.raises(ValueError, match=message):
        sched.load_state_dict(_state(**changes))
    assert (sched.last_epoch, sched.get_last_lr(), opt.param_groups[0]["lr"]) == before
    opt.step()
    sched.step()  # still works
    assert sched.last_epoch == 2


@pytest.mark.parametrize("state", [None, [1, 2], "state", 3], ids=repr)
def test_a_state_that_is_not_a_dict_is_refused(state):
    sched = LRScheduler(_opt(), constant(0.1))
    with pytest.raises(ValueError, match=r"state_dict must be a dict from LRScheduler\.state_dict"):
        sched.load_state_dict(state)


def test_a_good_state_still_loads_and_continues_exactly():
    sched = LRScheduler(opt := _opt(), cosine(0.1, total_steps=100))
    sched.load_state_dict(_state())
    opt.step()
    sched.step()
    assert sched.last_epoch == 6
    assert sched.get_last_lr()[0] == cosine(0.1, total_steps=100)(6)


def test_a_fractional_last_epoch_state_loads():
    sched = LRScheduler(_opt(), cosine(0.1, total_steps=100))
    sched.load_state_dict(_state(last_epoch=2.5))
    assert sched.get_last_lr()[0] == cosine(0.1, total_steps=100)(2.5)


def test_a_schedule_spec_with_garbage_is_one_line():
    with pytest.raises(ValueError):
        LRScheduler(_opt(), "cosine(lr=0.1, total_steps='x')")
    with pytest.raises(ValueError):
        parse("cosine(lr=nan, total_steps=10)")


# ------------------------------------------------------------ properties (hypothesis)

ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=80, deadline=None)
@given(ANY_FLOAT)
def test_any_lr_mult_is_either_applied_or_refused(mult):
    opt = _opt(lr_mult=mult)
    if math.isfinite(mult) and mult >= 0:
        sched = LRScheduler(opt, constant(0.1))
        assert sched.get_last_lr() == [0.1 * mult]
    else:
        with pytest.raises(ValueError, match="lr_mult must be a finite number >= 0"):
            LRScheduler(opt, constant(0.1))


@settings(max_examples=80, deadline=None)
@given(st.one_of(ANY_FLOAT, st.integers(min_value=-10**6, max_value=10**6)))
def test_any_loaded_last_epoch_either_loads_and_steps_or_is_refused(epoch):
    opt = _opt()
    sched = LRScheduler(opt, cosine(0.1, total_steps=100))
    state = {**sched.state_dict(), "last_epoch": epoch}
    valid = math.isfinite(epoch) and (epoch >= 0 or epoch == -1)
    if not valid:
        with pytest.raises(ValueError, match="last_epoch"):
            sched.load_state_dict(state)
        assert sched.last_epoch == 0
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # past the horizon: warned, and tested above
        sched.load_state_dict(state)
        opt.step()
        sched.step()
    assert math.isfinite(sched.get_last_lr()[0]) and sched.get_last_lr()[0] >= 0


@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=1, max_size=8))
def test_any_array_of_steps_is_either_evaluated_or_refused(steps):
    schedule = one_cycle(0.1, total_steps=50)
    if all(math.isfinite(t) and t >= 0 for t in steps):
        values = schedule(np.asarray(steps))
        assert np.isfinite(values).all() and (values >= 0).all()
        assert values.tolist() == [schedule(t) for t in steps]
    else:
        with pytest.raises(ValueError, match="step t must be finite and >= 0"):
            schedule(steps)


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=4, max_value=60), st.integers(min_value=0, max_value=30))
def test_the_horizon_warning_comes_exactly_when_torch_would_raise(total, extra):
    """OneCycleLR raises at the (total + 1)-th step; lrlab warns there, once, and not before."""
    _, past = _stepped(one_cycle(0.1, total_steps=total), total + extra)
    assert len(past) == (1 if extra > 0 else 0)
