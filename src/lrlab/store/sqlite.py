"""The SQLite run store: sweeps, runs, step and epoch metrics, range tests.

One file (``lrlab-runs/lrlab.db`` by default, see :mod:`lrlab.store.location`), stdlib
``sqlite3`` in WAL mode so that several worker processes write while a reader reads.
:class:`Store` is the one entry point; the store is split by concern behind it:

- :mod:`lrlab.store.schema`: the tables, ``PRAGMA user_version`` migrations, the checks
  that a file is a usable store;
- :mod:`lrlab.store.claims`: which process holds a run (owners, leases, ``ClaimLost``);
- :mod:`lrlab.store.codec`: a run's steps as columnar step blocks and how they fold;
- :mod:`lrlab.store.runs` and :mod:`lrlab.store.range_tests`: records to rows and back.

Each write is one transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``): a process killed
mid-run loses at most the rows of the batch it was writing, never a committed run, and
the file stays consistent (``PRAGMA integrity_check`` is ``ok``).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lrlab.core.diagnostics import Finding
from lrlab.core.records import EpochRecord, FinderRecord, RunRecord, RunStatus, StepSeries
from lrlab.store import codec
from lrlab.store import instruments as instrument_table
from lrlab.store import runs as run_table
from lrlab.store.claims import LEASE_SECONDS, ClaimLost, RunRemoved, claimable, hold, new_owner
from lrlab.store.codec import StepRow
from lrlab.store.errors import StoreError
from lrlab.store.instruments import InstrumentSeries
from lrlab.store.location import DEFAULT_DB, is_default_db, resolve_default_db
from lrlab.store.range_tests import save_range_test, select_range_tests
from lrlab.store.schema import SCHEMA_VERSION, check_schema, migrate, tables

__all__ = [
    "DEFAULT_DB",
    "LEASE_SECONDS",
    "SCHEMA_VERSION",
    "ClaimLost",
    "InstrumentSeries",
    "RunRemoved",
    "StepRow",
    "Store",
    "StoreError",
    "new_owner",
]


def _create_store_file(file: Path, name: str) -> None:
    """Make a new store at ``file`` without a moment where another process could find it
    half made: the schema is written into a temporary file beside it, which is then
    hard-linked to ``file`` (atomic, and it fails when ``file`` exists: then another process
    made it first and its store is used). Where hard links are not supported it is renamed
    into place unless ``file`` appeared meanwhile."""
    try:
        for parent in file.parents:  # the first folder that exists must be a folder
            if parent.exists():
                if not parent.is_dir():
                    raise StoreError(f"cannot make a run store at {name}: {parent} is a file, not a folder")
                break
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_name(f".{file.name}.{uuid.uuid4().hex[:12]}.new")
        try:
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("BEGIN IMMEDIATE")
                migrate(conn)
                conn.execute("COMMIT")
            finally:
                conn.close()  # the last connection: the log is folded in and removed
            try:
                os.link(tmp, file)
            except FileExistsError:
                pass  # another process made it first: that store is used
            except OSError:  # no hard links on this file system
                if not file.exists():
                    os.replace(tmp, file)
        finally:
            for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"), Path(f"{tmp}-journal")):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
    except (OSError, sqlite3.Error) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise StoreError(f"cannot make a run store at {name} ({reason}): pass another --db") from None


class Store:
    """The run database. Safe to use from several processes at once (WAL, busy timeout).

    A ``Store`` holds one connection per process: it reconnects after a fork and pickles
    as its path, so it can be handed to worker processes. ``":memory:"`` gives a private
    in-memory store (used by the Ray backend on worker nodes). The default path is the one
    default store (:func:`~lrlab.store.location.resolve_default_db`).

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
        _resolved: bool = False,
    ) -> None:
        self.path = str(resolve_default_db(path) if not _resolved and is_default_db(path) else path)
        self.timeout = timeout
        self.readonly = readonly
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self._checked = _checked or self.path == ":memory:"
        self._run_columns = run_table.RUN_COLUMNS
        self._legacy_steps = False
        if self.path != ":memory:":
            self._check_file(Path(self.path).expanduser())
        self._connection()

    def _check_file(self, file: Path) -> None:
        if file.is_dir():
            raise StoreError(f"{self.path} is a folder, not a run store: pass the path of a .db file")
        if self.readonly and not file.is_file():
            raise StoreError(f"no run store at {self.path} (run 'lrlab sweep' first or pass --db)")
        if not file.exists():
            _create_store_file(file, self.path)
            self._checked = True  # made here (or by a process that won the race): nothing to check
        if file.is_file() and file.stat().st_size == 0:
            raise StoreError(f"{self.path} is an empty file, not a run store: delete it or pass another --db")

    # ------------------------------------------------------------ connection

    def __repr__(self) -> str:
        return f"Store({self.path!r})"

    def __getstate__(self) -> dict[str, Any]:
        if self.path == ":memory:":
            raise TypeError("an in-memory Store cannot be sent to another process")
        return {"path": self.path, "timeout": self.timeout, "readonly": self.readonly, "checked": self._checked}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # The path was resolved where the store was made: a worker opens that very file.
        self.__init__(  # type: ignore[misc]
            state["path"], timeout=state["timeout"], readonly=state.get("readonly", False),
            _checked=state.get("checked", False), _resolved=True,
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
        if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            with self._write() as tx:
                migrate(tx)
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
        # An older store read as it is (a reader never migrates): one row per step.
        self._legacy_steps = "step_blocks" not in tables(conn)
        self._run_columns = run_table.readable_run_columns(conn)
        return conn

    def _check(self, conn: sqlite3.Connection) -> None:
        """Refuse a store of a newer lrlab, a foreign SQLite file and (once per store and
        process tree) a damaged one."""
        check_schema(conn, self.path, quick_check=not self._checked)
        self._checked = True

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

    # ------------------------------------------------------------ sweeps and studies

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
        found = self.runs(sweep=name, status=status)
        record = None if found else self.study_record(name)
        if not record or not record.get("run_ids"):
            return found
        return self.runs(ids=[str(i) for i in record["run_ids"]], status=status)

    def upsert_sweep(self, name: str, spec: dict[str, Any]) -> None:
        now = time.time()
        with self._write() as tx:
            tx.execute(
                "INSERT INTO sweeps (name, spec, created_at, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at",
                (name, json.dumps(spec, sort_keys=True), now, now),
            )

    def delete_sweep(self, name: str) -> int:
        """Delete a sweep and all of its runs; returns how many runs were deleted."""
        ids = [r.id for r in self.runs(sweep=name)]
        count = self.delete_runs(ids)
        with self._write() as tx:
            tx.execute("DELETE FROM sweeps WHERE name = ?", (name,))
        return count

    # ------------------------------------------------------------ reading runs

    def runs(
        self,
        sweep: str | None = None,
        ids: Sequence[str] | None = None,
        status: RunStatus | str | None = None,
    ) -> list[RunRecord]:
        return run_table.select_runs(self._connection(), self._run_columns, sweep=sweep, ids=ids, status=status)

    def run(self, run_id: str) -> RunRecord:
        found = run_table.select_runs(self._connection(), self._run_columns, ids=[run_id])
        if not found:
            raise KeyError(f"no run {run_id!r} in {self.path}")
        return found[0]

    def has_run(self, run_id: str) -> bool:
        row = self._connection().execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone()
        return row is not None

    def epochs(self, run_id: str) -> list[EpochRecord]:
        return self.epochs_for([run_id]).get(run_id, [])

    def epochs_for(self, run_ids: Sequence[str]) -> dict[str, list[EpochRecord]]:
        """Epoch metrics of many runs in one query: ``{run_id: [EpochRecord, ...]}``."""
        return run_table.epochs_for(self._connection(), run_ids)

    def steps(self, run_id: str) -> StepSeries:
        """Every step of a run, sorted by step, each once (where a step was written twice,
        the later write)."""
        return self.steps_for([run_id])[run_id]

    def steps_for(self, run_ids: Sequence[str]) -> dict[str, StepSeries]:
        """The steps of many runs, a few queries however many: ``{run_id: StepSeries}``."""
        conn = self._connection()
        if self._legacy_steps:
            return {rid: codec.legacy_series(conn, rid) for rid in dict.fromkeys(run_ids)}
        return codec.steps_for(conn, run_ids)

    def instruments(self, run_id: str) -> dict[str, InstrumentSeries]:
        """The instrument series of a run (``update_ratio/group0``, ``lr_audit/group0``,
        ``sharpness``, ``sharpness_limit``, ``noise_scale``, ``critical_batch``, ...), each with
        ``steps`` and ``values``; empty for a run recorded without them or an older store."""
        return instrument_table.series(self._connection(), run_id)

    def findings(self, run_id: str) -> list[Finding]:
        """The findings the instruments made while the run trained, in order (each with its
        ``step``, ``kind``, ``message`` and ``evidence``)."""
        return instrument_table.findings(self._connection(), run_id)

    def step_count(self, run_id: str) -> int:
        """How many distinct steps of the run are stored (from the blocks' bounds alone when
        they do not overlap, as for every run written in step order)."""
        conn = self._connection()
        return codec.legacy_step_count(conn, run_id) if self._legacy_steps else codec.step_count(conn, run_id)

    # ------------------------------------------------------------ the run lifecycle
    # begin_run -> append_metrics ... -> end_run, each one transaction. The training loop,
    # the vectorised trainer, the Ray import and user callbacks all record through these.

    def create_runs(self, records: Sequence[RunRecord]) -> None:
        """Register runs in one transaction; a run whose id is already stored is left as it is."""
        with self._write() as tx:
            run_table.insert_runs(tx, records)

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
            if owner is not None and not claimable(tx, record.id, owner):
                return False
            run_table.begin(tx, record, extras or {}, owner)
            instrument_table.forget(tx, record.id)
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
        series: Mapping[str, tuple[Sequence[int], Sequence[float]]] | None = None,
        findings: Sequence[Finding] = (),
    ) -> None:
        """Step rows ``(step, epoch, lrs, momentum, loss, grad_norm)`` and epoch records of
        one run, with its instruments' new ``series`` points (``{name: (steps, values)}``) and
        ``findings``, in one transaction (with ``owner``: only while it holds the run, which
        also renews its heartbeat; else ``ClaimLost``)."""
        if steps or epochs or series or findings or owner is not None:
            with self._write() as tx:
                hold(tx, run_id, owner)
                run_table.append(tx, run_id, steps, epochs)
                if series or findings:
                    instrument_table.append(tx, run_id, series or {}, findings)

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
            self._end(run_id, status, error, diverged_step, extras or {}, owner)
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_FULL:
                raise
            self.release_space()  # the folded copy that did not fit may have grown the log
            # The status is the one small write left to try.
            self._end(run_id, status, error, diverged_step, extras or {}, owner, compact_steps=False)

    def _end(
        self,
        run_id: str,
        status: RunStatus,
        error: str | None,
        diverged_step: int | None,
        extras: dict[str, Any],
        owner: str | None,
        *,
        compact_steps: bool = True,
    ) -> None:
        with self._write() as tx:
            hold(tx, run_id, owner)
            if not run_table.end(tx, run_id, status, error, diverged_step, extras, compact_steps=compact_steps):
                raise KeyError(f"no run {run_id!r} in {self.path}")

    def import_run(
        self,
        record: RunRecord,
        steps: Sequence[StepRow],
        epochs: Sequence[EpochRecord],
        *,
        owner: str | None = None,
        series: Mapping[str, tuple[Sequence[int], Sequence[float]]] | None = None,
        findings: Sequence[Finding] = (),
    ) -> None:
        """A run trained elsewhere (a Ray worker): begin, metrics (its instruments' ``series``
        and ``findings`` too) and end in ONE transaction, so it lands whole or not at all (with
        ``owner``: only while it holds the run)."""
        with self._write() as tx:
            hold(tx, record.id, owner)
            run_table.begin(tx, record, {}, None)
            instrument_table.forget(tx, record.id)
            run_table.append(tx, record.id, steps, epochs)
            instrument_table.append(tx, record.id, series or {}, findings)
            run_table.end(tx, record.id, record.status, record.error, record.diverged_step, record.extras)

    def delete_runs(self, ids: Sequence[str]) -> int:
        """Delete runs and their metrics; returns how many runs were deleted."""
        ids = list(dict.fromkeys(ids))
        if not ids:
            return 0
        with self._write() as tx:
            return run_table.delete_runs(tx, ids)

    # ------------------------------------------------------------ range tests

    def finder_results(self, task: str | None = None, sweep: str | None = None) -> list[FinderRecord]:
        return select_range_tests(self._connection(), task=task, sweep=sweep)

    def save_finder_result(self, record: FinderRecord) -> None:
        """Store (or replace, by id) a range test."""
        with self._write() as tx:
            save_range_test(tx, record)
