"""Instrument series and findings in the store: written with the run, read back, forgotten on
a new attempt, and an older store still opens."""

from __future__ import annotations

import math
import sqlite3
from contextlib import closing

from lrlab.core.diagnostics import Finding
from lrlab.core.records import RunConfig, RunRecord, RunStatus
from lrlab.store import schema
from lrlab.store.sqlite import SCHEMA_VERSION, Store
from lrlab.training.recorder import Recorder


def _record(run_id="r"):
    return RunRecord(
        id=run_id, sweep=None, status=RunStatus.QUEUED, config=RunConfig(task="t", lr=0.1), seed=0
    )


def test_series_and_findings_are_stored_and_read_back(tmp_path):
    store = Store(tmp_path / "s.db")
    store.begin_run(_record())
    found = Finding.at_step(12, "spike", "step 12: the loss 9 spiked", {"loss": 9.0, "limit": math.inf})
    store.append_metrics(
        "r", series={"update_ratio/group0": ([0, 1, 2], [1e-3, 2e-3, float("nan")])}, findings=[found]
    )
    store.append_metrics(
        "r", series={"update_ratio/group0": ([2, 3], [5e-3, 4e-3]), "sharpness": ([0], [7.5])}
    )
    again = Store(tmp_path / "s.db", readonly=True)
    got = again.instruments("r")
    assert got["update_ratio/group0"].steps == [0, 1, 2, 3]
    assert got["update_ratio/group0"].values == [1e-3, 2e-3, 5e-3, 4e-3]  # the later block wins at step 2
    assert got["sharpness"].values == [7.5]
    (back,) = again.findings("r")
    assert (back.step, back.kind, back.message) == (12, "spike", "step 12: the loss 9 spiked")
    assert back.evidence == {"loss": 9.0, "limit": math.inf}


def test_a_run_begun_again_forgets_them_and_a_deleted_run_takes_them_along(tmp_path):
    store = Store(tmp_path / "s.db")
    recorder = Recorder(store, "r", RunConfig(task="t", lr=0.1))
    recorder.begin()
    for step in range(200):
        recorder.step(step, 1, [0.1], None, 50.0 if step == 150 else 1.0, 1.0)
    recorder.end(RunStatus.DONE)
    assert [f.step for f in store.findings("r")] == [150]
    recorder.begin()
    assert store.findings("r") == [] and store.instruments("r") == {}
    recorder.step(0, 1, [0.1], None, 1.0, 1.0)
    recorder.end(RunStatus.DONE)
    store.append_metrics("r", findings=[Finding.at_step(1, "spike", "x")])
    store.delete_runs(["r"])
    with closing(sqlite3.connect(tmp_path / "s.db")) as conn:
        assert conn.execute("SELECT COUNT(*) FROM run_findings").fetchone() == (0,)


def test_a_version_5_store_opens_read_only_as_it_is_and_migrates_on_a_writers_open(tmp_path):
    path = tmp_path / "v5.db"
    with closing(sqlite3.connect(path)) as conn:
        for index in range(5):
            migration = schema._MIGRATIONS[index]
            if callable(migration):
                migration(conn)
            else:
                conn.executescript(migration)
        conn.execute(
            "INSERT INTO runs (id, status, seed, config) VALUES ('old', 'done', 0, '{\"task\": \"t\", \"lr\": 0.1}')"
        )
        conn.execute("PRAGMA user_version = 5")
        conn.commit()
    reader = Store(path, readonly=True)
    assert reader.schema_version == 5 and reader.instruments("old") == {} and reader.findings("old") == []
    reader.close()
    writer = Store(path)
    assert writer.schema_version == SCHEMA_VERSION == 6
    assert writer.run("old").status is RunStatus.DONE and writer.findings("old") == []
    writer.append_metrics("old", findings=[Finding.at_step(3, "lr_audit", "step 3: ...")])
    assert [f.step for f in writer.findings("old")] == [3]
    assert writer.integrity_check() == "ok"


def test_a_run_trained_on_a_ray_worker_lands_with_its_instruments(tmp_path):
    from lrlab.schedules import constant
    from lrlab.sweeps.executors import _import_result, _ray_train

    config = RunConfig(
        task="digits-linear", lr=0.05, optimizer="sgd", schedule=constant(0.05), epochs=1, seed=0
    )
    payload = _ray_train("ray-run", config, "cpu", "s", None)  # what the worker returns (no Ray needed)
    store = Store(tmp_path / "s.db")
    store.upsert_sweep("s", {})
    _import_result(store, payload, owner=None)  # unclaimed: the driver holds no lease in this test
    series = store.instruments("ray-run")
    assert series["update_ratio/group0"].steps == store.steps("ray-run").step.tolist()
    assert series["lr_audit/group0"].values == [1.0] * len(series["lr_audit/group0"])
