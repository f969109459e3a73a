"""Store benchmark: reading a run's steps, one row per step (schema 4) against columnar step
blocks (schema 5), side by side in one run.

A real schema-4 file holds one run of 10^4 steps written with schema 4's SQL; a copy opened
read-only is read as it is (the one-row-per-step path), another copy is migrated in place by
a writer and read through step blocks. Also timed: the same 10^4 steps written in ten writes
of 1000 (the recorder's batch) each way, and reading a running run (ten blocks) against the
ended one (one block). ``--sweep PATH`` also reads every run of an existing store (a copy of
it, migrated first when it is older): all runs through ``Store.steps_for``.

Run: ``python -m benchmarks.bench_store`` (writes the "store" section of docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import math
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import write_section
from lrlab.core.records import RunConfig, RunRecord, RunStatus
from lrlab.store import schema
from lrlab.store.sqlite import Store

STEPS = 10_000
BATCH = 1000
V4_INSERT = (
    "INSERT OR REPLACE INTO step_metrics (run_id, step, epoch, lr, lrs, momentum, loss, grad_norm) "
    "VALUES (?,?,?,?,?,?,?,?)"
)


def _rows(steps: int) -> list[tuple[Any, ...]]:
    rng = np.random.default_rng(0)
    loss = 2.3 * np.exp(-np.arange(steps) / 3000) + 0.05 * rng.random(steps)
    loss[-20:] = math.nan  # a run that diverges at its end
    return [(s, 1 + s // 1000, [float(0.1 * (1 + np.cos(s / steps)))], 0.9, float(loss[s]), float(rng.random()))
            for s in range(steps)]  # fmt: skip


def _best(fn: Callable[[], Any], repeat: int = 7) -> tuple[float, Any]:
    best, value = math.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


def _v4_store(path: Path, rows: list[tuple[Any, ...]]) -> float:
    """A schema-4 file with run "r", written with schema 4's SQL in batches; its write time."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        for migration in schema._MIGRATIONS[:4]:
            conn.executescript(migration)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(
            "INSERT INTO runs (id, sweep, status, seed, config) VALUES ('r', 's', 'done', 0, ?)",
            ('{"task": "digits-linear", "lr": 0.1}',),
        )
        conn.execute("PRAGMA user_version = 4")
        start = time.perf_counter()
        for offset in range(0, len(rows), BATCH):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                V4_INSERT,
                [("r", int(s), int(e), float(lrs[0]), None, m, float(loss), float(norm))
                 for s, e, lrs, m, loss, norm in rows[offset : offset + BATCH]],
            )  # fmt: skip
            conn.execute("COMMIT")
        return time.perf_counter() - start


def _v5_write(path: Path, rows: list[tuple[Any, ...]]) -> tuple[float, float, float]:
    """The same steps through the store's writer: write time, then read time while running
    (one block per write) and once ended (one block)."""
    store = Store(path)
    record = RunRecord(id="r", sweep="s", status="queued", config=RunConfig(task="digits-linear", lr=0.1), seed=0)
    store.begin_run(record)
    start = time.perf_counter()
    for offset in range(0, len(rows), BATCH):
        store.append_metrics("r", rows[offset : offset + BATCH])
    written = time.perf_counter() - start
    running, _ = _best(lambda: store.steps("r"))
    store.end_run("r", RunStatus.DONE)
    ended, _ = _best(lambda: store.steps("r"))
    store.close()
    return written, running, ended


def _one_step_writes(path: Path, rows: list[tuple[Any, ...]]) -> tuple[float, float, int]:
    """The steps written one per write, the run left running (as a crashed one is): write time,
    read time, blocks."""
    store = Store(path)
    record = RunRecord(id="r", sweep="s", status="queued", config=RunConfig(task="digits-linear", lr=0.1), seed=0)
    store.begin_run(record)
    start = time.perf_counter()
    for row in rows:
        store.append_metrics("r", [row])
    written = time.perf_counter() - start
    read, series = _best(lambda: store.steps("r"))
    if len(series) != len(rows):
        raise SystemExit("a run written one step per write lost steps")
    blocks = store._connection().execute("SELECT COUNT(*) FROM step_blocks WHERE run_id = 'r'").fetchone()[0]
    store.close()
    return written, read, int(blocks)


def _as_schema_4(store: Store, ids: list[str], path: Path) -> None:
    """The steps of ``ids`` written as schema 4 wrote them (a row per step) into a new file."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        for migration in schema._MIGRATIONS[:4]:
            conn.executescript(migration)
        conn.execute("PRAGMA user_version = 4")
        conn.execute("BEGIN")
        for rid in ids:
            conn.execute("INSERT INTO runs (id, status, seed, config) VALUES (?, 'done', 0, '{}')", (rid,))
            s = store.steps(rid)
            many = s.lrs.shape[1] > 1
            conn.executemany(
                V4_INSERT,
                [(rid, int(s.step[i]), int(s.epoch[i]), float(s.lr[i]), s.lrs[i].tobytes() if many else None,
                  None if math.isnan(s.momentum[i]) else float(s.momentum[i]), float(s.loss[i]),
                  float(s.grad_norm[i])) for i in range(len(s))],
            )  # fmt: skip
        conn.execute("COMMIT")


def _sweep(source: Path, work: Path) -> dict[str, float]:
    """Every run of a store read through step blocks, and through rows as schema 4 kept them."""
    copy = work / "sweep.db"
    shutil.copy(source, copy)
    store = Store(copy)  # migrates an older store in place
    ids = [r.id for r in store.runs()]
    start = time.perf_counter()
    series = store.steps_for(ids)
    first = time.perf_counter() - start
    steps = sum(len(s) for s in series.values())
    del series
    read, _ = _best(lambda: len(store.steps_for(ids)), repeat=3)
    _as_schema_4(store, ids, work / "sweep-v4.db")
    store.close()
    copy.unlink()
    old_store = Store(work / "sweep-v4.db", readonly=True)
    start = time.perf_counter()
    old_series = old_store.steps_for(ids)
    old_read = time.perf_counter() - start
    if sum(len(s) for s in old_series.values()) != steps:
        raise SystemExit("the schema-4 copy of the sweep holds other steps")
    return {"runs": len(ids), "steps": steps, "first": first, "read": read, "old_read": old_read}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sweep", type=Path, help="also read every run of this store (a copy of it)")
    parser.add_argument("--no-write", action="store_true", help="print, do not write docs/benchmarks.md")
    args = parser.parse_args()
    rows = _rows(STEPS)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        v4_write = _v4_store(work / "v4.db", rows)
        shutil.copy(work / "v4.db", work / "v5.db")
        old_store = Store(work / "v4.db", readonly=True)
        old, old_series = _best(lambda: old_store.steps("r"))
        start = time.perf_counter()
        new_store = Store(work / "v5.db")
        migrate = time.perf_counter() - start
        new, new_series = _best(lambda: new_store.steps("r"))
        for name in ("step", "epoch", "lr", "lrs", "momentum", "loss", "grad_norm"):
            a, b = getattr(old_series, name), getattr(new_series, name)
            if a.tobytes() != b.tobytes():
                raise SystemExit(f"the migrated {name} differs from schema 4's")
        v5_write, running, ended = _v5_write(work / "fresh.db", rows)
        single_write, single_read, single_blocks = _one_step_writes(work / "single.db", rows)
        sweep = _sweep(args.sweep, work) if args.sweep else None

    lines = [
        "## Reading a run's steps (`python -m benchmarks.bench_store`)\n",
        f"One run of {STEPS:,} steps (one param group, momentum, the last 20 losses NaN). Schema 4 keeps a row "
        "per step; schema 5 keeps the run as columnar step blocks (one blob per column), folded into one "
        "block when the run ends. Best of 7 reads of `Store.steps`; the same file read both ways (a "
        "read-only schema-4 copy, and a copy migrated in place), every value equal bit for bit.\n",
        "| | schema 4 (row per step) | schema 5 (step blocks) | ratio |",
        "|---|---|---|---|",
        f"| read a finished run of 10^4 steps | {old * 1e3:.1f} ms | {new * 1e3:.2f} ms | {old / new:.0f}x |",
        f"| read a running run (10 writes of {BATCH}: 10 blocks) | | {running * 1e3:.2f} ms | {old / running:.0f}x |",
        f"| read a crashed run written one step per write ({single_blocks} blocks) | | {single_read * 1e3:.2f} ms "
        f"| {old / single_read:.0f}x |",
        f"| write 10^4 steps in 10 writes of {BATCH} | {v4_write * 1e3:.0f} ms | {v5_write * 1e3:.0f} ms | "
        f"{v4_write / v5_write:.1f}x |",
        "",
        f"Migrating the schema-4 file in place (one writer's open): {migrate * 1e3:.0f} ms; the ended run reads "
        f"in {ended * 1e3:.2f} ms. Written one step per write (10^4 transactions, the last blocks folded as "
        f"the run grows), the run took {single_write:.1f} s to write.",
    ]
    if sweep is not None:
        lines += [
            "",
            f"Every run of a stored sweep ({sweep['runs']} runs, {sweep['steps']:,} steps, the report's "
            f"benchmark store) through `Store.steps_for`: {sweep['first']:.2f} s the first time, "
            f"{sweep['read']:.2f} s at best of 3; the same steps as schema 4 kept them, read the old way: "
            f"{sweep['old_read']:.1f} s ({sweep['old_read'] / sweep['first']:.0f}x the first read).",
        ]  # fmt: skip
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        print(f"wrote {write_section('store', body)}")


if __name__ == "__main__":
    main()
