"""A store filled by real torch training: a tracked regression run with two param groups
(``val_mae`` among its epoch metrics) and a small sweep with a diverged run."""

from __future__ import annotations

import pytest
import torch

import lrlab
from lrlab.store.sqlite import Store
from lrlab.sweeps import run_sweep

SWEEP = {
    "name": "export-sweep",
    "task": "digits-linear",
    "task_options": {"train_size": 64, "val_size": 32},
    "epochs": 2,
    "batch_size": 32,
    "seeds": [0],
    "grid": {"lr": [0.2, 300.0], "optimizer": ["sgd"]},
}


def train_regression(run_store: Store, export: list, name: str = "reg") -> str:
    """A two-layer regression net trained 3 epochs of 8 steps, recorded with ``lrlab.track``
    (two param groups, SGD with momentum, ``val_mae`` its objective)."""
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [0.0]]) + 0.1 * torch.randn(64, 1)
    body, head = torch.nn.Linear(4, 8), torch.nn.Linear(8, 1)
    model = torch.nn.Sequential(body, torch.nn.Tanh(), head)
    opt = torch.optim.SGD(
        [{"params": body.parameters()}, {"params": head.parameters(), "lr": 0.02}], lr=0.05, momentum=0.9
    )
    # the schedule is declared but no scheduler steps it (a fault the LR audit finds at step 3):
    # the run has findings to export, whatever the instruments' thresholds
    schedule = "cosine(lr=0.05, total_steps=24)"
    with lrlab.track(
        opt, name=name, db=run_store, objective="val_mae", schedule=schedule, export=export
    ) as run:
        for _ in range(3):
            for i in range(8):
                xb, yb = x[i * 8 : (i + 1) * 8], y[i * 8 : (i + 1) * 8]
                loss = torch.nn.functional.mse_loss(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                run.log(loss=loss)
            with torch.no_grad():
                out = model(x)
            run.epoch(val_loss=torch.nn.functional.mse_loss(out, y), val_mae=(out - y).abs().mean())
    return run.run_id


@pytest.fixture(scope="session")
def train():
    """The tracked regression run, as a function of (store, exporters, name)."""
    return train_regression


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """(store path, tracked run id) with the sweep's two runs beside the tracked one."""
    path = tmp_path_factory.mktemp("export") / "runs.db"
    store = Store(path)
    run_sweep(SWEEP, store)
    run_id = train_regression(store, [])
    return path, run_id
