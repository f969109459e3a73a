"""Values equal timm's CosineLRScheduler (warmup_prefix=True) where the semantics coincide.

timm cannot be installed here (its torchvision dependency has no build for this torch),
so ``timm_lr`` below transcribes ``CosineLRScheduler._get_lr`` from timm's published
source (huggingface/pytorch-image-models, timm/scheduler/cosine_lr.py, k_decay=1, no
noise) line for line, including its cycle index from a rounded logarithm.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from lrlab import schedules as S

RTOL = 1e-9


def timm_lr(
    t: int,
    *,
    base_lr: float,
    t_initial: int,
    lr_min: float = 0.0,
    cycle_mul: float = 1.0,
    cycle_decay: float = 1.0,
    cycle_limit: int = 1,
    warmup_t: int = 0,
    warmup_lr_init: float = 0.0,
    warmup_prefix: bool = True,
) -> tuple[float, int | None]:
    """timm's learning rate at step ``t`` and the cycle index it used (None in warmup)."""
    warmup_step = (base_lr - warmup_lr_init) / warmup_t if warmup_t else 1
    if t < warmup_t:
        return warmup_lr_init + t * warmup_step, None
    if warmup_prefix:
        t = t - warmup_t
    if cycle_mul != 1:
        i = math.floor(math.log(1 - t / t_initial * (1 - cycle_mul), cycle_mul))
        t_i = cycle_mul**i * t_initial
        t_curr = t - (1 - cycle_mul**i) / (1 - cycle_mul) * t_initial
    else:
        i = t // t_initial
        t_i = t_initial
        t_curr = t - (t_initial * i)
    gamma = cycle_decay**i
    lr_max = base_lr * gamma
    if i < cycle_limit:
        return lr_min + 0.5 * (lr_max - lr_min) * (1 + math.cos(math.pi * t_curr / t_i)), i
    return lr_min, i


def lrlab_equivalent(base_lr, t_initial, lr_min, cycle_mul, cycle_decay, warmup_t, warmup_lr_init):
    restarts = S.cosine_restarts(
        base_lr, period=t_initial, period_mult=cycle_mul, decay=cycle_decay, final_lr=lr_min
    )
    return S.warmup(restarts, steps=warmup_t, start_lr=warmup_lr_init)


PARAMS = [
    pytest.param(base, t0, lr_min, mul, decay, warm, init, id=f"timm{i}")
    for i, (base, (t0, mul), lr_min, decay, (warm, init)) in enumerate(
        itertools.product(
            [0.1, 5e-4],
            [(1, 1.0), (10, 1.0), (7, 2.0), (10, 1.5), (10, 3.0), (4, 2.5)],
            [0.0, 1e-5],
            [1.0, 0.5, 0.8],
            [(0, 0.0), (5, 1e-6), (20, 0.0)],
        )
    )
]


@pytest.mark.parametrize(
    ("base_lr", "t_initial", "lr_min", "cycle_mul", "cycle_decay", "warmup_t", "warmup_lr_init"), PARAMS
)
def test_warmup_cosine_restarts_equals_timm_cosine_lr_scheduler(
    base_lr, t_initial, lr_min, cycle_mul, cycle_decay, warmup_t, warmup_lr_init
):
    ours = lrlab_equivalent(base_lr, t_initial, lr_min, cycle_mul, cycle_decay, warmup_t, warmup_lr_init)
    restarts = ours.schedule
    steps = np.arange(1500)
    theirs = [
        timm_lr(
            int(t),
            base_lr=base_lr,
            t_initial=t_initial,
            lr_min=lr_min,
            cycle_mul=cycle_mul,
            cycle_decay=cycle_decay,
            cycle_limit=10**9,
            warmup_t=warmup_t,
            warmup_lr_init=warmup_lr_init,
        )
        for t in steps
    ]
    values = np.asarray([v for v, _ in theirs])
    # Where timm's rounded logarithm puts a step one cycle low, that step is a restart
    # step and timm returns the end of the previous cycle; everywhere else both agree.
    after = np.maximum(steps - warmup_t, 0).astype(np.float64)
    exact_cycle = restarts.cycle_of(after)
    timm_cycle = np.asarray([-1 if i is None else i for _, i in theirs], dtype=np.float64)
    off = (timm_cycle >= 0) & (timm_cycle != exact_cycle)
    assert np.all(timm_cycle[off] == exact_cycle[off] - 1)
    assert np.all(restarts.cycle_start(exact_cycle[off]) == after[off])
    # atol: after a thousand cycles decaying by 0.5, values are subnormal (~1e-316), where
    # float64 keeps only a few digits.
    np.testing.assert_allclose(ours(steps)[~off], values[~off], rtol=RTOL, atol=1e-300)


def test_timm_rounded_logarithm_lands_one_cycle_low_where_lrlab_is_exact():
    # cycle_mul=3, t_initial=10: cycles start at 0, 10, 40, 130, 400, 1210, ...
    base_lr, t_initial, cycle_mul = 0.1, 10, 3.0
    restart = 10 * (3**5 - 1) // 2
    assert restart == 1210
    lr, cycle = timm_lr(restart, base_lr=base_lr, t_initial=t_initial, cycle_mul=cycle_mul, cycle_limit=10**9)
    # log(243, 3) rounds to 4.999..., so timm puts step 1210 at the very end of cycle 4
    # (the cosine's bottom, lr_min) instead of the start of cycle 5 (the peak).
    assert math.log(1 - restart / t_initial * (1 - cycle_mul), cycle_mul) < 5
    assert cycle == 4
    assert lr == pytest.approx(0.0, abs=1e-15)
    ours = S.cosine_restarts(base_lr, period=t_initial, period_mult=cycle_mul)
    assert ours.cycle_of(np.float64(restart)) == 5
    assert ours(restart) == base_lr
    # One step later timm has caught up and both agree again.
    lr_next, cycle_next = timm_lr(
        restart + 1, base_lr=base_lr, t_initial=t_initial, cycle_mul=cycle_mul, cycle_limit=10**9
    )
    assert cycle_next == 5
    assert ours(restart + 1) == pytest.approx(lr_next, rel=RTOL)


def test_timm_cycle_limit_holds_lr_min_and_so_does_a_sequence():
    # timm's cycle_limit=k holds lr_min after k cycles; lrlab writes that as a sequence.
    base_lr, t_initial, lr_min, limit = 0.1, 10, 1e-4, 3
    ours = S.sequence(
        [S.cosine_restarts(base_lr, period=t_initial, final_lr=lr_min), S.constant(lr_min)],
        boundaries=[limit * t_initial],
    )
    steps = np.arange(60)
    theirs = [
        timm_lr(int(t), base_lr=base_lr, t_initial=t_initial, lr_min=lr_min, cycle_limit=limit)[0]
        for t in steps
    ]
    np.testing.assert_allclose(ours(steps), theirs, rtol=RTOL)
