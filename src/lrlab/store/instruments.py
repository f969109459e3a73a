"""A run's instrument series and findings in the store (tables of schema version 6).

Series are written as blocks, one row per name and write (``step`` int64 and ``value``
float64 little-endian blobs, NaN kept), read back in write order with a later block winning
at a step it repeats, as the step blocks are. Findings are rows in the order they were made,
their evidence as JSON. Both go with their run: a run begun again forgets them, a deleted run
takes them along (``ON DELETE CASCADE``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lrlab.core.diagnostics import Finding

__all__ = ["MIGRATION", "InstrumentSeries", "append", "findings", "forget", "series"]

MIGRATION = """
    CREATE TABLE instrument_blocks (
        run_id  TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        name    TEXT NOT NULL,          -- update_ratio/group0, sharpness, lr_audit/group1, ...
        seq     INTEGER NOT NULL,       -- write order within the run: a later block wins
        n       INTEGER NOT NULL,
        step    BLOB NOT NULL,          -- int64
        value   BLOB NOT NULL,          -- float64, NaN kept
        PRIMARY KEY (run_id, name, seq)
    );
    CREATE TABLE run_findings (
        run_id   TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        seq      INTEGER NOT NULL,
        step     INTEGER,
        kind     TEXT NOT NULL,
        severity TEXT NOT NULL,
        message  TEXT NOT NULL,
        evidence TEXT NOT NULL DEFAULT '{}',   -- JSON
        PRIMARY KEY (run_id, seq)
    )
"""


@dataclass(frozen=True)
class InstrumentSeries:
    """One instrument's values of a run: ``steps`` (sorted, each once) and ``values``."""

    steps: list[int]
    values: list[float]

    def __len__(self) -> int:
        return len(self.steps)


def _present(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'run_findings'"
    ).fetchone()
    return row is not None


def append(
    tx: sqlite3.Connection,
    run_id: str,
    points: Mapping[str, tuple[Sequence[int], Sequence[float]]],
    found: Sequence[Finding],
) -> None:
    """Write a batch of series points (``{name: (steps, values)}``) and findings of one run."""
    if points:
        seq = tx.execute(
            "SELECT COALESCE(MAX(seq), -1) + 1 FROM instrument_blocks WHERE run_id = ?", (run_id,)
        )
        start = int(seq.fetchone()[0])
        rows = [
            (run_id, name, start, len(steps), np.asarray(steps, dtype="<i8").tobytes(),
             np.asarray(values, dtype="<f8").tobytes())
            for name, (steps, values) in sorted(points.items()) if len(steps)
        ]  # fmt: skip
        tx.executemany(
            "INSERT INTO instrument_blocks (run_id, name, seq, n, step, value) VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
    if found:
        seq = tx.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM run_findings WHERE run_id = ?", (run_id,))
        start = int(seq.fetchone()[0])
        tx.executemany(
            "INSERT INTO run_findings (run_id, seq, step, kind, severity, message, evidence) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(run_id, start + i, f.step, f.kind, f.severity, f.message, json.dumps(f.numbers, default=str))
             for i, f in enumerate(found)],
        )  # fmt: skip


def forget(tx: sqlite3.Connection, run_id: str) -> None:
    """Drop a run's series and findings (the run is begun again)."""
    if _present(tx):
        tx.execute("DELETE FROM instrument_blocks WHERE run_id = ?", (run_id,))
        tx.execute("DELETE FROM run_findings WHERE run_id = ?", (run_id,))


def series(conn: sqlite3.Connection, run_id: str) -> dict[str, InstrumentSeries]:
    """Every instrument series of a run, by name (empty for a store older than version 6)."""
    if not _present(conn):
        return {}
    merged: dict[str, dict[int, float]] = {}
    rows = conn.execute(
        "SELECT name, step, value FROM instrument_blocks WHERE run_id = ? ORDER BY name, seq", (run_id,)
    )
    for name, steps, values in rows:
        into = merged.setdefault(name, {})
        into.update(
            zip(np.frombuffer(steps, dtype="<i8").tolist(), np.frombuffer(values, dtype="<f8").tolist())
        )
    return {
        name: InstrumentSeries(sorted(points), [points[s] for s in sorted(points)])
        for name, points in merged.items()
    }


def findings(conn: sqlite3.Connection, run_id: str) -> list[Finding]:
    """A run's findings in the order they were made (empty for a store older than version 6)."""
    if not _present(conn):
        return []
    rows = conn.execute(
        "SELECT step, kind, severity, message, evidence FROM run_findings WHERE run_id = ? ORDER BY seq",
        (run_id,),
    )
    return [Finding(kind, severity, message, json.loads(evidence), run_ids=(run_id,), step=step)
            for step, kind, severity, message, evidence in rows]  # fmt: skip
