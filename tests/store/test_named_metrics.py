"""Named epoch metrics (regression's val_mae, a custom task's own) and a run's declared
objective: stored, read back, exported, and ranked in the declared direction."""

from __future__ import annotations

import math
import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrlab.core.ranking import objective, rank
from lrlab.core.records import EpochRecord, Objective, RunConfig, RunRecord, RunStatus
from lrlab.store import schema
from lrlab.store.queries import export_records
from lrlab.store.sqlite import SCHEMA_VERSION, Store


def _run(store: Store, rid: str, lr: float, seed: int, value: float, declared: Objective | None) -> None:
    record = RunRecord(rid, "s", RunStatus.QUEUED, RunConfig(task="t", lr=lr, seed=seed), seed)
    extras = {"objective": declared.to_dict()} if declared else {}
    store.begin_run(record, extras)
    store.append_metrics(rid, [], [EpochRecord(rid, 1, 10, 1.0, 2.0 + lr, None, None, 0.1,
                                               {"val_mae": value, "val_r2": 1 - value})])  # fmt: skip
    store.end_run(rid, RunStatus.DONE)


def test_named_metrics_round_trip_with_non_finite_as_none(tmp_path):
    store = Store(tmp_path / "runs.db")
    _run(store, "a", 0.1, 0, 0.25, None)
    rid = "b"
    store.begin_run(RunRecord(rid, "s", RunStatus.QUEUED, RunConfig(task="t", lr=1.0), 0))
    store.append_metrics(rid, [], [EpochRecord(rid, 1, 10, 1.0, 2.0, None, None, 0.1, {"val_mae": math.nan})])
    epochs = store.epochs_for(["a", "b"])
    assert epochs["a"][0].metrics == {"val_mae": 0.25, "val_r2": 0.75}
    assert epochs["a"][0].value("val_mae") == 0.25 and epochs["a"][0].value("val_loss") == 2.1
    assert epochs["b"][0].metrics == {"val_mae": None}
    exported = {r["id"]: r for r in export_records(store)}
    assert exported["a"]["final"]["val_mae"] == 0.25


def test_a_version_3_store_gains_the_metrics_column_and_keeps_its_epochs(tmp_path):
    path = tmp_path / "v3.db"
    with sqlite3.connect(path) as conn:
        for script in schema._MIGRATIONS[:3]:
            conn.executescript(script)
        conn.execute("INSERT INTO runs (id, status, seed, config) VALUES ('r', 'done', 0, '{\"task\": \"t\", \"lr\": 0.1}')")
        conn.execute("INSERT INTO epoch_metrics VALUES ('r', 1, 5, 1.0, 0.5, 0.1, 0.9, 2.0)")
        conn.execute("PRAGMA user_version = 3")
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION
    [epoch] = store.epochs("r")
    assert (epoch.val_loss, epoch.val_error, epoch.metrics) == (0.5, 0.1, {})


@pytest.mark.parametrize("higher", [False, True])
def test_rank_follows_the_declared_objective_and_direction(tmp_path, higher):
    store = Store(tmp_path / "runs.db")
    declared = Objective("val_r2" if higher else "val_mae", higher, "MSE", "")
    for i, (lr, mae) in enumerate([(0.1, 0.30), (0.2, 0.10), (0.4, 0.20)]):
        _run(store, f"r{i}", lr, 0, mae, declared)
    runs = store.runs()
    epochs = store.epochs_for([r.id for r in runs])
    assert objective(runs, epochs) == declared.metric
    ranked = rank(runs, epochs)
    # val_mae 0.10 is the lowest error and val_r2 0.90 the highest: the same run wins.
    assert [r.config.lr for r in ranked] == [0.2, 0.4, 0.1]
    assert ranked[0].higher_is_better is higher


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0.0, 10.0, allow_nan=False), min_size=2, max_size=6, unique=True),
       st.booleans())  # fmt: skip
def test_rank_orders_by_the_declared_direction(values, higher):
    declared = Objective("val_score", higher)
    runs = [RunRecord(f"r{i}", "s", RunStatus.DONE, RunConfig(task="t", lr=0.1 * (i + 1)), 0,
                      extras={"objective": declared.to_dict()}) for i in range(len(values))]  # fmt: skip
    epochs = {r.id: [EpochRecord(r.id, 1, 1, 1.0, 1.0, None, None, 0.0, {"val_score": v})]
              for r, v in zip(runs, values)}  # fmt: skip
    means = [r.mean for r in rank(runs, epochs)]
    assert means == sorted(values, reverse=higher)
