"""The article's halving search on real training: start large, halve until the loss behaves."""

import numpy as np
import pytest
import torch
from finder_problems import make_classifier
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from lrlab.finder import find_lr, halving_search
from lrlab.finder.suggest import decreases_steadily, halving_pick


def quadratic_loader():
    # Least squares with E[x x^T] = I: plain SGD diverges above lr ~ 1 (Hessian 2I).
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(512, 8, generator=gen)
    y = x @ torch.randn(8, 1, generator=gen)
    return DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True, generator=gen)


def test_halving_stops_at_the_first_lr_below_the_stability_limit():
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    before = model.weight.detach().clone()
    seen = []
    result = halving_search(
        model,
        optimizer,
        F.mse_loss,
        quadratic_loader(),
        start_lr=16.0,
        progress=lambda lr, p: seen.append(lr),
    )
    tried = [lr for lr, _ in result.trials]
    assert tried == [16.0 / 2**k for k in range(len(tried))] == seen
    # 16, 8, 4, 2 blow up; 1 is on the edge; the answer is the first that behaves.
    assert 0.25 <= result.lr <= 1.0
    assert all(not decreases_steadily(p) for _, p in result.trials[:-1])
    assert halving_pick(result.trials) == result.lr
    assert "halving" in result.reason
    assert torch.equal(model.weight, before) and not optimizer.state


def test_halving_gives_up_below_min_lr():
    model = make_classifier()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    loader = DataLoader(TensorDataset(torch.randn(64, 4), torch.randint(0, 3, (64,))), batch_size=16)
    # min_drop=0.99 can never be met: every LR down to min_lr is tried and rejected.
    result = halving_search(
        model, optimizer, F.cross_entropy, loader, start_lr=1.0, min_lr=0.1, min_drop=0.99, passes=2
    )
    assert result.lr is None
    assert [lr for lr, _ in result.trials] == [1.0, 0.5, 0.25, 0.125]
    assert "no LR down to" in result.reason


def test_find_lr_adds_the_halving_suggestion_on_request():
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    before = model.weight.detach().clone()
    result = find_lr(
        model,
        optimizer,
        F.mse_loss,
        quadratic_loader(),
        start_lr=1e-4,
        end_lr=16.0,
        num_iter=40,
        halving=True,
    )
    assert 0.25 <= result.suggestions["halving"] <= 1.0
    assert result.config["halving_trials"][0][0] == 16.0
    assert torch.equal(model.weight, before)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"start_lr": -1.0}, "start_lr must be", id="start"),
        pytest.param({"min_lr": 100.0}, "min_lr must be", id="min"),
        pytest.param({"factor": 1.0}, "factor must be in", id="factor"),
        pytest.param({"passes": 1}, "passes must be >= 2", id="passes"),
        pytest.param({"subset_batches": 0}, "subset_batches must be", id="subset"),
    ],
)
def test_bad_arguments(kwargs, message):
    model = torch.nn.Linear(8, 1)
    with pytest.raises(ValueError, match=message):
        halving_search(
            model, torch.optim.SGD(model.parameters(), lr=0.1), F.mse_loss, quadratic_loader(), **kwargs
        )


def test_trial_losses_are_the_subset_loss_before_and_after_each_pass():
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    result = halving_search(model, optimizer, F.mse_loss, quadratic_loader(), start_lr=0.1, passes=3)
    ((lr, passes),) = result.trials
    assert lr == 0.1 and len(passes) == 4
    subset = list(quadratic_loader())[:4]
    initial = sum(F.mse_loss(model(x), y).item() * len(y) for x, y in subset) / sum(len(y) for _, y in subset)
    assert passes[0] == pytest.approx(initial, rel=1e-6)
    assert np.all(np.diff(passes) < 0)
