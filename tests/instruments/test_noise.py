"""The gradient noise scale on a synthetic problem whose covariance is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lrlab.instruments import MicroBatchNorms, NoiseScale, noise_estimates


@settings(max_examples=50, deadline=None)
@given(st.floats(0.01, 100), st.floats(0.01, 1000), st.integers(1, 64), st.integers(2, 16))
def test_the_estimators_recover_g_and_the_trace_from_exact_expectations(g_sq, trace, small, factor):
    big = small * factor
    small_sq, big_sq = g_sq + trace / small, g_sq + trace / big  # E|G_B|^2 = |G|^2 + tr(Sigma) / B
    got_g, got_trace = noise_estimates(small_sq, big_sq, small, big)
    assert got_g == pytest.approx(g_sq, rel=1e-6) and got_trace == pytest.approx(trace, rel=1e-6)


def test_the_noise_scale_of_sampled_gradients_is_tr_sigma_over_g_squared():
    rng = np.random.default_rng(0)
    dim, small, k = 50, 8, 4
    mean = rng.normal(size=dim) * 0.3
    sd = rng.uniform(0.5, 2.0, size=dim)  # diagonal Sigma
    truth = float((sd**2).sum() / (mean @ mean))
    scale = NoiseScale(decay=0.99)
    for _ in range(3000):
        per_example = mean + sd * rng.normal(size=(small * k, dim))
        micro = per_example.reshape(k, small, dim).mean(axis=1)
        small_sq = float((micro**2).sum(axis=1).mean())
        big_sq = float(per_example.mean(axis=0) @ per_example.mean(axis=0))
        value = scale.observe(small_sq, big_sq, small, small * k)
    assert value == pytest.approx(truth, rel=0.15)


def test_micro_batch_norms_of_a_real_accumulation():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(3))
    xs = torch.randn(4, 5, 3)  # four micro-batches of five
    norms = MicroBatchNorms([w])
    for x in xs:
        ((x @ w).pow(2).mean() / 4).backward()
        norms.after_backward()
    small, big, k = norms.pair()
    own = [torch.autograd.grad((x @ w).pow(2).mean(), w)[0] for x in xs]
    assert k == 4
    assert small == pytest.approx(float(sum(g.pow(2).sum() for g in own) / 4), rel=1e-5)
    assert big == pytest.approx(float(torch.stack(own).mean(0).pow(2).sum()), rel=1e-5)


def test_bad_batch_sizes_are_one_line():
    with pytest.raises(ValueError, match="b_big > b_small > 0"):
        noise_estimates(1.0, 1.0, 8, 8)
