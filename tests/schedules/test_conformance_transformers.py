"""Values equal Hugging Face transformers' schedules where the semantics coincide (rtol 1e-9)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from lrlab import schedules as S

transformers = pytest.importorskip("transformers")

RTOL = 1e-9


def hf_lrs(make_scheduler, lr: float, steps: int) -> np.ndarray:
    param = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    optimizer = torch.optim.SGD([param], lr=lr)
    scheduler = make_scheduler(optimizer)
    values = [optimizer.param_groups[0]["lr"]]
    for _ in range(steps - 1):
        optimizer.step()
        scheduler.step()
        values.append(optimizer.param_groups[0]["lr"])
    return np.asarray(values, dtype=np.float64)


def assert_same(schedule, make_scheduler, lr, steps, start=0):
    ours = schedule(np.arange(steps, dtype=np.float64))
    np.testing.assert_allclose(ours[start:], hf_lrs(make_scheduler, lr, steps)[start:], rtol=RTOL)


def cases(rows, name):
    return [pytest.param(*row, id=f"{name}{i}") for i, row in enumerate(rows)]


GRID = [
    (lr, w, total)
    for lr, (w, total) in itertools.product([5e-5, 0.1], [(0, 50), (1, 10), (10, 100), (37, 240)])
]


@pytest.mark.parametrize(("lr", "warmup_steps", "total"), cases(GRID, "cos"))
def test_warmup_cosine_equals_get_cosine_schedule_with_warmup(lr, warmup_steps, total):
    # Compared up to num_training_steps: after it, transformers' cosine rises again.
    assert_same(
        S.warmup(S.cosine(lr, total_steps=total - warmup_steps), warmup_steps),
        lambda opt: transformers.get_cosine_schedule_with_warmup(opt, warmup_steps, total),
        lr,
        steps=total + 1,
    )


@pytest.mark.parametrize(("lr", "warmup_steps", "total"), cases(GRID, "lin"))
def test_warmup_linear_equals_get_linear_schedule_with_warmup(lr, warmup_steps, total):
    assert_same(
        S.warmup(S.linear(lr, 0.0, total_steps=total - warmup_steps), warmup_steps),
        lambda opt: transformers.get_linear_schedule_with_warmup(opt, warmup_steps, total),
        lr,
        steps=total + 20,
    )


@pytest.mark.parametrize(
    ("lr", "warmup_steps", "total", "lr_end", "power"),
    cases(
        [
            (lr, w, t, end * lr, p)
            for (lr, w, t), end, p in itertools.product(GRID, [0.0, 0.01], [0.5, 1.0, 2.0])
        ],
        "poly",
    ),
)
def test_warmup_polynomial_equals_get_polynomial_decay_schedule_with_warmup(
    lr, warmup_steps, total, lr_end, power
):
    assert_same(
        S.warmup(
            S.polynomial(lr, total_steps=total - warmup_steps, final_lr=lr_end, power=power), warmup_steps
        ),
        lambda opt: transformers.get_polynomial_decay_schedule_with_warmup(
            opt, warmup_steps, total, lr_end=lr_end, power=power
        ),
        lr,
        steps=total + 20,
    )


@pytest.mark.parametrize(
    ("lr", "warmup_steps"), cases(itertools.product([5e-5, 0.1, 1.0], [1, 4, 100, 1000]), "isqrt")
)
def test_inverse_sqrt_equals_get_inverse_sqrt_schedule(lr, warmup_steps):
    assert_same(
        S.inverse_sqrt(lr, warmup_steps=warmup_steps),
        lambda opt: transformers.get_inverse_sqrt_schedule(opt, num_warmup_steps=warmup_steps),
        lr,
        steps=warmup_steps + 300,
    )


WSD = [
    (lr, w, d, total, shape)
    for lr, (w, d, total), shape in itertools.product(
        [1e-3, 0.5], [(0, 10, 50), (5, 20, 100), (10, 90, 100), (30, 1, 31)], ["linear", "cosine", "1-sqrt"]
    )
]


@pytest.mark.parametrize(("lr", "warmup_steps", "decay_steps", "total", "shape"), cases(WSD, "wsd"))
def test_wsd_equals_get_wsd_schedule(lr, warmup_steps, decay_steps, total, shape):
    assert_same(
        S.wsd(lr, total_steps=total, warmup_steps=warmup_steps, decay_steps=decay_steps, decay_shape=shape),
        lambda opt: transformers.get_wsd_schedule(
            opt, warmup_steps, decay_steps, num_training_steps=total, decay_type=shape
        ),
        lr,
        steps=total + 20,
    )


@pytest.mark.parametrize(("lr", "warmup_steps", "decay_steps", "total", "shape"), cases(WSD[::2], "wsdmin"))
@pytest.mark.parametrize("ratio", [0.1, 0.3])
def test_wsd_with_final_lr_equals_get_wsd_schedule_after_warmup(
    lr, warmup_steps, decay_steps, total, shape, ratio
):
    # transformers warms up from min_lr_ratio * lr; lrlab warms up from 0. After the warmup
    # the two agree, with final_lr = min_lr_ratio * lr.
    assert_same(
        S.wsd(
            lr,
            total_steps=total,
            warmup_steps=warmup_steps,
            decay_steps=decay_steps,
            final_lr=ratio * lr,
            decay_shape=shape,
        ),
        lambda opt: transformers.get_wsd_schedule(
            opt, warmup_steps, decay_steps, num_training_steps=total, decay_type=shape, min_lr_ratio=ratio
        ),
        lr,
        steps=total + 20,
        start=warmup_steps,
    )


@pytest.mark.parametrize(("lr", "warmup_steps", "decay_steps", "total", "shape"), cases(WSD[1::3], "wsdfull"))
def test_transformers_wsd_with_min_lr_ratio_is_a_warmup_in_front_of_wsd(
    lr, warmup_steps, decay_steps, total, shape
):
    # The whole of transformers' schedule, warmup from min_lr_ratio * lr included.
    ratio = 0.2
    final = ratio * lr
    inner = S.wsd(
        lr,
        total_steps=total - warmup_steps,
        warmup_steps=0,
        decay_steps=decay_steps,
        final_lr=final,
        decay_shape=shape,
    )
    assert_same(
        S.warmup(inner, warmup_steps, start_lr=final),
        lambda opt: transformers.get_wsd_schedule(
            opt, warmup_steps, decay_steps, num_training_steps=total, decay_type=shape, min_lr_ratio=ratio
        ),
        lr,
        steps=total + 20,
    )
