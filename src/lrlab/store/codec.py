"""The step-block codec: a run's steps as columnar blobs, and how blocks fold.

A run's steps are stored in *step blocks*: one row per write (``append_metrics`` /
``import_run``) holding each column of its steps as one little-endian blob (step and epoch
int64; lr, momentum, loss and grad_norm float64, NaN kept as NaN; per-group LRs an
``n x groups`` float64 blob, NULL for one group). A block is sorted by step with each step
once (a step repeated in one write: the later row wins); a later block overrides an earlier
one at a step it repeats (a resumed run writes again the steps after its checkpoint).
``end_run`` folds a run's blocks into one (:func:`compact`), so a finished run reads as one
row; while a run is written, its last blocks are folded whenever it has more than
``MAX_BLOCKS`` of them (:func:`fold_tail`), so even one step per write keeps its reading to
a few rows.

A block is a :class:`~lrlab.core.records.StepSeries`: the codec encodes and decodes that
type, whose fields are the block's columns. Stores of schema 4 or older kept one row per
step (:func:`legacy_series`); a reader reads them as they are.

The finder's curves are float64 blobs too (:func:`float_blob`, :func:`float_array`).
"""

from __future__ import annotations

import itertools
import math
import sqlite3
from collections.abc import Sequence
from typing import Any

import numpy as np

from lrlab.core.records import StepSeries

__all__ = [
    "BLOCK_COLUMNS",
    "INSERT_BLOCK",
    "MAX_BLOCKS",
    "StepRow",
    "append_block",
    "block_row",
    "compact",
    "concat",
    "float_array",
    "float_blob",
    "fold_tail",
    "legacy_series",
    "legacy_step_count",
    "read_blocks",
    "series_of_block",
    "series_of_rows",
    "step_count",
    "steps_for",
]

# A step row as recorders write it: (step, epoch, lrs, momentum, loss, grad_norm).
StepRow = tuple[int, int, Sequence[float], "float | None", float, float]

# A run with more blocks than this folds its last ones on the next write (see fold_tail).
MAX_BLOCKS = 16
BLOCK_COLUMNS = "seq, n, groups, step, epoch, lr, lrs, momentum, loss, grad_norm"
INSERT_BLOCK = (
    "INSERT INTO step_blocks (run_id, seq, first_step, last_step, n, groups, step, epoch, lr, lrs, "
    "momentum, loss, grad_norm) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
_INT = np.dtype("<i8")
_FLOAT = np.dtype("<f8")
# SQLite's default limit on the variables of one statement is 999: ask in chunks.
_CHUNK = 500


def float_blob(values: Any) -> bytes:
    """A float64 array as bytes (the finder's curves)."""
    return np.ascontiguousarray(values, dtype=np.float64).tobytes()


def float_array(blob: bytes | None) -> np.ndarray:
    """The float64 array of :func:`float_blob`'s bytes (writable; empty for NULL)."""
    return np.frombuffer(blob or b"", dtype=np.float64).copy()


# ---------------------------------------------------------------- a block's columns


def _last_writes(step: np.ndarray) -> np.ndarray | None:
    """Indices that sort ``step`` keeping each step's last occurrence; None when it is
    sorted with each step once already."""
    if len(step) < 2 or bool(np.all(step[1:] > step[:-1])):
        return None
    reversed_steps = step[::-1]
    # return_index sorts stably: the first index in the reversed order is the last write.
    _, first = np.unique(reversed_steps, return_index=True)
    return len(step) - 1 - first


def _sorted_once(series: StepSeries) -> StepSeries:
    """``series`` sorted by step, each step once (the later write)."""
    keep = _last_writes(series.step)
    return series if keep is None else series.take(keep)


def _lrs_of_rows(lrs_col: Sequence[Sequence[float]]) -> np.ndarray:
    """The ``(n, groups)`` LRs of step rows: a row with one group fills every group with its
    LR; a shorter one is padded with NaN."""
    widths = {len(lrs) for lrs in lrs_col}
    if 0 in widths:
        raise ValueError("a step row needs the LR of at least one param group, got none")
    if len(widths) == 1:
        return np.asarray([[float(v) for v in group_lrs] for group_lrs in lrs_col], dtype=np.float64)
    lrs = np.full((len(lrs_col), max(widths)), np.nan)
    for i, group_lrs in enumerate(lrs_col):
        lrs[i, : len(group_lrs)] = [float(v) for v in group_lrs] if len(group_lrs) > 1 else float(group_lrs[0])
    return lrs


def series_of_rows(run_id: str, rows: Sequence[StepRow]) -> StepSeries:
    """Step rows ``(step, epoch, lrs, momentum, loss, grad_norm)`` as a series, sorted, each
    step once (the later row wins)."""
    n = len(rows)
    step_col, epoch_col, lrs_col, momentum_col, loss_col, norm_col = zip(*rows)
    lrs = _lrs_of_rows(lrs_col)
    series = StepSeries(
        run_id,
        step=np.fromiter((int(v) for v in step_col), np.int64, n),
        epoch=np.fromiter((int(v) for v in epoch_col), np.int64, n),
        lr=lrs[:, 0].copy(),
        lrs=lrs,
        momentum=np.fromiter((math.nan if v is None else float(v) for v in momentum_col), np.float64, n),
        loss=np.fromiter((float(v) for v in loss_col), np.float64, n),
        grad_norm=np.fromiter((float(v) for v in norm_col), np.float64, n),
    )
    return _sorted_once(series)


def series_of_block(run_id: str, n: int, groups: int, *blobs: bytes | None) -> StepSeries:
    """A stored block (its size, its groups and its blobs in ``BLOCK_COLUMNS`` order)."""
    step, epoch, lr, lrs, momentum, loss, grad_norm = blobs
    lr_arr = np.frombuffer(lr or b"", _FLOAT).astype(np.float64)
    return StepSeries(
        run_id,
        step=np.frombuffer(step or b"", _INT).astype(np.int64),
        epoch=np.frombuffer(epoch or b"", _INT).astype(np.int64),
        lr=lr_arr,
        lrs=lr_arr[:, None].copy() if lrs is None else np.frombuffer(lrs, _FLOAT).astype(np.float64).reshape(n, groups),
        momentum=np.frombuffer(momentum or b"", _FLOAT).astype(np.float64),
        loss=np.frombuffer(loss or b"", _FLOAT).astype(np.float64),
        grad_norm=np.frombuffer(grad_norm or b"", _FLOAT).astype(np.float64),
    )


def _widened_lrs(part: StepSeries, groups: int) -> np.ndarray:
    """A block's LRs with ``groups`` columns: one group's LR fills them all, more are
    padded with NaN."""
    if part.groups == groups:
        return part.lrs
    if part.groups == 1:
        return np.repeat(part.lr[:, None], groups, axis=1)
    return np.pad(part.lrs, ((0, 0), (0, groups - part.groups)), constant_values=np.nan)


def concat(parts: Sequence[StepSeries]) -> StepSeries:
    """Blocks of one run in write order as one: sorted, each step once, the later block winning."""
    if len(parts) == 1:
        return parts[0]
    groups = max(part.groups for part in parts)
    joined = {
        name: np.concatenate([getattr(part, name) for part in parts]) for name in StepSeries.columns() if name != "lrs"
    }
    lrs = np.concatenate([_widened_lrs(part, groups) for part in parts])
    return _sorted_once(StepSeries(parts[0].run_id, **joined, lrs=lrs))


def block_row(seq: int, series: StepSeries) -> tuple[Any, ...]:
    """The ``INSERT_BLOCK`` parameters of ``series`` as block ``seq`` of its run."""

    def blob(values: np.ndarray, dtype: np.dtype) -> bytes:
        return np.ascontiguousarray(values, dtype=dtype).tobytes()

    return (
        series.run_id, seq, int(series.step[0]), int(series.step[-1]), len(series), series.groups,
        blob(series.step, _INT), blob(series.epoch, _INT), blob(series.lr, _FLOAT),
        None if series.groups == 1 else blob(series.lrs, _FLOAT),
        blob(series.momentum, _FLOAT), blob(series.loss, _FLOAT), blob(series.grad_norm, _FLOAT),
    )  # fmt: skip


# ---------------------------------------------------------------- blocks in the file


def read_blocks(conn: sqlite3.Connection, run_id: str, seqs: Sequence[int] | None = None) -> list[StepSeries]:
    """A run's blocks in write order (those from ``min(seqs)`` to ``max(seqs)`` if given)."""
    sql = f"SELECT {BLOCK_COLUMNS} FROM step_blocks WHERE run_id = ?"
    params: list[Any] = [run_id]
    if seqs is not None:
        sql += " AND seq >= ? AND seq <= ?"
        params += [min(seqs), max(seqs)]
    rows = conn.execute(sql + " ORDER BY seq", params).fetchall()
    return [series_of_block(run_id, n, groups, *blobs) for _seq, n, groups, *blobs in rows]


def fold_tail(sizes: Sequence[int]) -> int:
    """How many of the last blocks to fold into one, given every block's size in write order
    (the new one last). None while there are at most ``MAX_BLOCKS``. Then the blocks after the
    longest run of blocks each at least twice the next (the older, folded ones) fold, two at
    least, and the folded block takes in each older block less than twice its size: the sizes
    halve towards the newest, as in a binary counter, so a step is rewritten about
    log2(steps / MAX_BLOCKS) times however small the writes."""
    if len(sizes) <= MAX_BLOCKS:
        return 0
    settled = 1
    while settled < len(sizes) and sizes[settled - 1] >= 2 * sizes[settled]:
        settled += 1
    start = min(settled, len(sizes) - 2)
    total = sum(sizes[start:])
    while start > 0 and sizes[start - 1] < 2 * total:
        start -= 1
        total += sizes[start]
    return len(sizes) - start


def append_block(tx: sqlite3.Connection, series: StepSeries) -> None:
    """One write's steps as a new block of their run; past ``MAX_BLOCKS`` the last blocks
    fold into it."""
    run_id = series.run_id
    blocks = tx.execute("SELECT seq, n FROM step_blocks WHERE run_id = ? ORDER BY seq", (run_id,)).fetchall()
    seq = blocks[-1][0] + 1 if blocks else 0
    fold = fold_tail([n for _, n in blocks] + [len(series)])
    if fold:
        folded = [row[0] for row in blocks[-(fold - 1) :]]
        series = concat([*read_blocks(tx, run_id, folded), series])
        tx.execute("DELETE FROM step_blocks WHERE run_id = ? AND seq >= ?", (run_id, folded[0]))
    tx.execute(INSERT_BLOCK, block_row(seq, series))


def compact(tx: sqlite3.Connection, run_id: str) -> None:
    """Fold a run's blocks into one (when a run ends), keeping the last block's place."""
    seqs = [row[0] for row in tx.execute("SELECT seq FROM step_blocks WHERE run_id = ? ORDER BY seq", (run_id,))]
    if len(seqs) < 2:
        return
    series = concat(read_blocks(tx, run_id))
    tx.execute("DELETE FROM step_blocks WHERE run_id = ?", (run_id,))
    tx.execute(INSERT_BLOCK, block_row(seqs[-1], series))


def steps_for(conn: sqlite3.Connection, run_ids: Sequence[str]) -> dict[str, StepSeries]:
    """The steps of many runs, a few queries however many: ``{run_id: StepSeries}``."""
    ids = list(dict.fromkeys(run_ids))
    blocks: dict[str, list[StepSeries]] = {rid: [] for rid in ids}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        rows = conn.execute(
            f"SELECT run_id, {BLOCK_COLUMNS} FROM step_blocks WHERE run_id IN ({', '.join('?' * len(chunk))}) "
            "ORDER BY run_id, seq",
            chunk,
        )
        for rid, _seq, n, groups, *blobs in rows:
            blocks[rid].append(series_of_block(rid, n, groups, *blobs))
    return {rid: concat(parts) if parts else StepSeries.empty(rid) for rid, parts in blocks.items()}


def step_count(conn: sqlite3.Connection, run_id: str) -> int:
    """How many distinct steps of the run are stored (from the blocks' bounds alone when
    they do not overlap, as for every run written in step order)."""
    rows = conn.execute(
        "SELECT first_step, last_step, n FROM step_blocks WHERE run_id = ? ORDER BY seq", (run_id,)
    ).fetchall()
    if all(first > last for (_, last, _), (first, _, _) in itertools.pairwise(rows)):
        return sum(n for _, _, n in rows)
    steps = conn.execute("SELECT step FROM step_blocks WHERE run_id = ?", (run_id,))
    return len(np.unique(np.concatenate([np.frombuffer(blob, _INT) for (blob,) in steps])))


# ---------------------------------------------------------------- schema 4 and older: a row per step


def _has_step_rows(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'step_metrics'").fetchone() is not None


def legacy_series(conn: sqlite3.Connection, run_id: str) -> StepSeries:
    """A run's steps from a store of schema 4 or older (one row per step)."""
    if not _has_step_rows(conn):
        return StepSeries.empty(run_id)
    rows = conn.execute(
        "SELECT step, epoch, lr, lrs, momentum, loss, grad_norm FROM step_metrics WHERE run_id = ? ORDER BY step",
        (run_id,),
    ).fetchall()
    n = len(rows)
    if n == 0:
        return StepSeries.empty(run_id)
    step, epoch, lr, lrs_blobs, momentum, loss, grad_norm = zip(*rows)
    lr_arr = np.asarray(lr, dtype=np.float64)
    groups = max((len(b) // 8 for b in lrs_blobs if b), default=1)
    if groups == 1:  # one param group: no blobs to unpack
        lrs = lr_arr[:, None].copy()
    else:
        lrs = np.empty((n, groups), dtype=np.float64)
        for i, blob in enumerate(lrs_blobs):
            lrs[i] = float_array(blob) if blob else lr_arr[i]
    return StepSeries(
        run_id=run_id,
        step=np.asarray(step, dtype=np.int64),
        epoch=np.asarray(epoch, dtype=np.int64),
        lr=lr_arr,
        lrs=lrs,
        # None (SQL NULL) becomes NaN.
        momentum=np.asarray(momentum, dtype=np.float64),
        loss=np.asarray(loss, dtype=np.float64),
        grad_norm=np.asarray(grad_norm, dtype=np.float64),
    )


def legacy_step_count(conn: sqlite3.Connection, run_id: str) -> int:
    """How many steps of the run a store of schema 4 or older holds."""
    if not _has_step_rows(conn):
        return 0
    return int(conn.execute("SELECT COUNT(*) FROM step_metrics WHERE run_id = ?", (run_id,)).fetchone()[0])
