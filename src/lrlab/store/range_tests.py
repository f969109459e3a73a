"""Range tests (learning-rate finder results) in the file: one row per test, its curves as
float64 blobs and its suggestions as JSON."""

from __future__ import annotations

import json
import math
import sqlite3
import time
from typing import Any

from lrlab.core.records import FinderRecord
from lrlab.store.codec import float_array, float_blob

__all__ = ["save_range_test", "select_range_tests"]

_COLUMNS = "id, task, optimizer, lrs, losses, smoothed, suggestions, lr, reason, base_lr, max_lr, sweep, created_at, config"
_SAVE = (
    "INSERT OR REPLACE INTO finder_results (id, task, optimizer, sweep, lrs, losses, smoothed, "
    "suggestions, lr, reason, base_lr, max_lr, created_at, config) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _record(row: tuple[Any, ...]) -> FinderRecord:
    (fid, task, optimizer, lrs, losses, smoothed, suggestions, lr, reason, base_lr, max_lr, sweep,
     created_at, config) = row  # fmt: skip
    return FinderRecord(
        id=fid,
        task=task,
        optimizer=optimizer,
        lrs=float_array(lrs),
        losses=float_array(losses),
        smoothed=float_array(smoothed),
        suggestions={k: float(v) for k, v in json.loads(suggestions).items()},
        lr=float(lr),
        reason=reason,
        base_lr=base_lr,
        max_lr=max_lr,
        sweep=sweep,
        created_at=created_at,
        config=json.loads(config or "{}"),
    )


def select_range_tests(
    conn: sqlite3.Connection, task: str | None = None, sweep: str | None = None
) -> list[FinderRecord]:
    """The stored range tests of ``task`` and ``sweep`` (each when given), oldest first."""
    where, params = [], []
    if task is not None:
        where.append("task = ?")
        params.append(task)
    if sweep is not None:
        where.append("sweep = ?")
        params.append(sweep)
    sql = f"SELECT {_COLUMNS} FROM finder_results"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY created_at, id"
    return [_record(row) for row in conn.execute(sql, params)]


def save_range_test(tx: sqlite3.Connection, record: FinderRecord) -> None:
    """Store (or replace, by id) a range test; one without a finite LR is refused
    (``ValueError``): a test that found no LR is no result to keep."""
    try:
        finite = math.isfinite(float(record.lr))
    except (TypeError, ValueError):
        finite = False
    if not finite:
        raise ValueError(
            f"range test {record.id!r}: lr must be a finite number to be stored, got {record.lr!r} "
            "(a test that found no LR is not stored)"
        )
    tx.execute(
        _SAVE,
        (
            record.id, record.task, record.optimizer, record.sweep, float_blob(record.lrs),
            float_blob(record.losses), float_blob(record.smoothed),
            json.dumps({k: float(v) for k, v in record.suggestions.items()}, sort_keys=True),
            float(record.lr), record.reason, _optional_float(record.base_lr), _optional_float(record.max_lr),
            record.created_at if record.created_at is not None else time.time(),
            json.dumps(record.config, sort_keys=True),
        ),
    )  # fmt: skip
