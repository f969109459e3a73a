"""Construction validates: a bad parameter raises ValueError naming it and what is allowed."""

from __future__ import annotations

import math

import pytest

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
