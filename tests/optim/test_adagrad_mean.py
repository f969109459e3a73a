"""AdaGradMean: the lecture's AdaGrad equals torch's Adagrad with the rate lr * sqrt(t + 1)."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lrlab.optim import AdaGradMean

# A zero first gradient divides 0 by 0 in both optimizers (eps=0): draw gradients away from 0.
NONZERO = st.floats(-3, 3).filter(lambda v: abs(v) > 1e-3)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(NONZERO, NONZERO), min_size=1, max_size=25), st.floats(0.01, 1.0))
def test_matches_torch_adagrad_with_a_sqrt_growing_rate(grads: list[tuple[float, float]], lr: float) -> None:
    mine = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    ref = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    ours = AdaGradMean([mine], lr=lr, eps=0.0)
    theirs = torch.optim.Adagrad([ref], lr=lr, eps=0.0)
    for t, g in enumerate(grads):
        grad = torch.tensor(g, dtype=torch.float64)
        mine.grad, ref.grad = grad.clone(), grad.clone()
        theirs.param_groups[0]["lr"] = lr * (t + 1) ** 0.5
        ours.step()
        theirs.step()
        torch.testing.assert_close(mine.detach(), ref.detach(), rtol=1e-10, atol=1e-12)


def test_the_effective_rate_grows_when_gradients_get_small() -> None:
    w = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = AdaGradMean([w], lr=1.0)
    w.grad = torch.tensor([10.0], dtype=torch.float64)
    opt.step()
    before = w.item()
    for _ in range(99):
        w.grad = torch.tensor([1e-3], dtype=torch.float64)
        opt.step()
    w.grad = torch.tensor([1.0], dtype=torch.float64)
    start = w.item()
    opt.step()
    # sigma = sqrt((100 + 99e-6 + 1) / 101) ~ 1, so a unit gradient moves a full lr = 1,
    # where torch's Adagrad (sum 101) would move 1/sqrt(101) ~ 0.1.
    assert before == pytest.approx(-1.0)
    assert start - w.item() == pytest.approx(1.0, rel=0.01)


@pytest.mark.parametrize(("kwargs", "name"), [({"lr": -0.1}, "lr"), ({"eps": -1.0}, "eps")])
def test_bad_arguments_are_named(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        AdaGradMean([torch.nn.Parameter(torch.zeros(1))], **kwargs)


def test_state_dict_round_trip() -> None:
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = AdaGradMean([w], lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        (w**2).sum().backward()
        opt.step()
    twin_w = torch.nn.Parameter(w.detach().clone())
    twin = AdaGradMean([twin_w], lr=0.1)
    twin.load_state_dict(copy.deepcopy(opt.state_dict()))
    for param, optimizer in ((w, opt), (twin_w, twin)):
        optimizer.zero_grad()
        (param**2).sum().backward()
        optimizer.step()
    assert torch.equal(w, twin_w)
