"""Regression and custom tasks: their loss, metrics and objective, with numbers; the
vectorised trainer gives them the numbers they get trained alone."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lrlab.training.tasks as tasks
from lrlab.core.records import RunConfig
from lrlab.store.sqlite import Store
from lrlab.training.loop import train_run
from lrlab.training.tasks import Task, TensorPairs, get_task
from lrlab.training.vectorized import train_vectorized


def _data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([1.5, -2.0, 0.5]) + 0.1 * torch.randn(n, generator=g)
    return x, y


def _regression(**custom) -> Task:
    x, y = _data()
    return Task("reg", "regression", 2, 16, lambda: nn.Linear(3, 1), TensorPairs(x[:64], y[:64]),
                TensorPairs(x[64:], y[64:]), **custom)  # fmt: skip


def test_regression_reports_mse_mae_and_r2_over_the_whole_validation_set():
    task = _regression()
    model = task.make_model(0)
    metrics = task.evaluate(model, task.val_loader(7))  # batches of 7: uneven, weighted by size
    x, y = _data()
    with torch.no_grad():
        pred = model(x[64:]).squeeze(1).double()
    err = pred - y[64:].double()
    assert metrics["val_loss"] == pytest.approx(float(err.square().mean()), rel=1e-5)
    assert metrics["val_mae"] == pytest.approx(float(err.abs().mean()), rel=1e-5)
    sst = float((y[64:].double() - y[64:].double().mean()).square().sum())
    assert metrics["val_r2"] == pytest.approx(1 - float(err.square().sum()) / sst, rel=1e-5)
    assert metrics["val_error"] is None and metrics["val_accuracy"] is None
    # (batch, 1) outputs against (batch,) targets: no broadcasting into a (batch, batch) error.
    assert task.loss_fn(torch.zeros(4, 1), torch.ones(4)).item() == pytest.approx(1.0)


def test_regression_objective_is_mse_lower_better():
    objective = _regression().objective
    assert (objective.metric, objective.higher_is_better, objective.loss, objective.unit) == (
        "val_loss", False, "MSE", "")  # fmt: skip
    assert objective.loss_label == "MSE" and set(objective.metrics) == {"val_mae", "val_r2"}


def test_a_perfect_fit_has_r2_one_and_zero_mae():
    task = _regression()
    model = nn.Linear(3, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.5, -2.0, 0.5]]))
        model.bias.zero_()
    metrics = task.evaluate(model, task.val_loader(32))
    assert metrics["val_r2"] > 0.99 and metrics["val_mae"] < 0.1


def test_custom_loss_metrics_and_objective():
    def huber(output, target):
        return nn.functional.huber_loss(output.squeeze(-1), target)

    def val_max_error(output, target):
        return (output.squeeze(-1) - target).abs().max()

    task = _regression(loss_fn=huber, metrics={"val_max_err": val_max_error}, objective="val_mae")
    model = task.make_model(0)
    metrics = task.evaluate(model, task.val_loader(32))  # one batch: the batch mean is the max
    x, y = _data()
    with torch.no_grad():
        pred = model(x[64:]).squeeze(1)
    assert metrics["val_loss"] == pytest.approx(float(nn.functional.huber_loss(pred, y[64:])), rel=1e-5)
    assert metrics["val_max_err"] == pytest.approx(float((pred - y[64:]).abs().max()), rel=1e-5)
    objective = task.objective
    assert (objective.metric, objective.higher_is_better, objective.loss) == ("val_mae", False, "huber")
    assert "val_max_err" in objective.metrics
    named = _regression(loss_fn=huber, loss_name="Huber", loss_unit="units of y").objective
    assert named.loss_label == "Huber, units of y"


def test_a_custom_objective_needs_a_direction_and_an_existing_metric():
    with pytest.raises(ValueError, match=r"objective 'val_f1' is not a metric of task 'reg' \(it has: "
                                         r"val_loss, val_mae, val_r2\)"):  # fmt: skip
        _regression(objective="val_f1")
    with pytest.raises(ValueError, match="higher_is_better=True or False"):
        _regression(metrics={"val_q": lambda o, t: 0.0}, objective="val_q")
    up = _regression(metrics={"val_q": lambda o, t: 0.0}, objective="val_q", higher_is_better=True)
    assert up.objective.higher_is_better is True
    with pytest.raises(ValueError, match="metrics must map new metric names"):
        _regression(metrics={"val_loss": lambda o, t: 0.0})


def test_from_loaders_keeps_collation_and_reorders_by_seed():
    x, y = _data()
    seen = []

    def collate(items):
        seen.append(len(items))
        xs, ys = zip(*items)
        return torch.stack(xs), torch.stack(ys)

    train = DataLoader(TensorDataset(x[:64], y[:64]), batch_size=8, collate_fn=collate)
    val = DataLoader(TensorDataset(x[64:], y[64:]), batch_size=8)
    task = Task.from_loaders("mine", lambda: nn.Linear(3, 1), train, val, kind="regression", epochs=3)
    assert (task.default_batch_size, task.default_epochs, task.kind) == (8, 3, "regression")
    a = [b[1] for b in task.train_loader(8, seed=1)]
    b = [b[1] for b in task.train_loader(8, seed=1)]
    c = [b[1] for b in task.train_loader(8, seed=2)]
    assert len(a) == 8 and seen and all(torch.equal(p, q) for p, q in zip(a, b))
    assert not all(torch.equal(p, q) for p, q in zip(a, c))
    assert torch.equal(torch.sort(torch.cat(a)).values, torch.sort(y[:64]).values)
    assert task.evaluate(task.make_model(0), task.val_loader(16))["val_r2"] is not None
    with pytest.raises(ValueError, match="train_loader must be a torch DataLoader"):
        Task.from_loaders("mine", lambda: nn.Linear(3, 1), [1, 2], val)


def test_a_python_task_is_no_name_in_a_registry():
    """A task built in Python travels as the object (run_study, run_plans, train_run): no
    process-global table maps its name to it, so its name builds nothing."""
    task = _regression()
    assert not hasattr(tasks, "register_task") and not hasattr(tasks, "_REGISTERED")
    with pytest.raises(ValueError, match="unknown task 'reg'"):
        get_task(task.name)


REG_TASK = textwrap.dedent("""
    import torch
    from torch import nn
    from lrlab.training.tasks import Task, TensorPairs

    def make(metric=False):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(96, 3, generator=g)
        y = x @ torch.tensor([1.5, -2.0, 0.5])
        extra = {"metrics": {"val_maxerr": lambda o, t: (o.squeeze(-1) - t).abs().max()},
                 "objective": "val_mae"} if metric else {}
        return Task("reg", "regression", 2, 16, lambda: nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1)),
                    TensorPairs(x[:64], y[:64]), TensorPairs(x[64:], y[64:]), **extra)
""")


@pytest.mark.parametrize("metric", [False, True])
def test_vectorised_regression_matches_runs_trained_alone(tmp_path, metric):
    (tmp_path / "regtask.py").write_text(REG_TASK)
    ref = f"{tmp_path / 'regtask.py'}:make"
    store = Store(tmp_path / "runs.db")
    configs = [RunConfig(task=ref, task_options={"metric": metric}, lr=lr, optimizer="sgd", seed=0, epochs=2,
                         batch_size=16) for lr in (0.01, 0.05)]  # fmt: skip
    torch.set_num_threads(1)
    together = train_vectorized(configs, store, ["v0", "v1"])
    alone = [train_run(c, store, f"s{i}") for i, c in enumerate(configs)]
    epochs = store.epochs_for(["v0", "v1", "s0", "s1"])
    for v, s in zip(together, alone):
        ev, es = epochs[v.id][-1], epochs[s.id][-1]
        np.testing.assert_allclose(ev.val_loss, es.val_loss, rtol=1e-4)
        for key in ("val_mae", "val_r2") + (("val_maxerr",) if metric else ()):
            np.testing.assert_allclose(ev.metrics[key], es.metrics[key], rtol=1e-4)
        assert ev.val_error is None
        assert store.run(v.id).extras["objective"]["metric"] == ("val_mae" if metric else "val_loss")
