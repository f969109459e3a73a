"""Regression losses: recognised from the loss; the same rule as the optimizer family, with a
note in the reason (a separate divisor did worse on the benchmark's tuning pairs)."""

import functools
import math

import pytest
import torch
from finder_problems import make_blobs
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from lrlab.finder import find_lr, suggest
from lrlab.finder.range import is_regression_loss
from lrlab.training.tasks import Task, TensorPairs


def divisor(rule: str) -> float:
    head, _, value = rule.partition("/")
    assert head == "minimum"
    return float(value)


def regression_loader() -> DataLoader:
    """A small nonlinear regression: y = sin(x w1) + (x w2)^2 / 2 + noise, 8 features."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(512, 8, generator=gen)
    w1, w2 = torch.randn(8, 1, generator=gen), torch.randn(8, 1, generator=gen) / 2
    y = torch.sin(x @ w1) + 0.5 * (x @ w2) ** 2 + 0.1 * torch.randn(512, 1, generator=gen)
    return DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0))


def regression_mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))


@pytest.mark.parametrize(
    "loss_fn",
    [
        torch.nn.MSELoss(),
        torch.nn.L1Loss(),
        torch.nn.SmoothL1Loss(),
        torch.nn.HuberLoss(delta=2.0),
        F.mse_loss,
        F.l1_loss,
        F.smooth_l1_loss,
        F.huber_loss,
        functools.partial(F.huber_loss, delta=0.5),
    ],
)
def test_regression_losses_are_recognised(loss_fn):
    assert is_regression_loss(loss_fn)


@pytest.mark.parametrize(
    "loss_fn",
    [torch.nn.CrossEntropyLoss(), F.cross_entropy, F.nll_loss, torch.nn.BCEWithLogitsLoss(), lambda o, t: F.mse_loss(o, t)],
)
def test_other_losses_are_not(loss_fn):
    # A lambda around a regression loss is not recognised: find_lr(..., regression=True) says it.
    assert not is_regression_loss(loss_fn)


def test_a_regression_task_loss_is_recognised_by_its_kind():
    x, y = torch.randn(16, 3), torch.randn(16)
    data = TensorPairs(x, y)
    regression = Task("r", "regression", 1, 8, lambda: torch.nn.Linear(3, 1), data, data)
    classes = Task("c", "classification", 1, 8, lambda: torch.nn.Linear(3, 2), data, data)
    assert is_regression_loss(regression.loss_fn)
    assert not is_regression_loss(classes.loss_fn)


def test_default_rule_for_regression_keeps_the_divisor_and_says_to_check():
    for sgd, rule in ((True, "minimum/7"), (False, "minimum/30")):
        plain_rule, plain_reason = suggest.default_rule(sgd)
        regression_rule, regression_reason = suggest.default_rule(sgd, regression=True)
        assert plain_rule == regression_rule == rule
        assert regression_reason == f"{plain_reason}; {suggest.REGRESSION_NOTE}"
        assert "regression" not in plain_reason
        assert "short sweep" in regression_reason


@pytest.mark.parametrize(("sgd", "rule", "k"), [(True, "minimum/7", 7.0), (False, "minimum/30", 30.0)])
def test_a_range_test_on_a_regression_mlp(sgd, rule, k):
    model = regression_mlp()
    optimizer = (
        torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9) if sgd else torch.optim.Adam(model.parameters())
    )
    result = find_lr(model, optimizer, torch.nn.MSELoss(), regression_loader(), num_iter=80)
    assert result.problem is None
    assert result.rule == rule
    assert result.lr == result.suggestions[rule]
    minimum = 10 * result.suggestions["minimum/10"]
    assert result.lr == pytest.approx(minimum / k, rel=1e-12)
    assert result.reason.startswith(f"{rule} (")
    assert result.reason.endswith(suggest.REGRESSION_NOTE)
    assert result.config["regression"] is True
    assert 1e-5 < result.lr < 1.0


def test_regression_false_changes_only_the_reason():
    loader = regression_loader()
    sgd = torch.optim.SGD
    auto = find_lr(model := regression_mlp(), sgd(model.parameters(), lr=0.0, momentum=0.9), F.mse_loss, loader,
                   num_iter=80)  # fmt: skip
    plain = find_lr(model := regression_mlp(), sgd(model.parameters(), lr=0.0, momentum=0.9), F.mse_loss, loader,
                    num_iter=80, regression=False)  # fmt: skip
    assert auto.config["regression"] is True
    assert plain.config["regression"] is False
    assert auto.suggestions == plain.suggestions  # same curve (same seeds and batches)
    assert auto.rule == plain.rule == "minimum/7"
    assert auto.lr == plain.lr
    assert math.isclose(plain.lr, 10 * plain.suggestions["minimum/10"] / 7, rel_tol=1e-12)
    assert auto.reason == f"{plain.reason}; {suggest.REGRESSION_NOTE}"
    assert "regression" not in plain.reason


def test_a_classification_loss_keeps_its_divisor_and_reason():
    loader = DataLoader(make_blobs(), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    result = find_lr(model, torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9), F.cross_entropy, loader,
                     num_iter=60)  # fmt: skip
    assert result.rule == "minimum/7"
    assert result.lr == pytest.approx(10 * result.suggestions["minimum/10"] / 7, rel=1e-12)
    assert result.config["regression"] is False
    assert "regression" not in result.reason
    # regression=True on a classification loss: told, so the note is added.
    forced = find_lr(model, torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9), F.cross_entropy, loader,
                     num_iter=60, regression=True)  # fmt: skip
    assert forced.rule == "minimum/7"
    assert forced.reason.endswith(suggest.REGRESSION_NOTE)


@pytest.mark.parametrize("value", ["yes", 1, 0.0])
def test_regression_must_be_a_bool_or_none(value):
    model = regression_mlp()
    with pytest.raises(ValueError, match="regression must be"):
        find_lr(model, torch.optim.SGD(model.parameters(), lr=0.0), F.mse_loss, regression_loader(), regression=value)
