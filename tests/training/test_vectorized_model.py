"""Stacked forward passes (batched matmuls and vmap) against each member run alone."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lrlab.training.tasks import get_task
from lrlab.training.vectorized.model import StackedModel, stack_models

pytestmark = pytest.mark.usefixtures("one_thread")


def _models(factory, seeds=(0, 1, 2)):
    out = []
    for seed in seeds:
        torch.manual_seed(seed)
        out.append(factory())
    return out


FACTORIES = {
    "linear": lambda: nn.Linear(6, 4),
    "mlp": lambda: nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 3)),
    "no-bias": lambda: nn.Sequential(nn.Linear(6, 5, bias=False), nn.GELU(), nn.Linear(5, 2, bias=False)),
}


@pytest.mark.parametrize("name", list(FACTORIES))
@pytest.mark.parametrize("mode", ["bmm", "vmap"])
def test_stacked_forward_and_gradients_match_each_member(name, mode):
    models = _models(FACTORIES[name])
    stacked = stack_models(models, mode)
    assert stacked.mode == mode and stacked.members == 3
    x = torch.randn(7, 6)
    out = stacked(x)
    assert out.shape == (3, 7, models[0](x).shape[-1])
    grads = torch.autograd.grad(out.square().mean(dim=(1, 2)).sum(), stacked.params)
    for k, model in enumerate(models):
        torch.testing.assert_close(out[k], model(x), rtol=1e-6, atol=1e-6)
        alone = torch.autograd.grad(model(x).square().mean(), list(model.parameters()))
        for g, a in zip(grads, alone):
            torch.testing.assert_close(g[k], a, rtol=1e-5, atol=1e-6)


def test_auto_picks_bmm_for_linear_stacks_and_vmap_for_the_cnn():
    assert StackedModel(_models(FACTORIES["mlp"])).mode == "bmm"
    cnn = get_task("digits-cnn", train_size=8, val_size=8, channels=2)
    models = [cnn.make_model(s) for s in (0, 1)]
    stacked = StackedModel(models)
    assert stacked.mode == "vmap"
    x = torch.rand(5, 64)
    for k, model in enumerate(models):
        torch.testing.assert_close(stacked(x)[k], model(x), rtol=1e-5, atol=1e-6)


def test_select_and_member_give_back_ordinary_modules():
    models = _models(FACTORIES["mlp"], seeds=(0, 1, 2, 3))
    stacked = stack_models(models)
    stacked.select(torch.tensor([1, 3]))
    assert stacked.members == 2 and all(p.requires_grad and p.is_leaf for p in stacked.params)
    x = torch.randn(4, 6)
    torch.testing.assert_close(stacked.member(1)(x), models[3](x))
    torch.testing.assert_close(stacked(x)[0], models[1](x))


def test_refuses_what_it_cannot_stack():
    with pytest.raises(ValueError, match="bmm"):
        StackedModel(_models(lambda: nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5))), mode="bmm")
    frozen = _models(FACTORIES["linear"])
    for m in frozen:
        m.bias.requires_grad_(False)
    with pytest.raises(ValueError, match="frozen"):
        StackedModel(frozen)
    # Dropout under vmap needs a randomness policy: the probe reports it.
    stacked = StackedModel(_models(lambda: nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5))))
    with pytest.raises(RuntimeError):
        stacked.probe(torch.randn(2, 3), lambda out: out.mean(dim=(1, 2)))
