"""The SQLite store: rows written are read back as records, in a sound file."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrlab.core.records import EpochRecord, FinderRecord, RunConfig, RunRecord, RunStatus
from lrlab.store.sqlite import SCHEMA_VERSION, Store, StoreError


def _run(run_id: str = "r1", sweep: str | None = "s", seed: int = 0, **config) -> RunRecord:
    cfg = {"task": "digits-linear", "optimizer": "sgd", "schedule": "constant(lr=0.1)", "lr": 0.1,
           "seed": seed, "epochs": 2, "batch_size": 32, **config}  # fmt: skip
    return RunRecord(id=run_id, sweep=sweep, status="queued", config=cfg, seed=seed)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "sub" / "lrlab.db")
    yield s
    s.close()


def test_creates_directories_schema_version_and_wal(tmp_path):
    path = tmp_path / "a" / "b" / "runs.db"
    store = Store(path)
    assert path.exists()
    assert store.schema_version == SCHEMA_VERSION
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"sweeps", "runs", "step_blocks", "epoch_metrics", "finder_results"} <= tables
    assert "step_metrics" not in tables  # steps are columnar blocks since schema 5
    # Typed columns: the lr of a run is a REAL column, not buried in JSON.
    columns = {row[1]: row[2] for row in conn.execute("PRAGMA table_info(runs)")}
    assert columns["lr"] == "REAL" and columns["seed"] == "INTEGER"


def test_reopening_keeps_data_and_does_not_migrate_twice(tmp_path):
    path = tmp_path / "x.db"
    Store(path).create_runs([_run()])
    again = Store(path)
    assert [r.id for r in again.runs()] == ["r1"]
    assert again.schema_version == SCHEMA_VERSION


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "x.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this lrlab"):
        Store(path)


def test_run_round_trip_and_status_timestamps(store):
    store.upsert_sweep("s", {"name": "s", "task": "digits-linear"})
    store.create_runs([_run()])
    store.create_runs([_run()])  # insert-or-ignore
    assert store.sweeps() == ["s"]
    assert store.sweep_spec("s")["task"] == "digits-linear"
    record = store.run("r1")
    assert record.status is RunStatus.QUEUED and record.config.lr == 0.1 and record.seed == 0
    assert isinstance(record.config, RunConfig) and str(record.config.schedule) == "constant(lr=0.1)"
    assert record.created_at is not None and record.started_at is None
    store.begin_run(_run())
    assert store.run("r1").started_at is not None and store.run("r1").status is RunStatus.RUNNING
    store.end_run("r1", "diverged", error="loss 1e9 > 4 x initial", diverged_step=17)
    record = store.run("r1")
    assert record.status == "diverged" and record.diverged_step == 17
    assert record.finished_at >= record.started_at
    assert store.runs(status="diverged")[0].id == "r1"
    assert store.runs(status="done") == []


def test_unknown_run_and_bad_status(store):
    with pytest.raises(KeyError, match="no run 'nope'"):
        store.run("nope")
    with pytest.raises(KeyError):
        store.end_run("nope", "done")
    store.create_runs([_run()])
    with pytest.raises(ValueError, match="status must be one of"):
        store.end_run("r1", "finished")


def test_runs_filters_by_sweep_ids_and_status(store):
    store.create_runs([_run("a", "s1"), _run("b", "s1", seed=1), _run("c", "s2")])
    assert [r.id for r in store.runs(sweep="s1")] == ["a", "b"]
    assert [r.id for r in store.runs(ids=["c", "a"])] == ["a", "c"]
    assert store.runs(ids=[]) == []
    store.end_run("b", RunStatus.DONE)
    assert [r.id for r in store.runs(sweep="s1", status="done")] == ["b"]


def test_steps_round_trip_with_groups_and_missing_momentum(store):
    store.create_runs([_run()])
    rows = [(i, 1 + i // 5, [0.1 * (i + 1), 1.0 * (i + 1)], None if i % 2 else 0.9, 2.0 - i / 10, 0.5 + i)
            for i in range(10)]  # fmt: skip
    store.append_metrics("r1", rows[:4])
    store.append_metrics("r1", rows[4:])
    series = store.steps("r1")
    assert len(series) == 10
    np.testing.assert_array_equal(series.step, np.arange(10))
    np.testing.assert_allclose(series.lr, [0.1 * (i + 1) for i in range(10)])
    assert series.lrs.shape == (10, 2)
    np.testing.assert_allclose(series.lrs[:, 1], np.arange(1, 11))
    assert np.isnan(series.momentum[1]) and series.momentum[0] == 0.9
    np.testing.assert_allclose(series.grad_norm, 0.5 + np.arange(10))
    assert store.step_count("r1") == 10


def test_single_group_steps_and_empty_series(store):
    store.create_runs([_run()])
    assert len(store.steps("r1")) == 0
    store.append_metrics("r1", [(0, 1, [0.5], 0.9, 1.0, 2.0)])
    series = store.steps("r1")
    assert series.lrs.shape == (1, 1) and series.lrs[0, 0] == 0.5


def test_epochs_and_epochs_for_many_runs(store):
    ids = [f"r{i}" for i in range(30)]
    store.create_runs([_run(i) for i in ids])
    for i, rid in enumerate(ids):
        for epoch in (1, 2):
            store.append_metrics(
                rid, epochs=[EpochRecord(rid, epoch, 10 * epoch, 1.0 / epoch, 1.1 / epoch, 0.2, 0.8, i + epoch)]
            )
    store.append_metrics("r3", epochs=[EpochRecord("r3", 2, 20, None, 9.0, None, None, 1.0)])  # replace
    got = store.epochs_for([*ids, "missing"])
    assert set(got) == set(ids) | {"missing"} and got["missing"] == []
    assert [e.epoch for e in got["r5"]] == [1, 2]
    assert got["r5"][1].val_loss == pytest.approx(0.55)
    assert store.epochs("r3")[1].val_loss == 9.0 and store.epochs("r3")[1].val_accuracy is None


def test_finder_results_round_trip(store):
    lrs = np.geomspace(1e-5, 1, 50)
    record = FinderRecord(id="f1", task="digits-mlp", optimizer="sgd", lrs=lrs, losses=np.linspace(3, 1, 50),
                          smoothed=np.linspace(3, 1.1, 50), suggestions={"valley": 0.01, "steep": 0.003},
                          lr=0.01, reason="valley", base_lr=0.001, max_lr=0.1, sweep=None, config={"k": 1})  # fmt: skip
    store.save_finder_result(record)
    (got,) = store.finder_results(task="digits-mlp")
    np.testing.assert_array_equal(got.lrs, lrs)
    assert got.suggestions == {"valley": 0.01, "steep": 0.003} and got.config == {"k": 1}
    assert got.max_lr == 0.1 and got.created_at is not None
    assert store.finder_results(task="other") == []


def test_delete_runs_removes_metrics(store):
    store.create_runs([_run("a"), _run("b")])
    store.append_metrics("a", [(0, 1, [0.1], None, 1.0, 1.0)], [EpochRecord("a", 1, 1, 1.0, 1.0, 0.1, 0.9, 0.1)])
    assert store.delete_runs(["a", "zzz"]) == 1
    conn = sqlite3.connect(store.path)
    assert conn.execute("SELECT COUNT(*) FROM step_blocks").fetchone()[0] == 0
    assert store.step_count("a") == 0 and len(store.steps("a")) == 0
    assert conn.execute("SELECT COUNT(*) FROM epoch_metrics").fetchone()[0] == 0
    assert [r.id for r in store.runs()] == ["b"]
    assert store.integrity_check() == "ok"


def test_begin_run_forgets_an_earlier_attempts_metrics(store):
    store.begin_run(_run())
    store.append_metrics("r1", [(0, 1, [0.1], None, 1.0, 1.0)], [EpochRecord("r1", 1, 1, 1.0, 1.0, 0.1, 0.9, 0.1)])
    store.end_run("r1", RunStatus.QUEUED, error="interrupted")
    assert store.run("r1").status is RunStatus.QUEUED and store.run("r1").finished_at is None
    store.begin_run(_run())
    assert store.run("r1").status is RunStatus.RUNNING and store.step_count("r1") == 0
    assert store.epochs("r1") == []


def test_import_run_lands_whole_or_not_at_all(store):
    rows = [(0, 1, [0.1], None, 1.0, 1.0), (1, 1, [0.1], None, 0.9, 1.0)]
    epochs = [EpochRecord("r1", 1, 2, 0.95, 0.9, 0.1, 0.9, 0.1)]
    done = RunRecord(id="r1", sweep="s", status="done", config=_run().config, seed=0, extras={"backend": "ray"})
    store.import_run(done, rows, epochs)
    got = store.run("r1")
    assert got.status is RunStatus.DONE and got.extras == {"backend": "ray"} and store.step_count("r1") == 2
    # A row that cannot be written (a step that is not a number) rolls the whole import back.
    broken = [*rows, ("not a step", 1, [0.1], None, 0.8, 1.0)]
    with pytest.raises(ValueError):
        store.import_run(RunRecord(id="r2", sweep="s", status="done", config=_run().config, seed=0), broken, [])
    assert not store.has_run("r2") and store.step_count("r2") == 0
    assert store.integrity_check() == "ok"


def test_config_is_json_and_extras_merge(store):
    store.begin_run(_run(finetune={"rules": {"head.*": 10.0}}), {"device": "cpu"})
    store.end_run("r1", "done", extras={"wall_time": 1.5})
    record = store.run("r1")
    assert record.config.finetune == {"rules": {"head.*": 10.0}}
    assert record.extras == {"device": "cpu", "wall_time": 1.5}
    raw = sqlite3.connect(store.path).execute("SELECT config FROM runs").fetchone()[0]
    assert json.loads(raw)["finetune"]["rules"]["head.*"] == 10.0


def test_store_pickles_as_its_path(store):
    import pickle

    clone = pickle.loads(pickle.dumps(store))
    store.create_runs([_run()])
    assert [r.id for r in clone.runs()] == ["r1"]
    with pytest.raises(TypeError):
        pickle.dumps(Store(":memory:"))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=1, max_size=40))
def test_losses_round_trip_exactly(losses):
    store = Store(":memory:")
    store.create_runs([_run()])
    store.append_metrics("r1", [(i, 1, [0.1], None, loss, abs(loss)) for i, loss in enumerate(losses)])
    np.testing.assert_array_equal(store.steps("r1").loss, np.asarray(losses))


def test_schedules_are_stored_as_spec_and_as_dict_and_read_back_as_objects(store):
    from lrlab.schedules import cosine, warmup

    schedule = warmup(cosine(0.1, total_steps=90), steps=10)
    config = RunConfig(task="digits-linear", lr=0.1, schedule=schedule, momentum="constant(lr=0.9)")
    store.create_runs([RunRecord(id="w", sweep="s", status="queued", config=config, seed=0)])
    row = sqlite3.connect(store.path).execute("SELECT schedule, schedule_json, momentum_json, config FROM runs").fetchone()
    assert row[0] == str(schedule) and json.loads(row[1]) == schedule.to_dict()
    assert json.loads(row[2])["name"] == "constant" and json.loads(row[3])["schedule"] == str(schedule)
    got = store.run("w").config
    assert got == config and got.schedule == schedule and got.schedule(5) == schedule(5)
