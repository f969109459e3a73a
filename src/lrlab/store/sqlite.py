"""The SQLite run store: sweeps, runs, step and epoch metrics, finder results.

One file (``lrlab-runs/lrlab.db`` by default), stdlib ``sqlite3`` in WAL mode so that
several worker processes write while a reader reads. The schema is versioned with
``PRAGMA user_version``; ``_MIGRATIONS[i]`` takes version ``i`` to ``i + 1``.

Columns are typed where the shape is known. JSON is used only for a run's resolved
config, its extras, a sweep's spec and a finder's suggestions. The finder's curves are
float64 blobs (``numpy.ndarray.tobytes``).

A run's steps are stored columnar, in *step blocks*: one row per write
(``append_metrics`` / ``import_run``) holding each column of its steps as one
little-endian blob (step and epoch int64; lr, momentum, loss and grad_norm float64, NaN
kept as NaN; per-group LRs an ``n x groups`` float64 blob, NULL for one group). A block
is sorted by step with each step once (a step repeated in one write: the later row
wins); a later block overrides an earlier one at a step it repeats (a resumed run writes
again the steps after its checkpoint). ``end_run`` folds a run's blocks into one, so a
finished run reads as one row; while a run is written, its last blocks are folded
whenever it has more than ``_MAX_BLOCKS`` of them, so even one step per write keeps its
reading to a few rows.

Each write is one transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``): a process killed
mid-run loses at most the rows of the batch it was writing, never a committed run, and
the file stays consistent (``PRAGMA integrity_check`` is ``ok``).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import socket
import sqlite3
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from lrlab.core.records import EpochRecord, FinderRecord, RunConfig, RunRecord, RunStatus, StepSeries

__all__ = ["DEFAULT_DB", "LEASE_SECONDS", "SCHEMA_VERSION", "ClaimLost", "Store", "StoreError", "new_owner"]

DEFAULT_DB = Path("lrlab-runs") / "lrlab.db"

# A migration is SQL (statements separated by ';') or a function of the open transaction.
# One block per write; a run's first-step / last-step / count are typed columns (read without
# touching a blob), then its columns as blobs, the small ones first.
_STEP_BLOCKS = """
    CREATE TABLE step_blocks (
        run_id      TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        seq         INTEGER NOT NULL,       -- write order within the run: a later block wins
        first_step  INTEGER NOT NULL,
        last_step   INTEGER NOT NULL,
        n           INTEGER NOT NULL,       -- steps in the block, each once, sorted
        groups      INTEGER NOT NULL,       -- param groups (columns of lrs)
        step        BLOB NOT NULL,          -- int64
        epoch       BLOB NOT NULL,          -- int64
        lr          BLOB NOT NULL,          -- float64, first param group
        lrs         BLOB,                   -- float64 n x groups, NULL when there is one group
        momentum    BLOB NOT NULL,          -- float64, NaN: none
        loss        BLOB NOT NULL,          -- float64, NaN kept
        grad_norm   BLOB NOT NULL,          -- float64
        PRIMARY KEY (run_id, seq)
    )
"""


def _steps_to_blocks(tx: sqlite3.Connection) -> None:
    """4 -> 5: each run's step rows become one step block (every value bit for bit)."""
    tx.execute(_STEP_BLOCKS)
    run_ids = [row[0] for row in tx.execute("SELECT DISTINCT run_id FROM step_metrics")]
    for run_id in run_ids:
        series = _legacy_series(tx, run_id)
        tx.execute(_INSERT_BLOCK, _block_row(run_id, 0, _Columns.of_series(series)))
    tx.execute("DROP TABLE step_metrics")


_MIGRATIONS: tuple[str | Callable[[sqlite3.Connection], None], ...] = (
    # 0 -> 1: the initial schema.
    """
    CREATE TABLE sweeps (
        name        TEXT PRIMARY KEY,
        spec        TEXT NOT NULL,          -- JSON
        created_at  REAL NOT NULL,
        updated_at  REAL NOT NULL
    );
    CREATE TABLE runs (
        id              TEXT PRIMARY KEY,
        sweep           TEXT,
        status          TEXT NOT NULL CHECK (status IN ('queued','running','done','diverged','failed')),
        task            TEXT,
        optimizer       TEXT,
        schedule        TEXT,
        lr              REAL,
        seed            INTEGER NOT NULL,
        epochs          INTEGER,
        batch_size      INTEGER,
        config          TEXT NOT NULL,      -- JSON: the fully resolved run spec
        error           TEXT,
        diverged_step   INTEGER,
        created_at      REAL,
        started_at      REAL,
        finished_at     REAL,
        lrlab_version   TEXT,
        torch_version   TEXT,
        extras          TEXT NOT NULL DEFAULT '{}'   -- JSON
    );
    CREATE INDEX runs_sweep ON runs (sweep);
    CREATE TABLE step_metrics (
        run_id      TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        step        INTEGER NOT NULL,
        epoch       INTEGER NOT NULL,
        lr          REAL NOT NULL,          -- first param group
        lrs         BLOB,                   -- float64 per group, NULL when there is one group
        momentum    REAL,
        loss        REAL NOT NULL,
        grad_norm   REAL NOT NULL,
        PRIMARY KEY (run_id, step)
    ) WITHOUT ROWID;
    CREATE TABLE epoch_metrics (
        run_id       TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        epoch        INTEGER NOT NULL,
        step         INTEGER NOT NULL,
        train_loss   REAL,
        val_loss     REAL,
        val_error    REAL,
        val_accuracy REAL,
        wall_time    REAL NOT NULL,
        PRIMARY KEY (run_id, epoch)
    ) WITHOUT ROWID;
    CREATE TABLE finder_results (
        id          TEXT PRIMARY KEY,
        task        TEXT NOT NULL,
        optimizer   TEXT NOT NULL,
        sweep       TEXT,
        lrs         BLOB NOT NULL,
        losses      BLOB NOT NULL,
        smoothed    BLOB NOT NULL,
        suggestions TEXT NOT NULL,          -- JSON {rule: lr}
        lr          REAL NOT NULL,
        reason      TEXT NOT NULL,
        base_lr     REAL,
        max_lr      REAL,
        created_at  REAL,
        config      TEXT NOT NULL DEFAULT '{}'   -- JSON
    );
    CREATE INDEX finder_task ON finder_results (task);
    """,
    # 1 -> 2: a step's loss and gradient norm may be NaN (the step where a run diverges).
    # SQLite stores NaN as NULL, so those columns accept NULL; they read back as NaN.
    """
    CREATE TABLE step_metrics_v2 (
        run_id      TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        step        INTEGER NOT NULL,
        epoch       INTEGER NOT NULL,
        lr          REAL NOT NULL,          -- first param group
        lrs         BLOB,                   -- float64 per group, NULL when there is one group
        momentum    REAL,
        loss        REAL,                   -- NULL: NaN
        grad_norm   REAL,                   -- NULL: NaN
        PRIMARY KEY (run_id, step)
    ) WITHOUT ROWID;
    INSERT INTO step_metrics_v2 (run_id, step, epoch, lr, lrs, momentum, loss, grad_norm)
        SELECT run_id, step, epoch, lr, lrs, momentum, loss, grad_norm FROM step_metrics;
    DROP TABLE step_metrics;
    ALTER TABLE step_metrics_v2 RENAME TO step_metrics
    """,
    # 2 -> 3: a run's schedules as ``to_dict()`` JSON (the program's form; the config keeps
    # the spec strings for people), and a claim on a run (its owner and last heartbeat).
    """
    ALTER TABLE runs ADD COLUMN schedule_json TEXT;
    ALTER TABLE runs ADD COLUMN momentum_json TEXT;
    ALTER TABLE runs ADD COLUMN owner TEXT;
    ALTER TABLE runs ADD COLUMN heartbeat REAL
    """,
    # 3 -> 4: an epoch's named metrics beyond the fixed columns (regression's val_mae and
    # val_r2, a custom task's own), as JSON; NULL when there are none.
    """
    ALTER TABLE epoch_metrics ADD COLUMN metrics TEXT
    """,
    # 4 -> 5: step rows become columnar step blocks (see the module docstring).
    _steps_to_blocks,
)
SCHEMA_VERSION = len(_MIGRATIONS)

_RUN_COLUMNS = (
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
StepRow = tuple[int, int, Sequence[float], "float | None", float, float]


class StoreError(ValueError):
    """A file that cannot be used as a run store; the message names it and what to do."""


class ClaimLost(RuntimeError):
    """A process wrote to a run whose claim another process has taken over."""


# A claim whose owner has not written for this long may be taken over by another process.
LEASE_SECONDS = 120.0


def new_owner() -> str:
    """A claim owner for this process: ``host:pid:token``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _owner_alive(owner: str) -> bool:
    """False when the owner's process ran on this machine and is gone."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return True  # another machine: only its heartbeat can tell
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _blob(values: Any) -> bytes:
    return np.ascontiguousarray(values, dtype=np.float64).tobytes()


def _array(blob: bytes | None) -> np.ndarray:
    return np.frombuffer(blob or b"", dtype=np.float64).copy()


def _metrics(values: Any) -> str | None:
    """An epoch's named metrics as JSON (non-finite values as null), None when empty."""
    if not values:
        return None
    out = {str(k): _float(v) for k, v in values.items()}
    return json.dumps({k: v if v is not None and math.isfinite(v) else None for k, v in out.items()}, sort_keys=True)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


# ---------------------------------------------------------------- step blocks

# A run with more blocks than this folds its last ones on the next write (see _fold_tail).
_MAX_BLOCKS = 16
_BLOCK_COLUMNS = "seq, n, groups, step, epoch, lr, lrs, momentum, loss, grad_norm"
_INSERT_BLOCK = (
    "INSERT INTO step_blocks (run_id, seq, first_step, last_step, n, groups, step, epoch, lr, lrs, "
    "momentum, loss, grad_norm) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
_INT = np.dtype("<i8")
_FLOAT = np.dtype("<f8")


def _last_writes(step: np.ndarray) -> np.ndarray | None:
    """Indices that sort ``step`` keeping each step's last occurrence; None when it is
    sorted with each step once already."""
    if len(step) < 2 or bool(np.all(step[1:] > step[:-1])):
        return None
    reversed_steps = step[::-1]
    # return_index sorts stably: the first index in the reversed order is the last write.
    _, first = np.unique(reversed_steps, return_index=True)
    return len(step) - 1 - first


@dataclass(frozen=True)
class _Columns:
    """The steps of one block (or of a whole run) as arrays; ``lrs`` is ``(n, groups)``."""

    step: np.ndarray
    epoch: np.ndarray
    lr: np.ndarray
    lrs: np.ndarray
    momentum: np.ndarray
    loss: np.ndarray
    grad_norm: np.ndarray

    def __len__(self) -> int:
        return len(self.step)

    @property
    def groups(self) -> int:
        return int(self.lrs.shape[1])

    @classmethod
    def of_rows(cls, rows: Sequence[StepRow]) -> _Columns:
        """Step rows ``(step, epoch, lrs, momentum, loss, grad_norm)``, sorted, each step once
        (the later row wins)."""
        n = len(rows)
        step_col, epoch_col, lrs_col, momentum_col, loss_col, norm_col = zip(*rows)
        widths = {len(lrs) for lrs in lrs_col}
        if 0 in widths:
            raise ValueError("a step row needs the LR of at least one param group, got none")
        if len(widths) == 1:
            lrs = np.asarray([[float(v) for v in group_lrs] for group_lrs in lrs_col], dtype=np.float64)
        else:  # a row with one group fills every group with its LR; a shorter one is padded with NaN
            lrs = np.full((n, max(widths)), np.nan)
            for i, group_lrs in enumerate(lrs_col):
                lrs[i, : len(group_lrs)] = [float(v) for v in group_lrs] if len(group_lrs) > 1 else float(group_lrs[0])
        columns = cls(
            step=np.fromiter((int(v) for v in step_col), np.int64, n),
            epoch=np.fromiter((int(v) for v in epoch_col), np.int64, n),
            lr=lrs[:, 0].copy(),
            lrs=lrs,
            momentum=np.fromiter((math.nan if v is None else float(v) for v in momentum_col), np.float64, n),
            loss=np.fromiter((float(v) for v in loss_col), np.float64, n),
            grad_norm=np.fromiter((float(v) for v in norm_col), np.float64, n),
        )
        return columns.last_writes()

    @classmethod
    def of_series(cls, series: StepSeries) -> _Columns:
        return cls(series.step, series.epoch, series.lr, series.lrs, series.momentum, series.loss, series.grad_norm)

    @classmethod
    def of_block(cls, n: int, groups: int, *blobs: bytes | None) -> _Columns:
        step, epoch, lr, lrs, momentum, loss, grad_norm = blobs
        lr_arr = np.frombuffer(lr or b"", _FLOAT).astype(np.float64)
        return cls(
            step=np.frombuffer(step or b"", _INT).astype(np.int64),
            epoch=np.frombuffer(epoch or b"", _INT).astype(np.int64),
            lr=lr_arr,
            lrs=lr_arr[:, None].copy() if lrs is None else np.frombuffer(lrs, _FLOAT).astype(np.float64).reshape(n, groups),
            momentum=np.frombuffer(momentum or b"", _FLOAT).astype(np.float64),
            loss=np.frombuffer(loss or b"", _FLOAT).astype(np.float64),
            grad_norm=np.frombuffer(grad_norm or b"", _FLOAT).astype(np.float64),
        )

    @classmethod
    def concat(cls, parts: Sequence[_Columns]) -> _Columns:
        """Blocks in write order as one: sorted, each step once, the later block winning."""
        if len(parts) == 1:
            return parts[0]
        groups = max(part.groups for part in parts)
        lrs = [
            part.lrs if part.groups == groups
            else np.repeat(part.lr[:, None], groups, axis=1) if part.groups == 1
            else np.pad(part.lrs, ((0, 0), (0, groups - part.groups)), constant_values=np.nan)
            for part in parts
        ]  # fmt: skip
        joined = cls(
            *(np.concatenate([getattr(part, name) for part in parts]) for name in ("step", "epoch", "lr")),
            np.concatenate(lrs),
            *(np.concatenate([getattr(part, name) for part in parts]) for name in ("momentum", "loss", "grad_norm")),
        )
        return joined.last_writes()

    def last_writes(self) -> _Columns:
        keep = _last_writes(self.step)
        if keep is None:
            return self
        return _Columns(*(getattr(self, name)[keep] for name in
                          ("step", "epoch", "lr", "lrs", "momentum", "loss", "grad_norm")))  # fmt: skip

    def series(self, run_id: str) -> StepSeries:
        return StepSeries(run_id, self.step, self.epoch, self.lr, self.lrs, self.momentum, self.loss, self.grad_norm)


def _block_row(run_id: str, seq: int, columns: _Columns) -> tuple[Any, ...]:
    def blob(values: np.ndarray, dtype: np.dtype) -> bytes:
        return np.ascontiguousarray(values, dtype=dtype).tobytes()

    return (
        run_id, seq, int(columns.step[0]), int(columns.step[-1]), len(columns), columns.groups,
        blob(columns.step, _INT), blob(columns.epoch, _INT), blob(columns.lr, _FLOAT),
        None if columns.groups == 1 else blob(columns.lrs, _FLOAT),
        blob(columns.momentum, _FLOAT), blob(columns.loss, _FLOAT), blob(columns.grad_norm, _FLOAT),
    )  # fmt: skip


def _empty_series(run_id: str) -> StepSeries:
    empty = np.zeros(0)
    return StepSeries(run_id, empty.astype(np.int64), empty.astype(np.int64), empty,
                      np.zeros((0, 1)), empty, empty, empty)  # fmt: skip


def _legacy_series(conn: sqlite3.Connection, run_id: str) -> StepSeries:
    """A run's steps from a store of schema 4 or older (one row per step)."""
    rows = conn.execute(
        "SELECT step, epoch, lr, lrs, momentum, loss, grad_norm FROM step_metrics WHERE run_id = ? ORDER BY step",
        (run_id,),
    ).fetchall()
    n = len(rows)
    if n == 0:
        return _empty_series(run_id)
    step, epoch, lr, lrs_blobs, momentum, loss, grad_norm = zip(*rows)
    lr_arr = np.asarray(lr, dtype=np.float64)
    groups = max((len(b) // 8 for b in lrs_blobs if b), default=1)
    if groups == 1:  # one param group: no blobs to unpack
        lrs = lr_arr[:, None].copy()
    else:
        lrs = np.empty((n, groups), dtype=np.float64)
        for i, blob in enumerate(lrs_blobs):
            lrs[i] = _array(blob) if blob else lr_arr[i]
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


def _read_blocks(conn: sqlite3.Connection, run_id: str, seqs: Sequence[int] | None = None) -> list[_Columns]:
    sql = f"SELECT {_BLOCK_COLUMNS} FROM step_blocks WHERE run_id = ?"
    params: list[Any] = [run_id]
    if seqs is not None:
        sql += " AND seq >= ? AND seq <= ?"
        params += [min(seqs), max(seqs)]
    rows = conn.execute(sql + " ORDER BY seq", params).fetchall()
    return [_Columns.of_block(n, groups, *blobs) for _seq, n, groups, *blobs in rows]


def _fold_tail(sizes: Sequence[int]) -> int:
    """How many of the last blocks to fold into one, given every block's size in write order
    (the new one last). None while there are at most ``_MAX_BLOCKS``. Then the blocks after the
    longest run of blocks each at least twice the next (the older, folded ones) fold, two at
    least, and the folded block takes in each older block less than twice its size: the sizes
    halve towards the newest, as in a binary counter, so a step is rewritten about
    log2(steps / _MAX_BLOCKS) times however small the writes."""
    if len(sizes) <= _MAX_BLOCKS:
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


def _append_block(tx: sqlite3.Connection, run_id: str, columns: _Columns) -> None:
    """One write's steps as a new block; past ``_MAX_BLOCKS`` the last blocks fold into it."""
    blocks = tx.execute("SELECT seq, n FROM step_blocks WHERE run_id = ? ORDER BY seq", (run_id,)).fetchall()
    seq = blocks[-1][0] + 1 if blocks else 0
    fold = _fold_tail([n for _, n in blocks] + [len(columns)])
    if fold:
        folded = [row[0] for row in blocks[-(fold - 1) :]]
        columns = _Columns.concat([*_read_blocks(tx, run_id, folded), columns])
        tx.execute("DELETE FROM step_blocks WHERE run_id = ? AND seq >= ?", (run_id, folded[0]))
    tx.execute(_INSERT_BLOCK, _block_row(run_id, seq, columns))


def _compact(tx: sqlite3.Connection, run_id: str) -> None:
    """Fold a run's blocks into one (when a run ends), keeping the last block's place."""
    seqs = [row[0] for row in tx.execute("SELECT seq FROM step_blocks WHERE run_id = ? ORDER BY seq", (run_id,))]
    if len(seqs) < 2:
        return
    columns = _Columns.concat(_read_blocks(tx, run_id))
    tx.execute("DELETE FROM step_blocks WHERE run_id = ?", (run_id,))
    tx.execute(_INSERT_BLOCK, _block_row(run_id, seqs[-1], columns))


class Store:
    """The run database. Safe to use from several processes at once (WAL, busy timeout).

    A ``Store`` holds one connection per process: it reconnects after a fork and pickles
    as its path, so it can be handed to worker processes. ``":memory:"`` gives a private
    in-memory store (used by the Ray backend on worker nodes).

    Example:
        >>> store = Store(":memory:")
        >>> store.sweeps()
        []
    """

    def __init__(
        self,
        path: str | Path = DEFAULT_DB,
        *,
        timeout: float = 60.0,
        readonly: bool = False,
        _checked: bool = False,
    ) -> None:
        self.path = str(path)
        self.timeout = timeout
        self.readonly = readonly
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self._checked = _checked or self.path == ":memory:"
        self._run_columns = _RUN_COLUMNS
        self._legacy_steps = False
        if self.path != ":memory:":
            file = Path(self.path).expanduser()
            if file.is_dir():
                raise StoreError(f"{self.path} is a folder, not a run store: pass the path of a .db file")
            if readonly and not file.is_file():
                raise StoreError(f"no run store at {self.path} (run 'lrlab sweep' first or pass --db)")
            if file.is_file() and file.stat().st_size == 0:
                raise StoreError(f"{self.path} is an empty file, not a run store: delete it or pass another --db")
            if not file.exists():
                file.parent.mkdir(parents=True, exist_ok=True)
                self._checked = True  # made here: nothing to check
        self._connection()

    # ------------------------------------------------------------ connection

    def __repr__(self) -> str:
        return f"Store({self.path!r})"

    def __getstate__(self) -> dict[str, Any]:
        if self.path == ":memory:":
            raise TypeError("an in-memory Store cannot be sent to another process")
        return {"path": self.path, "timeout": self.timeout, "readonly": self.readonly, "checked": self._checked}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["path"], timeout=state["timeout"], readonly=state.get("readonly", False),
            _checked=state.get("checked", False),
        )  # fmt: skip

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        try:
            conn = self._open_readonly() if self.readonly else self._open_writer()
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"{self.path} is not a usable run store ({exc}): restore it from a backup or pass another --db"
            ) from None
        self._conn, self._pid = conn, os.getpid()
        return conn

    def _open_writer(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        self._check(conn)
        if self.path != ":memory:":
            conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode survives a killed process; only a power cut can lose the last commit.
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        self._conn, self._pid = conn, os.getpid()
        self._migrate(conn)
        return conn

    def _open_readonly(self) -> sqlite3.Connection:
        """A reader never writes, migrates or creates the file: an archived store on a read-only
        disk opens too (``immutable``, when SQLite cannot make its shared-memory file)."""
        uri = "file:" + urllib.parse.quote(str(Path(self.path).expanduser().resolve()))
        try:
            conn = sqlite3.connect(uri + "?mode=ro", uri=True, timeout=self.timeout, check_same_thread=False)
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:
            conn = sqlite3.connect(uri + "?mode=ro&immutable=1", uri=True, check_same_thread=False)
        self._check(conn)
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        # An older store read as it is (a reader never migrates): one row per step.
        self._legacy_steps = "step_blocks" not in tables
        columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
        self._run_columns = ", ".join(
            name if name in columns else f"NULL AS {name}" for name in _RUN_COLUMNS.split(", ")
        )
        return conn

    def _check(self, conn: sqlite3.Connection) -> None:
        """Refuse, in one line naming the file, a store of a newer lrlab, a foreign SQLite file
        and (once per store and process tree) a damaged one."""
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this lrlab's ({SCHEMA_VERSION}): "
                "upgrade lrlab to use it"
            )
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if (version == 0 and tables) or (version > 0 and not {"runs", "sweeps"} <= tables):
            raise StoreError(
                f"{self.path} is an SQLite file of another program, not a run store: pass another --db"
            )
        if not self._checked:
            result = conn.execute("PRAGMA quick_check").fetchone()[0]
            if result != "ok":
                raise StoreError(
                    f"{self.path} is damaged (quick_check: {str(result).splitlines()[0]}): "
                    "restore it from a backup or pass another --db"
                )
            self._checked = True

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        with self._write() as tx:
            # Re-read inside the write lock: another process may have migrated meanwhile.
            version = tx.execute("PRAGMA user_version").fetchone()[0]
            for index in range(version, SCHEMA_VERSION):
                migration = _MIGRATIONS[index]
                if callable(migration):
                    migration(tx)
                    continue
                for statement in migration.split(";"):
                    if statement.strip():
                        tx.execute(statement)
            tx.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        if self.readonly:
            raise StoreError(f"{self.path} was opened read-only; this needs a writable store")
        conn = self._conn if self._conn is not None and self._pid == os.getpid() else self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:  # SQLite may have rolled back already (a full disk)
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None

    def integrity_check(self) -> str:
        """``PRAGMA integrity_check``: ``"ok"`` for a sound file."""
        return str(self._connection().execute("PRAGMA integrity_check").fetchone()[0])

    @property
    def schema_version(self) -> int:
        return int(self._connection().execute("PRAGMA user_version").fetchone()[0])

    # ------------------------------------------------------------ reading

    def sweeps(self) -> list[str]:
        rows = self._connection().execute("SELECT name FROM sweeps ORDER BY created_at, name")
        return [row[0] for row in rows]

    def sweep_spec(self, name: str) -> dict[str, Any]:
        row = self._connection().execute("SELECT spec FROM sweeps WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise KeyError(f"no sweep {name!r} in {self.path}")
        return json.loads(row[0])

    def study_record(self, name: str) -> dict[str, Any] | None:
        """The verdict record of the study ``name`` (its ``run_ids`` across its sweeps, its
        ``lines``...), or None when ``name`` is no study's record."""
        try:
            record = self.sweep_spec(name).get("study")
        except KeyError:
            return None
        return record if isinstance(record, dict) else None

    def sweep_runs(self, name: str, status: RunStatus | str | None = None) -> list[RunRecord]:
        """The runs of sweep ``name``; for a study's record (which names no runs of its own),
        the study's runs across its sweeps."""
        runs = self.runs(sweep=name, status=status)
        record = None if runs else self.study_record(name)
        if not record or not record.get("run_ids"):
            return runs
        return self.runs(ids=[str(i) for i in record["run_ids"]], status=status)

    def runs(
        self,
        sweep: str | None = None,
        ids: Sequence[str] | None = None,
        status: RunStatus | str | None = None,
    ) -> list[RunRecord]:
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
        sql = f"SELECT {self._run_columns} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at, rowid"
        return [self._run_record(row) for row in self._connection().execute(sql, params)]

    def run(self, run_id: str) -> RunRecord:
        row = (
            self._connection().execute(f"SELECT {self._run_columns} FROM runs WHERE id = ?", (run_id,)).fetchone()
        )
        if row is None:
            raise KeyError(f"no run {run_id!r} in {self.path}")
        return self._run_record(row)

    def has_run(self, run_id: str) -> bool:
        row = self._connection().execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone()
        return row is not None

    @staticmethod
    def _run_record(row: tuple[Any, ...]) -> RunRecord:
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

    def epochs(self, run_id: str) -> list[EpochRecord]:
        return self.epochs_for([run_id]).get(run_id, [])

    def epochs_for(self, run_ids: Sequence[str]) -> dict[str, list[EpochRecord]]:
        """Epoch metrics of many runs in one query: ``{run_id: [EpochRecord, ...]}``."""
        ids = list(dict.fromkeys(run_ids))
        out: dict[str, list[EpochRecord]] = {rid: [] for rid in ids}
        if not ids:
            return out
        conn = self._connection()
        # A temp table keeps this one query however many ids there are (no variable limit).
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS _wanted (id TEXT PRIMARY KEY)")
        conn.execute("DELETE FROM _wanted")
        conn.executemany("INSERT OR IGNORE INTO _wanted VALUES (?)", [(rid,) for rid in ids])
        rows = conn.execute(
            f"SELECT {_EPOCH_COLUMNS} FROM epoch_metrics JOIN _wanted ON run_id = _wanted.id "
            "ORDER BY run_id, epoch"
        ).fetchall()
        conn.execute("DELETE FROM _wanted")
        for *row, metrics in rows:
            out[row[0]].append(EpochRecord(*row, json.loads(metrics) if metrics else {}))
        return out

    def steps(self, run_id: str) -> StepSeries:
        """Every step of a run, sorted by step, each once (where a step was written twice,
        the later write)."""
        return self.steps_for([run_id])[run_id]

    def steps_for(self, run_ids: Sequence[str]) -> dict[str, StepSeries]:
        """The steps of many runs, a few queries however many: ``{run_id: StepSeries}``."""
        ids = list(dict.fromkeys(run_ids))
        conn = self._connection()
        if self._legacy_steps:
            return {rid: self._legacy(conn, rid) for rid in ids}
        blocks: dict[str, list[_Columns]] = {rid: [] for rid in ids}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = conn.execute(
                f"SELECT run_id, {_BLOCK_COLUMNS} FROM step_blocks WHERE run_id IN ({', '.join('?' * len(chunk))}) "
                "ORDER BY run_id, seq",
                chunk,
            )
            for rid, _seq, n, groups, *blobs in rows:
                blocks[rid].append(_Columns.of_block(n, groups, *blobs))
        return {
            rid: _Columns.concat(parts).series(rid) if parts else _empty_series(rid) for rid, parts in blocks.items()
        }

    @staticmethod
    def _legacy(conn: sqlite3.Connection, run_id: str) -> StepSeries:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return _legacy_series(conn, run_id) if "step_metrics" in tables else _empty_series(run_id)

    def step_count(self, run_id: str) -> int:
        """How many distinct steps of the run are stored (from the blocks' bounds alone when
        they do not overlap, as for every run written in step order)."""
        conn = self._connection()
        if self._legacy_steps:
            if "step_metrics" not in {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}:
                return 0
            return int(conn.execute("SELECT COUNT(*) FROM step_metrics WHERE run_id = ?", (run_id,)).fetchone()[0])
        rows = conn.execute(
            "SELECT first_step, last_step, n FROM step_blocks WHERE run_id = ? ORDER BY seq", (run_id,)
        ).fetchall()
        if all(first > last for (_, last, _), (first, _, _) in itertools.pairwise(rows)):
            return sum(n for _, _, n in rows)
        steps = conn.execute("SELECT step FROM step_blocks WHERE run_id = ?", (run_id,))
        return len(np.unique(np.concatenate([np.frombuffer(blob, _INT) for (blob,) in steps])))

    def finder_results(self, task: str | None = None, sweep: str | None = None) -> list[FinderRecord]:
        where, params = [], []
        if task is not None:
            where.append("task = ?")
            params.append(task)
        if sweep is not None:
            where.append("sweep = ?")
            params.append(sweep)
        sql = (
            "SELECT id, task, optimizer, lrs, losses, smoothed, suggestions, lr, reason, base_lr, "
            "max_lr, sweep, created_at, config FROM finder_results"
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at, id"
        out = []
        for row in self._connection().execute(sql, params):
            (fid, task_, opt, lrs, losses, smoothed, sugg, lr, reason, base, top, sw, created, cfg) = row
            out.append(
                FinderRecord(
                    id=fid,
                    task=task_,
                    optimizer=opt,
                    lrs=_array(lrs),
                    losses=_array(losses),
                    smoothed=_array(smoothed),
                    suggestions={k: float(v) for k, v in json.loads(sugg).items()},
                    lr=float(lr),
                    reason=reason,
                    base_lr=base,
                    max_lr=top,
                    sweep=sw,
                    created_at=created,
                    config=json.loads(cfg or "{}"),
                )
            )
        return out

    # ------------------------------------------------------------ writing

    def upsert_sweep(self, name: str, spec: dict[str, Any]) -> None:
        now = time.time()
        with self._write() as tx:
            tx.execute(
                "INSERT INTO sweeps (name, spec, created_at, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at",
                (name, json.dumps(spec, sort_keys=True), now, now),
            )

    def create_runs(self, records: Sequence[RunRecord]) -> None:
        """Register runs in one transaction; a run whose id is already stored is left as it is."""
        now = time.time()
        rows = [self._run_row(r, now) for r in records]
        with self._write() as tx:
            tx.executemany(
                _INSERT_RUN,
                rows,
            )

    @staticmethod
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

    # ------------------------------------------------------------ the run lifecycle
    # begin_run -> append_metrics ... -> end_run, each one transaction. The training loop,
    # the vectorised trainer, the Ray import and user callbacks all record through these.

    def begin_run(
        self, record: RunRecord, extras: dict[str, Any] | None = None, *, owner: str | None = None
    ) -> bool:
        """Mark ``record`` running: create it if needed, forget an earlier attempt's metrics,
        stamp ``started_at`` and its versions, merge ``extras``. One transaction.

        With ``owner`` the run is *claimed*: it is begun only if it is not finished and no
        live owner holds it (an owner whose heartbeat is older than ``LEASE_SECONDS``, or
        whose process on this machine is gone, has lost it). Returns whether it was begun.
        """
        with self._write() as tx:
            if owner is not None and not self._claimable(tx, record.id, owner):
                return False
            self._begin(tx, record, extras or {}, owner)
        return True

    def release_space(self) -> None:
        """After a full disk: fold the write-ahead log back into the file and truncate it,
        which frees its pages for the few writes that end a run."""
        with contextlib.suppress(sqlite3.Error):
            self._connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def append_metrics(
        self,
        run_id: str,
        steps: Sequence[StepRow] = (),
        epochs: Sequence[EpochRecord] = (),
        *,
        owner: str | None = None,
    ) -> None:
        """Step rows ``(step, epoch, lrs, momentum, loss, grad_norm)`` and epoch records of
        one run, in one transaction (with ``owner``: only while it holds the run, which also
        renews its heartbeat; else ``ClaimLost``)."""
        if steps or epochs or owner is not None:
            with self._write() as tx:
                self._held(tx, run_id, owner)
                self._append(tx, run_id, steps, epochs)

    def end_run(
        self,
        run_id: str,
        status: RunStatus | str,
        *,
        error: str | None = None,
        diverged_step: int | None = None,
        extras: dict[str, Any] | None = None,
        owner: str | None = None,
    ) -> None:
        """Set the run's status (a final one stamps ``finished_at``; ``queued`` puts an
        interrupted run back in the queue), merge ``extras``, fold the run's step blocks into
        one and release the claim. One transaction; with ``owner``, only while it holds the run
        (else ``ClaimLost``). On a full disk the run still ends, its blocks left as they are."""
        status = RunStatus.parse(status)
        try:
            with self._write() as tx:
                self._held(tx, run_id, owner)
                self._end(tx, run_id, status, error, diverged_step, extras or {})
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_FULL:
                raise
            self.release_space()  # the folded copy that did not fit may have grown the log
            with self._write() as tx:  # the status is the one small write left to try
                self._held(tx, run_id, owner)
                self._end(tx, run_id, status, error, diverged_step, extras or {}, compact=False)

    def _claimable(self, tx: sqlite3.Connection, run_id: str, owner: str) -> bool:
        row = tx.execute("SELECT status, owner, heartbeat FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            return True
        status, holder, beat = RunStatus.parse(row[0]), row[1], row[2]
        if status.is_finished:
            return False
        if status is not RunStatus.RUNNING or holder is None or holder == owner:
            return True
        return not _owner_alive(holder) or beat is None or time.time() - beat > LEASE_SECONDS

    def _held(self, tx: sqlite3.Connection, run_id: str, owner: str | None) -> None:
        if owner is None:
            return
        cursor = tx.execute(
            "UPDATE runs SET heartbeat = ? WHERE id = ? AND owner = ?", (time.time(), run_id, owner)
        )
        if cursor.rowcount != 1:
            raise ClaimLost(f"run {run_id} is no longer held by {owner} (another process took it over)")

    def import_run(
        self,
        record: RunRecord,
        steps: Sequence[StepRow],
        epochs: Sequence[EpochRecord],
        *,
        owner: str | None = None,
    ) -> None:
        """A run trained elsewhere (a Ray worker): begin, metrics and end in ONE transaction,
        so it lands whole or not at all (with ``owner``: only while it holds the run)."""
        with self._write() as tx:
            self._held(tx, record.id, owner)
            self._begin(tx, record, {}, None)
            self._append(tx, record.id, steps, epochs)
            self._end(tx, record.id, record.status, record.error, record.diverged_step, record.extras)

    def _begin(
        self, tx: sqlite3.Connection, record: RunRecord, extras: dict[str, Any], owner: str | None
    ) -> None:
        tx.execute(
            _INSERT_RUN,
            self._run_row(replace(record, status=RunStatus.QUEUED), time.time()),
        )
        tx.execute("DELETE FROM step_blocks WHERE run_id = ?", (record.id,))
        tx.execute("DELETE FROM epoch_metrics WHERE run_id = ?", (record.id,))
        row = tx.execute("SELECT extras FROM runs WHERE id = ?", (record.id,)).fetchone()
        merged = json.dumps({**json.loads(row[0] or "{}"), **extras}, sort_keys=True)
        tx.execute(
            "UPDATE runs SET status = 'running', error = NULL, diverged_step = NULL, started_at = ?, "
            "finished_at = NULL, lrlab_version = ?, torch_version = ?, extras = ?, owner = ?, heartbeat = ? "
            "WHERE id = ?",
            (time.time(), record.lrlab_version, record.torch_version, merged, owner, time.time(), record.id),
        )

    @staticmethod
    def _append(
        tx: sqlite3.Connection, run_id: str, steps: Sequence[StepRow], epochs: Sequence[EpochRecord]
    ) -> None:
        if steps:
            _append_block(tx, run_id, _Columns.of_rows(steps))
        if epochs:
            tx.executemany(
                f"INSERT OR REPLACE INTO epoch_metrics ({_EPOCH_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
                [
                    (run_id, int(e.epoch), int(e.step), _float(e.train_loss), _float(e.val_loss),
                     _float(e.val_error), _float(e.val_accuracy), float(e.wall_time), _metrics(e.metrics))
                    for e in epochs
                ],
            )  # fmt: skip

    def _end(
        self,
        tx: sqlite3.Connection,
        run_id: str,
        status: RunStatus,
        error: str | None,
        diverged_step: int | None,
        extras: dict[str, Any],
        *,
        compact: bool = True,
    ) -> None:
        row = tx.execute("SELECT extras FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(f"no run {run_id!r} in {self.path}")
        if compact:
            _compact(tx, run_id)
        merged = json.dumps({**json.loads(row[0] or "{}"), **extras}, sort_keys=True)
        finished = time.time() if status.is_ended else None
        tx.execute(
            "UPDATE runs SET status = ?, error = ?, diverged_step = ?, finished_at = ?, extras = ?, "
            "owner = NULL, heartbeat = NULL WHERE id = ?",
            (status.value, error, diverged_step, finished, merged, run_id),
        )

    def save_finder_result(self, record: FinderRecord) -> None:
        """Store (or replace, by id) a range test."""
        with self._write() as tx:
            tx.execute(
                "INSERT OR REPLACE INTO finder_results (id, task, optimizer, sweep, lrs, losses, smoothed, "
                "suggestions, lr, reason, base_lr, max_lr, created_at, config) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    record.id, record.task, record.optimizer, record.sweep, _blob(record.lrs),
                    _blob(record.losses), _blob(record.smoothed),
                    json.dumps({k: float(v) for k, v in record.suggestions.items()}, sort_keys=True),
                    float(record.lr), record.reason, _float(record.base_lr), _float(record.max_lr),
                    record.created_at if record.created_at is not None else time.time(),
                    json.dumps(record.config, sort_keys=True),
                ),
            )  # fmt: skip

    def delete_runs(self, ids: Sequence[str]) -> int:
        """Delete runs and their metrics; returns how many runs were deleted."""
        ids = list(dict.fromkeys(ids))
        if not ids:
            return 0
        deleted = 0
        with self._write() as tx:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                tx.execute(f"DELETE FROM step_blocks WHERE run_id IN ({marks})", chunk)
                tx.execute(f"DELETE FROM epoch_metrics WHERE run_id IN ({marks})", chunk)
                deleted += tx.execute(f"DELETE FROM runs WHERE id IN ({marks})", chunk).rowcount
        return deleted

    def delete_sweep(self, name: str) -> int:
        """Delete a sweep and all of its runs; returns how many runs were deleted."""
        ids = [r.id for r in self.runs(sweep=name)]
        count = self.delete_runs(ids)
        with self._write() as tx:
            tx.execute("DELETE FROM sweeps WHERE name = ?", (name,))
        return count
