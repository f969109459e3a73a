"""Construction validates: a bad parameter raises ValueError naming it and what is allowed."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from schedule_strategies import FAMILY_STRATEGIES

from lrlab import schedules as S

NAN, INF = math.nan, math.inf

CASES = [
    # negative learning rates
    pytest.param(lambda: S.constant(-0.1), "lr must be >= 0", id="constant-negative-lr"),
    pytest.param(lambda: S.cosine(-1e-3, total_steps=10), "lr must be >= 0", id="cosine-negative-lr"),
    pytest.param(lambda: S.cosine(0.1, 10, final_lr=-1.0), "final_lr must be >= 0", id="negative-final-lr"),
    pytest.param(lambda: S.linear(0.1, -0.1, 10), "end_lr must be >= 0", id="linear-negative-end"),
    pytest.param(lambda: S.cyclic(-0.1, 1.0, 10), "base_lr must be >= 0", id="cyclic-negative-base"),
    pytest.param(lambda: S.one_cycle(-1.0, 100), "max_lr must be >= 0", id="one-cycle-negative-max"),
    pytest.param(
        lambda: S.warmup(S.constant(1.0), 5, start_lr=-1), "start_lr must be >= 0", id="warmup-start"
    ),
    # zero / negative step sizes
    pytest.param(lambda: S.step_decay(0.1, step_size=0), "step_size must be > 0", id="step-size-zero"),
    pytest.param(lambda: S.step_decay(0.1, step_size=-3), "step_size must be > 0", id="step-size-negative"),
    pytest.param(lambda: S.cyclic(0.1, 1.0, step_size=0), "step_size must be > 0", id="cyclic-step-zero"),
    pytest.param(
        lambda: S.cyclic(0.1, 1.0, 10, step_size_down=-1),
        "step_size_down must be > 0",
        id="cyclic-down-negative",
    ),
    pytest.param(lambda: S.cosine(0.1, total_steps=0), "total_steps must be > 0", id="cosine-total-zero"),
    pytest.param(
        lambda: S.polynomial(0.1, total_steps=-5), "total_steps must be > 0", id="poly-total-negative"
    ),
    pytest.param(
        lambda: S.exponential(0.1, 0.5, decay_steps=0), "decay_steps must be > 0", id="exp-decay-steps"
    ),
    pytest.param(lambda: S.cosine_restarts(0.1, period=0), "period must be > 0", id="restarts-period"),
    pytest.param(
        lambda: S.inverse_sqrt(0.1, warmup_steps=0), "warmup_steps must be >= 1", id="inv-sqrt-warmup"
    ),
    pytest.param(lambda: S.one_cycle(0.1, total_steps=0), "total_steps must be > 1", id="one-cycle-total"),
    pytest.param(lambda: S.multistep(0.1, milestones=[10, -1]), "milestones[1] must be >= 0", id="milestone"),
    pytest.param(
        lambda: S.multistep(0.1, milestones=[]), "milestones must be a non-empty", id="no-milestones"
    ),
    pytest.param(lambda: S.multistep(0.1, milestones=[20, 10]), "non-decreasing", id="milestones-order"),
    pytest.param(
        lambda: S.sequence([S.constant(1), S.constant(2)], boundaries=[0]),
        "boundaries[0] must be > 0",
        id="bound",
    ),
    pytest.param(
        lambda: S.sequence([S.constant(1), S.constant(2)], boundaries=[]),
        "boundaries must have one",
        id="n-bounds",
    ),
    # max_lr < base_lr
    pytest.param(lambda: S.cyclic(1.0, 0.1, 10), "max_lr must be >= base_lr", id="max-below-base"),
    # unknown mode / shape / anneal
    pytest.param(lambda: S.cyclic(0.1, 1.0, 10, mode="triangle3"), "mode must be one of", id="unknown-mode"),
    pytest.param(lambda: S.cyclic(0.1, 1.0, 10, shape="square"), "shape must be one of", id="unknown-shape"),
    pytest.param(lambda: S.one_cycle(1.0, 100, anneal="exp"), "anneal must be one of", id="unknown-anneal"),
    pytest.param(
        lambda: S.wsd(1.0, 100, 10, 10, decay_shape="step"),
        "decay_shape must be one of",
        id="unknown-decay-shape",
    ),
    # NaN and inf anywhere
    pytest.param(lambda: S.constant(NAN), "lr must be finite", id="nan-lr"),
    pytest.param(lambda: S.constant(INF), "lr must be finite", id="inf-lr"),
    pytest.param(lambda: S.cosine(0.1, total_steps=INF), "total_steps must be finite", id="inf-total"),
    pytest.param(lambda: S.step_decay(0.1, 10, gamma=NAN), "gamma must be finite", id="nan-gamma"),
    pytest.param(lambda: S.cyclic(0.1, INF, 10), "max_lr must be finite", id="inf-max-lr"),
    pytest.param(
        lambda: S.cosine_restarts(0.1, 10, period_mult=INF), "period_mult must be", id="inf-period-mult"
    ),
    pytest.param(
        lambda: S.cosine_restarts(0.1, 10, period_mult=NAN), "period_mult must be", id="nan-period-mult"
    ),
    pytest.param(lambda: S.one_cycle(1.0, 100, pct_start=NAN), "pct_start must be finite", id="nan-pct"),
    pytest.param(
        lambda: S.multistep(0.1, milestones=[NAN]), "milestones[0] must be finite", id="nan-milestone"
    ),
    pytest.param(lambda: S.warmup(S.constant(1.0), steps=INF), "steps must be finite", id="inf-warmup-steps"),
    # factors restricted to (0, 1]
    pytest.param(lambda: S.step_decay(0.1, 10, gamma=1.5), "gamma must be in (0, 1]", id="gamma-above-one"),
    pytest.param(
        lambda: S.exponential(0.1, decay_rate=0.0), "decay_rate must be in (0, 1]", id="decay-rate-zero"
    ),
    pytest.param(
        lambda: S.cosine_restarts(0.1, 10, period_mult=0.5), "period_mult must be", id="period-mult"
    ),
    pytest.param(lambda: S.cyclic(0.1, 1.0, 10, cycles=0), "cycles must be a whole number >= 1", id="cycles"),
    # other structural limits
    pytest.param(lambda: S.wsd(1.0, 100, 60, 50), "warmup_steps + decay_steps must be <=", id="wsd-overlap"),
    pytest.param(
        lambda: S.one_cycle(1.0, 100, pct_start=0.005), "pct_start * total_steps", id="one-cycle-pct"
    ),
    pytest.param(lambda: S.one_cycle(1.0, 100.5), "total_steps must be a whole number", id="one-cycle-float"),
    pytest.param(
        lambda: S.exponential(0.1, 0.5, staircase="yes"), "staircase must be true or false", id="flag"
    ),
    pytest.param(lambda: S.constant("0.1"), "lr must be a number", id="string-lr"),
    pytest.param(lambda: S.constant(True), "lr must be a number", id="bool-lr"),
    pytest.param(lambda: S.warmup(0.1, steps=5), "schedule must be a schedule", id="warmup-of-number"),
]


@pytest.mark.parametrize(("make", "message"), CASES)
def test_bad_parameter_raises_value_error_naming_it(make, message):
    with pytest.raises(ValueError) as info:
        make()
    assert message in str(info.value)
    # One line, and it says what was received.
    assert "\n" not in str(info.value)
    assert "got" in str(info.value)


@pytest.mark.parametrize(
    "spec",
    [
        "cosine(lr=-0.1, total_steps=10)",
        "cyclic(base_lr=1.0, max_lr=0.1, step_size=10)",
        'cyclic(base_lr=0.1, max_lr=1.0, step_size=10, mode="sawtooth")',
        "step_decay(lr=0.1, step_size=0)",
    ],
)
def test_parse_reports_the_same_validation_error_at_the_parameter(spec):
    with pytest.raises(S.SpecError) as info:
        S.parse(spec)
    name = info.value.reason.split(": ", 1)[1].split(" ", 1)[0]
    # The position points at the argument the message names.
    assert spec[info.value.position :].startswith(name)


# ---------------------------------------------------------------- extreme values
# Each parameter is a finite number here; the combination overflows to inf, gives NaN, or
# divides steps by a count so small that the quotient overflows.
EXTREME = [
    pytest.param(lambda: S.step_decay(0.1, step_size=1e-300), "step_size", id="tiny-step-size"),
    pytest.param(lambda: S.exponential(0.1, 0.5, decay_steps=1e-300), "decay_steps", id="tiny-decay-steps"),
    pytest.param(lambda: S.inverse_time(0.1, 0.0, decay_steps=1e-300), "decay_steps", id="inv-time-tiny"),
    pytest.param(lambda: S.polynomial(0.1, total_steps=1e-300), "total_steps", id="poly-tiny-total"),
    pytest.param(lambda: S.linear(0.0, 0.1, total_steps=1e-300), "total_steps", id="linear-tiny-total"),
    pytest.param(lambda: S.cosine(0.1, total_steps=1e-300), "total_steps", id="cosine-tiny-total"),
    pytest.param(lambda: S.cosine_restarts(0.1, period=1e-300), "period", id="restarts-tiny-period"),
    pytest.param(lambda: S.cosine_restarts(0.1, 10, period_mult=1e300), "period_mult", id="huge-period-mult"),
    pytest.param(lambda: S.cyclic(0.1, 1.0, step_size=1e-300), "step_size", id="cyclic-tiny-step"),
    pytest.param(
        lambda: S.cyclic(0.1, 1.0, 10, step_size_down=1e-300), "step_size_down", id="cyclic-tiny-down"
    ),
    pytest.param(lambda: S.cyclic(0.1, 1.0, 10, cycles=10**400), "cycles", id="cyclic-huge-cycles"),
    pytest.param(lambda: S.one_cycle(1e300, 100, div_factor=1e-10), "max_lr", id="one-cycle-huge-start"),
    pytest.param(
        lambda: S.one_cycle(1.0, 100, div_factor=1e-300, final_div_factor=1e-300),
        "div_factor",
        id="one-cycle-tiny-divisors",
    ),
    pytest.param(lambda: S.one_cycle(1.0, total_steps=10**400), "total_steps", id="one-cycle-huge-int"),
    pytest.param(lambda: S.inverse_sqrt(1e300, warmup_steps=1e10), "lr", id="inv-sqrt-huge-lr"),
    pytest.param(lambda: S.wsd(1e300, 1e12, warmup_steps=1e10, decay_steps=10), "lr", id="wsd-huge-lr"),
    pytest.param(lambda: S.wsd(0.1, 100, warmup_steps=1e-300, decay_steps=10), "warmup_steps", id="wsd-tiny"),
    pytest.param(lambda: S.warmup(S.constant(0.1), steps=1e-300), "steps", id="warmup-tiny-steps"),
    pytest.param(
        lambda: S.sequence([S.constant(0.1), S.constant(0.2)], boundaries=[1e-300]),
        "boundaries[0]",
        id="sequence-tiny-boundary",
    ),
    pytest.param(lambda: S.multistep(0.1, milestones=[5, 1e-300]), "milestones[1]", id="tiny-milestone"),
    pytest.param(lambda: S.constant(10**400), "lr", id="huge-int-lr"),
    pytest.param(lambda: S.cosine_restarts(0.1, 10, period_mult=10**400), "period_mult", id="huge-int-mult"),
]


@pytest.mark.parametrize(("make", "parameter"), EXTREME)
def test_parameters_whose_values_overflow_raise_value_error_naming_them(make, parameter):
    with pytest.raises(ValueError) as info:
        make()
    message = str(info.value)
    assert message.startswith(f"{parameter} "), message
    assert "\n" not in message
    assert "got" in message


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: S.constant(1e300), id="constant"),
        pytest.param(lambda: S.cosine(1e300, total_steps=1e300, final_lr=1e-300), id="cosine"),
        pytest.param(lambda: S.exponential(1e300, decay_rate=1e-300, decay_steps=1e300), id="exponential"),
        pytest.param(lambda: S.inverse_time(1e300, decay_rate=1e300), id="inverse-time"),
        pytest.param(lambda: S.step_decay(1e-300, step_size=1e300, gamma=1e-300), id="step-decay"),
        pytest.param(lambda: S.cyclic(0.0, 1e300, step_size=1e300, mode="triangular2"), id="cyclic"),
        pytest.param(lambda: S.one_cycle(1e300, 100), id="one-cycle"),
        pytest.param(lambda: S.inverse_sqrt(1e300, warmup_steps=1), id="inverse-sqrt"),
        pytest.param(lambda: S.warmup(S.constant(1e300), steps=1e300, start_lr=1e-300), id="warmup"),
        pytest.param(lambda: S.polynomial(1e-300, total_steps=0.5, power=1e300), id="polynomial"),
    ],
)
def test_extreme_values_that_stay_finite_are_accepted(make):
    schedule = make()
    values = schedule(np.array([0.0, 1.0, 1e6, 2.0**53]))
    assert np.all(np.isfinite(values))


@pytest.mark.parametrize("family", S.FAMILIES)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_number_parameter_rejects_nan_and_inf(family, data):
    schedule = data.draw(FAMILY_STRATEGIES[family])
    spec = schedule.to_dict()
    # Top-level numbers and the numbers in lists (milestones, boundaries).
    places = [(key, None) for key, value in spec.items() if type(value) in (int, float)]
    for key, value in spec.items():
        if isinstance(value, list):
            places += [(key, i) for i, item in enumerate(value) if type(item) in (int, float)]
    assume(places)
    key, index = data.draw(st.sampled_from(places))
    bad = data.draw(st.sampled_from([NAN, INF, -INF]))
    if index is None:
        spec[key] = bad
    else:
        spec[key][index] = bad
    with pytest.raises(ValueError, match=re.escape(key if index is None else f"{key}[{index}]")):
        S.from_dict(spec)


def test_parse_points_at_the_parameter_that_overflows():
    spec = "inverse_sqrt(lr=1e300, warmup_steps=1e10)"
    with pytest.raises(S.SpecError) as info:
        S.parse(spec)
    assert "lr is out of range" in str(info.value)
    assert spec[info.value.position :].startswith("lr=")


def test_huge_steps_give_values_not_overflow_errors():
    # A cycle count that overflows (t / step_size = inf) is no error. Values are promised
    # finite up to step 2**53 only: far beyond, a cosine restart's position is NaN.
    assert S.step_decay(0.1, step_size=0.5)(1.7e308) == 0.0
    assert isinstance(S.cosine_restarts(0.1, period=0.5, decay=0.5)(1.7e308), float)
    assert isinstance(S.cosine_restarts(0.1, period=0.5, period_mult=10.0)(1.7e308), float)
    with pytest.raises(ValueError, match="step t must be finite"):
        S.constant(0.1)(10**400)
