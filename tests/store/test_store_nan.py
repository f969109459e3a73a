"""A run whose loss turns NaN is stored as diverged with its last step; old stores migrate."""

import math
import sqlite3
import textwrap

import numpy as np

from lrlab.core.records import RunConfig, RunRecord
from lrlab.store import schema
from lrlab.store.sqlite import SCHEMA_VERSION, Store
from lrlab.training.loop import train_run

TASK = textwrap.dedent(
    """
    import torch
    from lrlab.training.tasks import Task, TensorPairs

    def poisoned():
        torch.manual_seed(0)
        x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
        x[37, 2] = float("nan")  # one example: the batch holding it has a NaN loss
        return Task("poisoned", "classification", 2, 8, lambda: torch.nn.Linear(4, 3),
                    TensorPairs(x, y), TensorPairs(x[:8].nan_to_num(), y[:8]))
    """
)


def test_a_nan_loss_marks_the_run_diverged_and_its_step_row_reads_back_as_nan(tmp_path):
    (tmp_path / "poisoned.py").write_text(TASK)
    config = {
        "task": f"{tmp_path / 'poisoned.py'}:poisoned", "optimizer": "sgd", "schedule": "constant(lr=0.1)",
        "lr": 0.1, "seed": 0, "epochs": 2, "batch_size": 8,
    }  # fmt: skip
    store = Store(tmp_path / "runs.db")
    store.create_runs([RunRecord(id="r", sweep=None, status="queued", config=config, seed=0)])
    record = train_run(RunConfig.from_dict(config), store, "r")
    assert record.status == "diverged" and "non-finite loss" in (record.error or "")
    series = store.steps("r")
    assert len(series) == record.diverged_step + 1
    assert math.isnan(series.loss[-1]) and np.all(np.isfinite(series.loss[:-1]))
    assert store.integrity_check() == "ok"


def test_a_version_1_store_migrates_and_keeps_its_rows(tmp_path):
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(schema._MIGRATIONS[0])
        conn.execute(
            "INSERT INTO runs (id, status, seed, config) VALUES ('r', 'done', 0, '{\"task\": \"t\", \"lr\": 0.1}')"
        )
        conn.execute("INSERT INTO step_metrics VALUES ('r', 0, 1, 0.1, NULL, NULL, 2.5, 1.5)")
        conn.execute("PRAGMA user_version = 1")
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION
    series = store.steps("r")
    assert series.loss.tolist() == [2.5] and series.grad_norm.tolist() == [1.5]
    store.append_metrics("r", [(1, 1, [0.1], None, float("nan"), float("nan"))])
    assert np.isnan(store.steps("r").loss[1])
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
