"""Values equal torch.optim.lr_scheduler's where the semantics coincide (rtol 1e-9).

torch's ExponentialLR, CosineAnnealingLR, PolynomialLR and LinearLR are recursive:
each step multiplies the previous learning rate by a ratio, so rounding accumulates
(about one ulp per step), and CosineAnnealingLR / LinearLR subtract nearly equal numbers
where the value approaches eta_min or zero, where torch's own relative error can grow
without bound. Those comparisons therefore also allow an absolute 1e-12 * lr (far below
any learning rate that matters). With the parameter sets below they agree to rtol 1e-9
even without it; it guards the comparison, not our values.
"""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
import torch
from torch.optim import lr_scheduler as L

from lrlab import schedules as S

RTOL = 1e-9


def torch_lrs(make_scheduler, lr: float, steps: int) -> np.ndarray:
    """The learning rate torch's scheduler sets for steps 0 .. steps - 1."""
    param = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    optimizer = torch.optim.SGD([param], lr=lr)
    scheduler = make_scheduler(optimizer)
    values = [optimizer.param_groups[0]["lr"]]
    for _ in range(steps - 1):
        optimizer.step()
        scheduler.step()
        values.append(optimizer.param_groups[0]["lr"])
    return np.asarray(values, dtype=np.float64)


def ours(schedule: S.Schedule, steps: int) -> np.ndarray:
    return schedule(np.arange(steps, dtype=np.float64))


def assert_same(schedule, make_scheduler, lr, steps, atol=0.0):
    np.testing.assert_allclose(
        ours(schedule, steps), torch_lrs(make_scheduler, lr, steps), rtol=RTOL, atol=atol
    )


def cases(rows, name):
    return [pytest.param(*row, id=f"{name}{i}") for i, row in enumerate(rows)]


rng = random.Random(20170301)
LRS = [1.0, 0.1, 3e-4, 0.0123456789, 2.5]


@pytest.mark.parametrize(
    ("lr", "step_size", "gamma"),
    cases(itertools.product([0.1, 3e-4, 2.5], [1, 7, 30], [0.1, 0.5, 0.93]), "step"),
)
def test_step_decay_equals_steplr(lr, step_size, gamma):
    assert_same(
        S.step_decay(lr, step_size=step_size, gamma=gamma),
        lambda opt: L.StepLR(opt, step_size=step_size, gamma=gamma),
        lr,
        steps=120,
    )


MULTISTEP = [
    (rng.choice(LRS), sorted(rng.sample(range(1, 200), rng.randint(1, 5))), rng.choice([0.1, 0.5, 0.77]))
    for _ in range(10)
] + [(0.1, [10, 10, 50], 0.5), (1.0, [1], 0.1)]  # repeated milestones count twice, as in torch


@pytest.mark.parametrize(("lr", "milestones", "gamma"), cases(MULTISTEP, "multistep"))
def test_multistep_equals_multisteplr(lr, milestones, gamma):
    assert_same(
        S.multistep(lr, milestones=milestones, gamma=gamma),
        lambda opt: L.MultiStepLR(opt, milestones=milestones, gamma=gamma),
        lr,
        steps=220,
    )


@pytest.mark.parametrize(
    ("lr", "gamma"), cases(itertools.product([1.0, 3e-4, 0.05], [0.5, 0.9, 0.99, 0.999, 1.0]), "exp")
)
def test_exponential_equals_exponentiallr(lr, gamma):
    assert_same(
        S.exponential(lr, decay_rate=gamma),
        lambda opt: L.ExponentialLR(opt, gamma=gamma),
        lr,
        steps=600,
        atol=1e-12 * lr,
    )


@pytest.mark.parametrize(
    ("lr", "total", "final_lr"),
    cases(
        [
            (lr, t, f * lr)
            for lr, t, f in itertools.product([1.0, 3e-4], [1, 2, 17, 100, 457], [0.0, 0.01, 0.5])
        ],
        "cos",
    ),
)
def test_cosine_equals_cosineannealinglr_up_to_t_max(lr, total, final_lr):
    assert_same(
        S.cosine(lr, total_steps=total, final_lr=final_lr),
        lambda opt: L.CosineAnnealingLR(opt, T_max=total, eta_min=final_lr),
        lr,
        steps=total + 1,
        atol=1e-12 * lr,
    )


@pytest.mark.parametrize(
    ("lr", "period", "mult", "final_lr"),
    cases(
        [
            (lr, p, m, f * lr)
            for lr, p, m, f in itertools.product([0.1, 2.0], [1, 5, 13], [1, 2, 3], [0.0, 0.1])
        ],
        "sgdr",
    ),
)
def test_cosine_restarts_equals_cosineannealingwarmrestarts(lr, period, mult, final_lr):
    assert_same(
        S.cosine_restarts(lr, period=period, period_mult=mult, final_lr=final_lr),
        lambda opt: L.CosineAnnealingWarmRestarts(opt, T_0=period, T_mult=mult, eta_min=final_lr),
        lr,
        steps=500,
    )


CYCLIC = [
    (base, base * ratio, up, down, mode, gamma)
    for (base, ratio), (up, down), mode, gamma in itertools.product(
        [(1e-3, 100.0), (0.05, 2.0)],
        [(10, None), (7, 23), (30, 4), (1, 1)],
        ["triangular", "triangular2", "exp_range"],
        [0.99, 0.9995],
    )
    if not (mode != "exp_range" and gamma != 0.99)
]


@pytest.mark.parametrize(("base_lr", "max_lr", "up", "down", "mode", "gamma"), cases(CYCLIC, "clr"))
def test_cyclic_equals_cycliclr(base_lr, max_lr, up, down, mode, gamma):
    assert_same(
        S.cyclic(base_lr, max_lr, step_size=up, step_size_down=down, mode=mode, gamma=gamma),
        lambda opt: L.CyclicLR(
            opt,
            base_lr=base_lr,
            max_lr=max_lr,
            step_size_up=up,
            step_size_down=down,
            mode=mode,
            gamma=gamma,
            cycle_momentum=False,
        ),
        base_lr,
        steps=300,
    )


ONE_CYCLE = [
    (max_lr, total, pct, anneal, div, final_div, three)
    for (max_lr, total, pct), anneal, (div, final_div), three in itertools.product(
        [(0.1, 100, 0.3), (1.0, 333, 0.25), (3e-3, 57, 0.1), (2.0, 1000, 0.45)],
        ["cos", "linear"],
        [(25.0, 1e4), (10.0, 100.0)],
        [False, True],
    )
]


@pytest.mark.parametrize(
    ("max_lr", "total", "pct", "anneal", "div", "final_div", "three_phase"), cases(ONE_CYCLE, "1cycle")
)
def test_one_cycle_equals_onecyclelr(max_lr, total, pct, anneal, div, final_div, three_phase):
    assert_same(
        S.one_cycle(
            max_lr,
            total_steps=total,
            pct_start=pct,
            anneal=anneal,
            div_factor=div,
            final_div_factor=final_div,
            three_phase=three_phase,
        ),
        lambda opt: L.OneCycleLR(
            opt,
            max_lr=max_lr,
            total_steps=total,
            pct_start=pct,
            anneal_strategy=anneal,
            div_factor=div,
            final_div_factor=final_div,
            three_phase=three_phase,
            cycle_momentum=False,
        ),
        max_lr,
        steps=total,
    )


@pytest.mark.parametrize(
    ("lr", "total", "power"),
    cases(itertools.product([1.0, 3e-4], [1, 5, 40, 250], [0.5, 1.0, 2.0, 3.7]), "poly"),
)
def test_polynomial_equals_polynomiallr(lr, total, power):
    assert_same(
        S.polynomial(lr, total_steps=total, power=power),
        lambda opt: L.PolynomialLR(opt, total_iters=total, power=power),
        lr,
        steps=total + 20,
        atol=1e-12 * lr,
    )


@pytest.mark.parametrize(
    ("lr", "start", "end", "total"),
    cases(
        [
            (lr, start, end, total)
            for lr, (start, end), total in itertools.product(
                [1.0, 3e-4], [(1 / 3, 1.0), (0.01, 1.0), (1.0, 0.0), (1.0, 0.1), (0.5, 0.25)], [1, 5, 100]
            )
        ],
        "lin",
    ),
)
def test_linear_equals_linearlr(lr, start, end, total):
    assert_same(
        S.linear(lr * start, lr * end, total_steps=total),
        lambda opt: L.LinearLR(opt, start_factor=start, end_factor=end, total_iters=total),
        lr,
        steps=total + 20,
        atol=1e-12 * lr,
    )


def test_cosine_holds_final_lr_where_cosineannealinglr_rises_again():
    total, lr, final = 20, 1.0, 0.01
    theirs = torch_lrs(lambda opt: L.CosineAnnealingLR(opt, T_max=total, eta_min=final), lr, 2 * total + 1)
    ours_values = ours(S.cosine(lr, total_steps=total, final_lr=final), 2 * total + 1)
    assert theirs[2 * total] == pytest.approx(lr)  # torch's cosine keeps going: back up at 2 T_max
    np.testing.assert_array_equal(ours_values[total:], final)


def test_one_cycle_holds_its_final_value_where_onecyclelr_raises():
    total = 50
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.1)
    scheduler = L.OneCycleLR(optimizer, max_lr=0.1, total_steps=total)
    for _ in range(total - 1):
        optimizer.step()
        scheduler.step()
    last = optimizer.param_groups[0]["lr"]
    optimizer.step()
    scheduler.step()  # step total: torch extrapolates past the final value
    optimizer.step()
    with pytest.raises(ValueError, match="Tried to step"):
        scheduler.step()
    schedule = S.one_cycle(0.1, total_steps=total)
    assert schedule(total - 1) == pytest.approx(last, rel=RTOL)
    assert schedule(total) == schedule(10 * total) == schedule(total - 1)


def test_cyclic_cycle_limit_and_sine_shape_extend_cycliclr():
    base, peak, size = 0.01, 0.1, 10
    triangle = S.cyclic(base, peak, step_size=size, cycles=2)
    assert triangle(2 * 2 * size) == triangle(10**6) == base
    sine = S.cyclic(base, peak, step_size=size, shape="sine")
    # Same ends and midpoint as the triangle, rounder in between.
    for t in (0, size // 2, size, 2 * size):
        assert sine(t) == pytest.approx(S.cyclic(base, peak, step_size=size)(t))
    assert sine(2) < S.cyclic(base, peak, step_size=size)(2)
