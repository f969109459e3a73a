"""Runs and their epochs in the file: rows to records and back, and the run lifecycle.

A run is begun, given metrics and ended, each in one write transaction (``tx``) that the
:class:`~lrlab.store.sqlite.Store` opens; the functions here are the SQL of those steps.
Runs are registered insert-or-ignore by id: registering a run that is already stored leaves
it as it is.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from lrlab.core.records import EpochRecord, RunConfig, RunRecord, RunStatus
from lrlab.store.codec import StepRow, append_block, compact, series_of_rows

__all__ = [
    "RUN_COLUMNS",
    "append",
    "begin",
    "delete_runs",
    "end",
    "epochs_for",
    "insert_runs",
    "readable_run_columns",
    "run_record",
    "select_runs",
]

RUN_COLUMNS = (
    "id, sweep, status, config, seed, error, diverged_step, created_at, started_at, "
    "finished_at, lrlab_version, torch_version, extras, schedule_json, momentum_json"
)
_EPOCH_COLUMNS = "run_id, epoch, step, train_loss, val_loss, val_error, val_accuracy, wall_time, metrics"
_INSERT_COLUMNS = (
    "id, sweep, status, task, optimizer, schedule, lr, seed, epochs, batch_size, config, error, "
    "diverged_step, created_at, started_at, finished_at, lrlab_version, torch_version, extras, "
    "schedule_json, momentum_json"
)
# Insert-or-ignore by id: registering a run that is already stored leaves it as it is.
_INSERT_RUN = (
    f"INSERT OR IGNORE INTO runs ({_INSERT_COLUMNS}) VALUES ({', '.join('?' * (_INSERT_COLUMNS.count(',') + 1))})"
)
# SQLite's default limit on the variables of one statement is 999: delete in chunks.
_CHUNK = 500


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _metrics(values: Any) -> str | None:
    """An epoch's named metrics as JSON (non-finite values as null), None when empty."""
    if not values:
        return None
    out = {str(k): _float(v) for k, v in values.items()}
    return json.dumps({k: v if v is not None and math.isfinite(v) else None for k, v in out.items()}, sort_keys=True)


# ---------------------------------------------------------------- rows and records


def _run_row(r: RunRecord, now: float) -> tuple[Any, ...]:
    c = r.config
    return (
        r.id, r.sweep, r.status.value, c.task, c.optimizer, str(c.schedule), c.lr, int(r.seed),
        c.epochs, c.batch_size, json.dumps(c.to_dict(), sort_keys=True), r.error, r.diverged_step,
        r.created_at if r.created_at is not None else now, r.started_at, r.finished_at,
        r.lrlab_version, r.torch_version, json.dumps(r.extras, sort_keys=True),
        json.dumps(c.schedule.to_dict(), sort_keys=True),
        None if c.momentum is None else json.dumps(c.momentum.to_dict(), sort_keys=True),
    )  # fmt: skip


def run_record(row: Sequence[Any]) -> RunRecord:
    """The record of a row of ``RUN_COLUMNS``."""
    (rid, sweep, status, config, seed, error, div, created, started, finished, lv, tv, extras,
     schedule_json, momentum_json) = row  # fmt: skip
    data = json.loads(config)
    # The program's form of the schedules where stored (older rows: the spec strings).
    if schedule_json:
        data["schedule"] = json.loads(schedule_json)
    if momentum_json:
        data["momentum"] = json.loads(momentum_json)
    return RunRecord(
        id=rid,
        sweep=sweep,
        status=RunStatus.parse(status),
        config=RunConfig.from_dict(data),
        seed=int(seed),
        error=error,
        diverged_step=div,
        created_at=created,
        started_at=started,
        finished_at=finished,
        lrlab_version=lv,
        torch_version=tv,
        extras=json.loads(extras or "{}"),
    )


def readable_run_columns(conn: sqlite3.Connection) -> str:
    """``RUN_COLUMNS`` as an older store (read as it is, never migrated) can give them:
    a column it lacks reads as NULL."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
    return ", ".join(name if name in columns else f"NULL AS {name}" for name in RUN_COLUMNS.split(", "))


def select_runs(
    conn: sqlite3.Connection,
    columns: str,
    sweep: str | None = None,
    ids: Sequence[str] | None = None,
    status: RunStatus | str | None = None,
) -> list[RunRecord]:
    """The runs of ``sweep``, with ``ids``, of ``status`` (each when given), in creation order."""
    where, params = [], []
    if sweep is not None:
        where.append("sweep = ?")
        params.append(sweep)
    if status is not None:
        where.append("status = ?")
        params.append(RunStatus.parse(status).value)
    if ids is not None:
        ids = list(ids)
        if not ids:
            return []
        where.append(f"id IN ({', '.join('?' * len(ids))})")
        params.extend(ids)
    sql = f"SELECT {columns} FROM runs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY created_at, rowid"
    return [run_record(row) for row in conn.execute(sql, params)]


def epochs_for(conn: sqlite3.Connection, run_ids: Sequence[str]) -> dict[str, list[EpochRecord]]:
    """Epoch metrics of many runs in one query: ``{run_id: [EpochRecord, ...]}``."""
    ids = list(dict.fromkeys(run_ids))
    out: dict[str, list[EpochRecord]] = {rid: [] for rid in ids}
    if not ids:
        return out
    # A temp table keeps this one query however many ids there are (no variable limit).
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS _wanted (id TEXT PRIMARY KEY)")
    conn.execute("DELETE FROM _wanted")
    conn.executemany("INSERT OR IGNORE INTO _wanted VALUES (?)", [(rid,) for rid in ids])
    rows = conn.execute(
        f"SELECT {_EPOCH_COLUMNS} FROM epoch_metrics JOIN _wanted ON run_id = _wanted.id ORDER BY run_id, epoch"
    ).fetchall()
    conn.execute("DELETE FROM _wanted")
    for *row, metrics in rows:
        out[row[0]].append(EpochRecord(*row, json.loads(metrics) if metrics else {}))
    return out


# ---------------------------------------------------------------- writing (inside a transaction)


def insert_runs(tx: sqlite3.Connection, records: Sequence[RunRecord]) -> None:
    """Register runs; a run whose id is already stored is left as it is."""
    now = time.time()
    tx.executemany(_INSERT_RUN, [_run_row(r, now) for r in records])


def _merged_extras(tx: sqlite3.Connection, run_id: str, extras: dict[str, Any]) -> str | None:
    """The run's stored extras updated with ``extras``, as JSON; None when there is no run."""
    row = tx.execute("SELECT extras FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        return None
    return json.dumps({**json.loads(row[0] or "{}"), **extras}, sort_keys=True)


def begin(tx: sqlite3.Connection, record: RunRecord, extras: dict[str, Any], owner: str | None) -> None:
    """Mark the run running (registered first if needed): an earlier attempt's metrics are
    forgotten, ``started_at`` and the versions stamped, ``extras`` merged, ``owner`` claims it."""
    tx.execute(_INSERT_RUN, _run_row(replace(record, status=RunStatus.QUEUED), time.time()))
    tx.execute("DELETE FROM step_blocks WHERE run_id = ?", (record.id,))
    tx.execute("DELETE FROM epoch_metrics WHERE run_id = ?", (record.id,))
    merged = _merged_extras(tx, record.id, extras)
    tx.execute(
        "UPDATE runs SET status = 'running', error = NULL, diverged_step = NULL, started_at = ?, "
        "finished_at = NULL, lrlab_version = ?, torch_version = ?, extras = ?, owner = ?, heartbeat = ? "
        "WHERE id = ?",
        (time.time(), record.lrlab_version, record.torch_version, merged, owner, time.time(), record.id),
    )


def append(tx: sqlite3.Connection, run_id: str, steps: Sequence[StepRow], epochs: Sequence[EpochRecord]) -> None:
    """One write's step rows (a new step block) and epoch records of a run."""
    if steps:
        append_block(tx, series_of_rows(run_id, steps))
    if epochs:
        tx.executemany(
            f"INSERT OR REPLACE INTO epoch_metrics ({_EPOCH_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
            [
                (run_id, int(e.epoch), int(e.step), _float(e.train_loss), _float(e.val_loss),
                 _float(e.val_error), _float(e.val_accuracy), float(e.wall_time), _metrics(e.metrics))
                for e in epochs
            ],
        )  # fmt: skip


def end(
    tx: sqlite3.Connection,
    run_id: str,
    status: RunStatus,
    error: str | None,
    diverged_step: int | None,
    extras: dict[str, Any],
    *,
    compact_steps: bool = True,
) -> bool:
    """Set the run's status (a final one stamps ``finished_at``), merge ``extras``, fold its
    step blocks into one (with ``compact_steps``) and release its claim. False when there is
    no such run (nothing written)."""
    merged = _merged_extras(tx, run_id, extras)
    if merged is None:
        return False
    if compact_steps:
        compact(tx, run_id)
    finished = time.time() if status.is_ended else None
    tx.execute(
        "UPDATE runs SET status = ?, error = ?, diverged_step = ?, finished_at = ?, extras = ?, "
        "owner = NULL, heartbeat = NULL WHERE id = ?",
        (status.value, error, diverged_step, finished, merged, run_id),
    )
    return True


def delete_runs(tx: sqlite3.Connection, ids: Sequence[str]) -> int:
    """Delete runs and their metrics; returns how many runs were deleted."""
    deleted = 0
    for start in range(0, len(ids), _CHUNK):
        chunk = list(ids[start : start + _CHUNK])
        marks = ", ".join("?" * len(chunk))
        tx.execute(f"DELETE FROM step_blocks WHERE run_id IN ({marks})", chunk)
        tx.execute(f"DELETE FROM epoch_metrics WHERE run_id IN ({marks})", chunk)
        deleted += tx.execute(f"DELETE FROM runs WHERE id IN ({marks})", chunk).rowcount
    return deleted
