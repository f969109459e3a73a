"""Values equal Keras 3's learning-rate schedules where the semantics coincide (rtol 1e-9).

Keras runs on the torch backend here with floatx set to float64 for these tests, so
both sides compute in float64.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest

from lrlab import schedules as S

os.environ["KERAS_BACKEND"] = "torch"
keras = pytest.importorskip("keras")
schedules = keras.optimizers.schedules

RTOL = 1e-9


@pytest.fixture(autouse=True, scope="module")
def float64_keras():
    before = keras.config.floatx()
    keras.config.set_floatx("float64")
    yield
    keras.config.set_floatx(before)


def keras_values(schedule, steps: int) -> np.ndarray:
    """Keras' values at steps 0 .. steps - 1, one scalar step per call: with a vector of
    steps some Keras ops compute in float32 even with floatx float64."""
    return np.asarray([float(keras.ops.convert_to_numpy(schedule(step))) for step in range(steps)])


def assert_same(ours: S.Schedule, theirs, steps: int) -> None:
    np.testing.assert_allclose(
        ours(np.arange(steps, dtype=np.float64)), keras_values(theirs, steps), rtol=RTOL
    )


def cases(rows, name):
    return [pytest.param(*row, id=f"{name}{i}") for i, row in enumerate(rows)]


@pytest.mark.parametrize(
    ("lr", "decay_steps", "rate", "staircase"),
    cases(itertools.product([0.1, 3e-4], [1, 7, 40], [0.5, 0.96], [False, True]), "exp"),
)
def test_exponential_equals_exponentialdecay(lr, decay_steps, rate, staircase):
    assert_same(
        S.exponential(lr, decay_rate=rate, decay_steps=decay_steps, staircase=staircase),
        schedules.ExponentialDecay(lr, decay_steps=decay_steps, decay_rate=rate, staircase=staircase),
        steps=90,
    )


@pytest.mark.parametrize(
    ("lr", "decay_steps", "rate", "staircase"),
    cases(itertools.product([0.1], [1, 9, 50], [0.0, 0.5, 3.0], [False, True]), "invtime"),
)
def test_inverse_time_equals_inversetimedecay(lr, decay_steps, rate, staircase):
    assert_same(
        S.inverse_time(lr, decay_rate=rate, decay_steps=decay_steps, staircase=staircase),
        schedules.InverseTimeDecay(lr, decay_steps=decay_steps, decay_rate=rate, staircase=staircase),
        steps=90,
    )


@pytest.mark.parametrize(
    ("lr", "decay_steps", "end_lr", "power"),
    cases(itertools.product([0.1, 2.0], [1, 13, 60], [0.0, 1e-4], [0.5, 2.0]), "poly"),
)
def test_polynomial_equals_polynomialdecay(lr, decay_steps, end_lr, power):
    assert_same(
        S.polynomial(lr, total_steps=decay_steps, final_lr=end_lr, power=power),
        schedules.PolynomialDecay(lr, decay_steps=decay_steps, end_learning_rate=end_lr, power=power),
        steps=decay_steps + 15,
    )


@pytest.mark.parametrize(
    ("lr", "decay_steps", "alpha"), cases(itertools.product([0.1, 3e-4], [1, 10, 77], [0.0, 0.1, 0.5]), "cos")
)
def test_cosine_equals_cosinedecay(lr, decay_steps, alpha):
    # Both hold alpha * lr after decay_steps.
    assert_same(
        S.cosine(lr, total_steps=decay_steps, final_lr=alpha * lr),
        schedules.CosineDecay(lr, decay_steps=decay_steps, alpha=alpha),
        steps=decay_steps + 15,
    )


@pytest.mark.parametrize(
    ("start_lr", "target", "warmup_steps", "decay_steps", "alpha"),
    cases(
        itertools.product([0.0, 1e-4], [0.1], [1, 10, 33], [5, 60], [0.0, 0.2]),
        "warmcos",
    ),
)
def test_warmup_cosine_equals_cosinedecay_with_warmup(start_lr, target, warmup_steps, decay_steps, alpha):
    assert_same(
        S.warmup(
            S.cosine(target, total_steps=decay_steps, final_lr=alpha * target),
            warmup_steps,
            start_lr=start_lr,
        ),
        schedules.CosineDecay(
            start_lr, decay_steps=decay_steps, alpha=alpha, warmup_target=target, warmup_steps=warmup_steps
        ),
        steps=warmup_steps + decay_steps + 10,
    )


# CosineDecayRestarts computes lr * ((1 - alpha) * m_mul**i * c + alpha): the floor alpha
# stays while the cosine part shrinks, so its restart peaks are lr * ((1 - alpha) * m_mul**i + alpha).
# lrlab's cosine_restarts peaks at lr * decay**i and falls to final_lr. The two coincide
# when alpha = 0 (any m_mul) or m_mul = 1 (any alpha).
RESTARTS = [
    (lr, first, t_mul, m_mul, alpha)
    for lr, first, t_mul, (m_mul, alpha) in itertools.product(
        [0.1], [1, 10, 7], [1.0, 2.0, 3.0], [(1.0, 0.0), (0.5, 0.0), (0.9, 0.0), (1.0, 0.1), (1.0, 0.6)]
    )
]


@pytest.mark.parametrize(("lr", "first", "t_mul", "m_mul", "alpha"), cases(RESTARTS, "sgdr"))
def test_cosine_restarts_equals_cosinedecayrestarts(lr, first, t_mul, m_mul, alpha):
    assert_same(
        S.cosine_restarts(lr, period=first, period_mult=t_mul, decay=m_mul, final_lr=alpha * lr),
        schedules.CosineDecayRestarts(lr, first_decay_steps=first, t_mul=t_mul, m_mul=m_mul, alpha=alpha),
        steps=150,
    )


def test_cosine_decay_restarts_differs_where_alpha_and_m_mul_combine():
    lr, first, m_mul, alpha = 1.0, 10, 0.5, 0.2
    theirs = schedules.CosineDecayRestarts(lr, first_decay_steps=first, t_mul=1.0, m_mul=m_mul, alpha=alpha)
    ours = S.cosine_restarts(lr, period=first, decay=m_mul, final_lr=alpha * lr)
    # Second cycle's peak: Keras lr * ((1 - alpha) * m_mul + alpha), lrlab lr * m_mul.
    assert float(keras.ops.convert_to_numpy(theirs(first))) == pytest.approx((1 - alpha) * m_mul + alpha)
    assert ours(first) == pytest.approx(m_mul)
