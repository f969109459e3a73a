"""Columnar step blocks: any interleaving of writes reads back as the last write of each
step; a finished run is one block; a schema-4 store migrates bit for bit."""

from __future__ import annotations

import math
import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lrlab.core.records import EpochRecord, RunConfig, RunRecord, RunStatus, StepSeries
from lrlab.store import codec, schema
from lrlab.store.sqlite import SCHEMA_VERSION, Store


def _record(run_id: str, sweep: str = "s") -> RunRecord:
    config = RunConfig(task="digits-linear", lr=0.1, epochs=1, batch_size=32)
    return RunRecord(id=run_id, sweep=sweep, status="queued", config=config, seed=0)


def _blocks(store: Store, run_id: str) -> list[tuple[int, int, int, int]]:
    """The run's blocks as (seq, first_step, last_step, n), in write order."""
    conn = store._connection()
    return conn.execute(
        "SELECT seq, first_step, last_step, n FROM step_blocks WHERE run_id = ? ORDER BY seq", (run_id,)
    ).fetchall()


def _bits(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)


def _assert_same(got: StepSeries, want: StepSeries) -> None:
    np.testing.assert_array_equal(got.step, want.step)
    np.testing.assert_array_equal(got.epoch, want.epoch)
    assert got.step.dtype == np.int64 and got.epoch.dtype == np.int64
    for name in ("lr", "lrs", "momentum", "loss", "grad_norm"):
        a, b = getattr(got, name), getattr(want, name)
        assert a.shape == b.shape and a.dtype == np.float64, name
        np.testing.assert_array_equal(_bits(a), _bits(b), err_msg=name)


# ---------------------------------------------------------------- any interleaving of writes

values = st.floats(allow_nan=True, allow_infinity=True, width=64)


@st.composite
def writes(draw: st.DrawFn) -> tuple[int, list[tuple[str, str, list[tuple]]]]:
    """(param groups, [(op, run, rows)]): appends to two runs with repeated steps, NaNs and
    momentum None; now and then a run ends (its blocks fold) and is written again."""
    groups = draw(st.sampled_from([1, 3]))
    row = st.tuples(
        st.integers(0, 40), st.integers(0, 5), st.lists(values, min_size=groups, max_size=groups),
        st.none() | values, values, values,
    )  # fmt: skip
    ops = draw(
        st.lists(
            st.tuples(st.sampled_from(["append"] * 6 + ["end"]), st.sampled_from(["a", "b"]),
                      st.lists(row, min_size=1, max_size=6)),
            max_size=45,
        )
    )
    return groups, ops


def _oracle(rows: dict[int, tuple], groups: int, run_id: str) -> StepSeries:
    order = sorted(rows)
    n = len(order)
    lrs = np.array([rows[s][2] for s in order], dtype=np.float64).reshape(n, groups)
    nan = math.nan
    return StepSeries(
        run_id, np.array(order, dtype=np.int64), np.array([rows[s][1] for s in order], dtype=np.int64),
        lrs[:, 0].copy(), lrs, np.array([nan if rows[s][3] is None else rows[s][3] for s in order], dtype=np.float64),
        np.array([rows[s][4] for s in order], dtype=np.float64), np.array([rows[s][5] for s in order], dtype=np.float64),
    )  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(writes())
def test_any_interleaving_of_writes_reads_back_as_the_last_write_of_each_step(case):
    groups, ops = case
    store = Store(":memory:")
    store.create_runs([_record("a"), _record("b")])
    oracle: dict[str, dict[int, tuple]] = {"a": {}, "b": {}}
    for op, run_id, rows in ops:
        if op == "end":
            store.end_run(run_id, RunStatus.QUEUED)
            assert len(_blocks(store, run_id)) <= 1  # an ended run is one block
        else:
            store.append_metrics(run_id, rows)
            for row in rows:  # later rows, like later writes, win
                oracle[run_id][row[0]] = row
        assert len(_blocks(store, run_id)) <= codec.MAX_BLOCKS + 1
    got = store.steps_for(["b", "a", "missing"])
    assert list(got) == ["b", "a", "missing"] and len(got["missing"]) == 0
    for run_id in ("a", "b"):
        _assert_same(store.steps(run_id), _oracle(oracle[run_id], groups, run_id) if oracle[run_id] else got["missing"])
        _assert_same(got[run_id], store.steps(run_id))
        assert store.step_count(run_id) == len(oracle[run_id])
    for run_id in ("a", "b"):  # folding the blocks changes no value
        before = store.steps(run_id)
        store.end_run(run_id, RunStatus.DONE)
        _assert_same(store.steps(run_id), before)


# ---------------------------------------------------------------- compaction and counting


def _rows(steps: range, loss: float, groups: int = 1) -> list[tuple]:
    return [(s, 1 + s // 100, [0.1 * (g + 1) for g in range(groups)], None if s % 3 else 0.9, loss + s, 1.0)
            for s in steps]  # fmt: skip


def test_a_resumed_run_overrides_the_steps_after_its_checkpoint_and_ends_as_one_block(tmp_path):
    store = Store(tmp_path / "runs.db")
    store.begin_run(_record("r"))
    for start in range(0, 600, 100):  # the first attempt reaches step 599
        store.append_metrics("r", _rows(range(start, start + 100), loss=0.0, groups=2))
    for start in range(400, 1000, 100):  # resumed from a checkpoint at step 400
        store.append_metrics("r", _rows(range(start, start + 100), loss=1000.0, groups=2))
    assert len(_blocks(store, "r")) == 12
    running = store.steps("r")
    np.testing.assert_array_equal(running.step, np.arange(1000))
    np.testing.assert_array_equal(running.loss[:400], np.arange(400.0))
    np.testing.assert_array_equal(running.loss[400:], 1000.0 + np.arange(400, 1000))
    assert running.lrs.shape == (1000, 2) and np.all(running.lrs[:, 1] == 0.2)
    assert np.isnan(running.momentum[1]) and running.momentum[0] == 0.9
    assert store.step_count("r") == 1000  # overlapping blocks: the distinct steps
    store.end_run("r", RunStatus.DONE)
    assert _blocks(store, "r") == [(11, 0, 999, 1000)]
    _assert_same(store.steps("r"), running)
    assert store.step_count("r") == 1000
    assert Store(tmp_path / "runs.db", readonly=True).step_count("r") == 1000


def test_one_step_per_write_keeps_a_running_run_to_a_few_blocks():
    store = Store(":memory:")
    store.begin_run(_record("r"))
    counts = []
    for step in range(3000):
        store.append_metrics("r", [(step, 1, [0.1], None, float(step), 1.0)])
        counts.append(len(_blocks(store, "r")))
    assert max(counts) == codec.MAX_BLOCKS
    sizes = [n for *_, n in _blocks(store, "r")]
    assert sum(sizes) == 3000 and sizes == sorted(sizes, reverse=True)  # older blocks are the larger
    series = store.steps("r")
    np.testing.assert_array_equal(series.step, np.arange(3000))
    np.testing.assert_array_equal(series.loss, np.arange(3000.0))
    assert store.step_count("r") == 3000


def test_a_repeated_step_within_one_write_keeps_the_later_row_and_import_is_one_block():
    store = Store(":memory:")
    rows = [(2, 1, [0.1], None, 2.0, 1.0), (0, 1, [0.1], 0.9, 0.0, 1.0), (2, 1, [0.1], None, 9.0, 1.0)]
    done = RunRecord(id="r", sweep="s", status="done", config=_record("r").config, seed=0)
    store.import_run(done, rows, [EpochRecord("r", 1, 2, 1.0, 1.0, 0.1, 0.9, 0.1)])
    assert _blocks(store, "r") == [(0, 0, 2, 2)]
    series = store.steps("r")
    assert series.step.tolist() == [0, 2] and series.loss.tolist() == [0.0, 9.0]
    assert store.step_count("r") == 2


def test_begin_run_and_deleting_a_sweep_remove_the_blocks(tmp_path):
    store = Store(tmp_path / "runs.db")
    store.upsert_sweep("s", {"name": "s"})
    for rid in ("a", "b"):
        store.begin_run(_record(rid))
        store.append_metrics(rid, _rows(range(50), 0.0))
        store.append_metrics(rid, _rows(range(50, 80), 0.0))
    store.begin_run(_record("a"))  # a new attempt forgets the earlier one's steps
    assert store.step_count("a") == 0 and len(store.steps("a")) == 0 and store.step_count("b") == 80
    assert store.delete_sweep("s") == 2
    with closing(sqlite3.connect(tmp_path / "runs.db")) as conn:
        assert conn.execute("SELECT COUNT(*) FROM step_blocks").fetchone()[0] == 0
    # Without delete_runs' own delete: the foreign key cascades from runs.
    store.begin_run(_record("c"))
    store.append_metrics("c", _rows(range(10), 0.0))
    store._connection().execute("DELETE FROM runs WHERE id = 'c'")
    assert store.step_count("c") == 0
    assert store.integrity_check() == "ok"


# ---------------------------------------------------------------- migration from schema 4

# What schema 4 wrote for a step row (the INSERT of lrlab before step blocks).
_V4_INSERT = (
    "INSERT OR REPLACE INTO step_metrics (run_id, step, epoch, lr, lrs, momentum, loss, grad_norm) "
    "VALUES (?,?,?,?,?,?,?,?)"
)


def _v4_store(path: Path) -> dict[str, list[tuple]]:
    """A real schema-4 file, written with schema 4's SQL: a one-group run with NaN losses and
    momentum None, a three-group run, a run with no steps."""
    rng = np.random.default_rng(0)
    runs: dict[str, list[tuple]] = {"single": [], "groups": [], "empty": []}
    for step in range(3000):
        loss = math.nan if step >= 2990 else float(rng.normal() * 10.0 ** rng.integers(-300, 300))
        momentum = None if step % 7 == 0 else float(rng.random())
        runs["single"].append((step, 1 + step // 1000, [float(rng.random())], momentum, loss, float(rng.random())))
    for step in range(0, 500, 2):
        lrs = [float(v) for v in rng.random(3)]
        runs["groups"].append((step, 1, lrs, 0.9, 5e-324 * step, math.inf if step == 4 else 1.5))
    with closing(sqlite3.connect(path)) as conn:
        for migration in schema._MIGRATIONS[:4]:
            conn.executescript(migration)
        for rid in runs:
            conn.execute(
                "INSERT INTO runs (id, sweep, status, seed, config) VALUES (?, 's', 'done', 0, ?)",
                (rid, '{"task": "digits-linear", "lr": 0.1}'),
            )
            conn.executemany(
                _V4_INSERT,
                [(rid, s, e, lrs[0], np.asarray(lrs, dtype=np.float64).tobytes() if len(lrs) > 1 else None,
                  m, loss, norm) for s, e, lrs, m, loss, norm in runs[rid]],
            )  # fmt: skip
        conn.execute(
            "INSERT INTO epoch_metrics (run_id, epoch, step, train_loss, val_loss, val_error, val_accuracy, "
            "wall_time, metrics) VALUES ('single', 1, 999, 1.0, 1.1, 0.2, 0.8, 3.0, '{\"val_mae\": 0.5}')"
        )
        conn.execute("PRAGMA user_version = 4")
        conn.commit()
    return runs


def test_a_version_4_store_migrates_in_place_keeping_every_value_bit_for_bit(tmp_path):
    path = tmp_path / "v4.db"
    written = _v4_store(path)
    # Read as schema 4 (a reader does not migrate): the old one-row-per-step path.
    old = Store(path, readonly=True)
    assert old.schema_version == 4
    before = old.steps_for(list(written))
    counts = {rid: old.step_count(rid) for rid in written}
    old.close()
    assert counts == {"single": 3000, "groups": 250, "empty": 0}
    single = before["single"]
    assert np.isnan(single.loss[-10:]).all() and np.isnan(single.momentum[::7]).all()
    np.testing.assert_array_equal(single.loss[:-10], [row[4] for row in written["single"][:-10]])

    store = Store(path)  # a writer migrates
    assert store.schema_version == SCHEMA_VERSION == 6
    with closing(sqlite3.connect(path)) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "step_metrics" not in tables and "step_blocks" in tables
        assert conn.execute("SELECT run_id, n, groups FROM step_blocks ORDER BY run_id").fetchall() == [
            ("groups", 250, 3), ("single", 3000, 1)
        ]  # fmt: skip
    for rid in written:
        _assert_same(store.steps(rid), before[rid])
        assert store.step_count(rid) == counts[rid]
    assert store.epochs("single")[0].metrics == {"val_mae": 0.5}
    assert store.integrity_check() == "ok"
    # The migrated store is written and read as any other.
    store.append_metrics("groups", [(1, 1, [1.0, 2.0, 3.0], None, 7.0, 7.0)])
    assert store.steps("groups").step[:3].tolist() == [0, 1, 2] and store.step_count("groups") == 251
    assert store.delete_runs(["single"]) == 1 and store.step_count("single") == 0
