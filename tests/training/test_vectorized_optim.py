"""Stacked SGD / Adam / AdamW against torch.optim, member by member, on the same gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lrlab.optim.grammar import make_optimizer
from lrlab.training.vectorized.optim import VECTORIZED_OPTIMIZERS, stacked_optimizer, supports

SPECS = [
    "sgd",
    "sgd(momentum=0.9)",
    "sgd(momentum=0.9, nesterov=true)",
    "sgd(momentum=0.8, weight_decay=0.01)",
    "sgd(momentum=0.9, nesterov=true, weight_decay=0.001)",
    "sgd(momentum=0.5, dampening=0.2)",
    "adam",
    "adam(betas=[0.8, 0.99], eps=1e-6)",
    "adam(weight_decay=0.01)",
    "adam(amsgrad=true)",
    "adam(decoupled_weight_decay=true, weight_decay=0.05)",
    "adamw",
    "adamw(weight_decay=0.1, amsgrad=true)",
]
SHAPES = [(5, 3), (3,), (2, 2, 3)]


pytestmark = pytest.mark.usefixtures("one_thread")


def _run_both(spec: str, lrs: np.ndarray, momenta: np.ndarray | None, seed: int, steps: int):
    """Stacked optimizer vs one torch optimizer per member, fed identical gradients."""
    members = lrs.shape[0]
    gen = torch.Generator().manual_seed(seed)
    start = [torch.randn(members, *shape, generator=gen) for shape in SHAPES]
    grads = [[torch.randn(members, *shape, generator=gen) for shape in SHAPES] for _ in range(steps)]
    stacked = [p.clone() for p in start]
    opt = stacked_optimizer(spec, stacked)
    alone = [[p[k].clone().requires_grad_() for p in start] for k in range(members)]
    torch_opts = [make_optimizer(spec, params, lr=float(lrs[k, 0])) for k, params in enumerate(alone)]
    for t in range(steps):
        momentum = None if momenta is None else torch.tensor(momenta[:, t])
        opt.step(grads[t], torch.tensor(lrs[:, t]), momentum)
        for k, (params, torch_opt) in enumerate(zip(alone, torch_opts)):
            group = torch_opt.param_groups[0]
            group["lr"] = float(lrs[k, t])
            if momenta is not None:
                if "momentum" in group:
                    group["momentum"] = float(momenta[k, t])
                else:
                    group["betas"] = (float(momenta[k, t]), group["betas"][1])
            for p, g in zip(params, grads[t]):
                p.grad = g[k].clone()
            torch_opt.step()
    return stacked, alone


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("scheduled", [False, True], ids=["fixed-momentum", "momentum-schedule"])
def test_each_member_follows_torch_optim(spec, scheduled):
    rng = np.random.default_rng(1)
    members, steps = 4, 12
    lrs = 10 ** rng.uniform(-3, -0.5, size=(members, steps))
    momenta = rng.uniform(0.5, 0.95, size=(members, steps)) if scheduled else None
    if scheduled and spec == "sgd":
        spec = "sgd(momentum=0.9)"
    stacked, alone = _run_both(spec, lrs, momenta, seed=3, steps=steps)
    for k in range(members):
        for p, q in zip(stacked, alone[k]):
            torch.testing.assert_close(p[k], q.detach(), rtol=2e-6, atol=2e-6)


@settings(max_examples=15, deadline=None)
@given(
    spec=st.sampled_from(SPECS),
    members=st.integers(1, 5),
    log_lr=st.floats(-4, 0),
    seed=st.integers(0, 2**16),
)
def test_property_any_lrs_match_torch(spec, members, log_lr, seed):
    rng = np.random.default_rng(seed)
    lrs = 10 ** (log_lr + rng.uniform(-1, 0, size=(members, 5)))
    stacked, alone = _run_both(spec, lrs, None, seed=seed, steps=5)
    for k in range(members):
        for p, q in zip(stacked, alone[k]):
            torch.testing.assert_close(p[k], q.detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("spec", ["sgd(momentum=0.9)", "adam", "adamw"])
def test_inactive_members_stay_put_even_with_nan_gradients(spec):
    start = [torch.randn(3, 4, 2), torch.randn(3, 2)]
    params = [p.clone() for p in start]
    opt = stacked_optimizer(spec, params)
    reference = [p.clone() for p in start]
    ref_opt = stacked_optimizer(spec, reference)
    lr = torch.tensor([0.1, 0.1, 0.1], dtype=torch.float64)
    for _ in range(3):
        grads = [torch.randn_like(p) for p in start]
        poisoned = [g.clone() for g in grads]
        for g in poisoned:
            g[1] = float("nan")
        opt.step(poisoned, lr, active=torch.tensor([True, False, True]))
        ref_opt.step(grads, lr)
    for p, q, p0 in zip(params, reference, start):
        torch.testing.assert_close(p[1], p0[1], rtol=0, atol=0)  # frozen: untouched
        torch.testing.assert_close(p[[0, 2]], q[[0, 2]])  # the others: as if alone
        assert torch.isfinite(p).all()


def test_select_keeps_the_members_state():
    params = [torch.randn(4, 3)]
    opt = stacked_optimizer("adam", params)
    opt.step([torch.randn(4, 3)], torch.full((4,), 0.01, dtype=torch.float64))
    exp_avg = opt.state[0]["exp_avg"].clone()
    keep = torch.tensor([0, 3])
    opt.select(keep, [params[0][keep]])
    torch.testing.assert_close(opt.state[0]["exp_avg"], exp_avg[keep])


def test_supports_names_what_is_not_vectorised():
    assert VECTORIZED_OPTIMIZERS == ("sgd", "adam", "adamw")
    assert supports("sgd(momentum=0.9, nesterov=true)") is None
    assert "rmsprop" in supports("rmsprop")
    assert "maximize" in supports("adam(maximize=true)")
    with pytest.raises(ValueError, match="cannot be vectorised"):
        stacked_optimizer("adagrad", [torch.zeros(2, 2)])
    with pytest.raises(ValueError, match="nesterov"):
        stacked_optimizer("sgd(nesterov=true)", [torch.zeros(2, 2)])
