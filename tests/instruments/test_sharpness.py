"""Sharpness by power iteration on Hessian-vector products, against numpy's eigenvalues."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lrlab.instruments import Instruments, Sharpness, adam_preconditioner, stability_limit, top_eigenvalue


def _spd(seed: int, n: int = 6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    eig = np.concatenate([[10.0], rng.uniform(0.1, 4.0, n - 1)])  # a clear top eigenvalue
    return (q * eig) @ q.T


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000))
def test_the_sharpness_of_a_quadratic_is_its_top_eigenvalue(seed):
    a = _spd(seed)
    matrix = torch.tensor(a, dtype=torch.float64)
    w = torch.randn(6, dtype=torch.float64, requires_grad=True)
    value = top_eigenvalue(lambda: 0.5 * w @ matrix @ w, [w], iters=200, tol=1e-10)
    assert value == pytest.approx(np.linalg.eigvalsh(a).max(), rel=1e-6)


def test_the_preconditioned_sharpness_is_the_top_eigenvalue_of_p_inverse_h():
    a = _spd(3)
    diag = np.array([1.0, 2.0, 4.0, 0.5, 3.0, 1.5])
    w = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    matrix = torch.tensor(a)
    value = top_eigenvalue(lambda: 0.5 * w @ matrix @ w, [w], iters=300, tol=1e-12,
                           precondition=[torch.tensor(diag)])  # fmt: skip
    expected = np.linalg.eigvals(np.diag(1 / diag) @ a).real.max()
    assert value == pytest.approx(expected, rel=1e-6)


def test_the_stability_limits():
    assert stability_limit(0.01) == pytest.approx(200.0)
    assert stability_limit(0.01, momentum=0.9) == pytest.approx(380.0)
    assert stability_limit(0.01, adam_beta1=0.9) == pytest.approx(3800.0)  # 38 / lr


def test_adams_preconditioner_is_its_bias_corrected_second_moment():
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = torch.optim.Adam([w], lr=0.1, betas=(0.9, 0.99), eps=1e-8)
    (w**2).sum().backward()
    opt.step()
    (p,) = adam_preconditioner(opt, [w])
    grad = torch.tensor([2.0, -4.0])
    assert p.tolist() == pytest.approx((grad.abs() + 1e-8).tolist(), rel=1e-5)  # v_hat = g^2 after one step


def test_the_instrument_reads_the_sharpness_every_n_steps_and_flags_a_step_past_the_limit():
    matrix = torch.diag(torch.tensor([50.0, 1.0]))
    w = torch.nn.Parameter(torch.tensor([1.0, 1.0]))
    opt = torch.optim.SGD([w], lr=0.1)  # limit 2 / 0.1 = 20 < 50
    panel = Instruments(
        "sharpness",
    ).attach(opt, loss_fn=lambda: 0.5 * w @ matrix @ w)
    panel.sharpness = Sharpness(panel.sharpness.loss_fn, every=2, iters=50)
    for step in range(5):
        panel.observe_step(step, 1.0)
        opt.zero_grad()
        (0.5 * w @ matrix @ w).backward()
        opt.step()
    series, findings = panel.take()
    assert series["sharpness"][0] == [0, 2, 4]
    assert series["sharpness"][1] == pytest.approx([50.0] * 3, rel=1e-3)
    assert series["sharpness_limit"][1] == pytest.approx([20.0] * 3)
    assert [f.kind for f in findings] == ["sharpness"] and findings[0].step == 0
