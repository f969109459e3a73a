"""Where the default store is: ``lrlab-runs/lrlab.db`` under the working directory, for the
CLI, ``lrlab.study``, ``lrlab.track`` and every recorder alike.

Before that was so, ``lrlab.study`` (the Python API) wrote ``lrlab-runs/runs.db``. A store
left there is found when the default is opened: moved to the default path when there is
none yet (its write-ahead log folded in first, so that no ``-wal`` file is left behind), or
left alone, with one line saying how to read it, when both exist. The line goes to the
``lrlab.store`` logger (stderr when logging is not configured), once per process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import urllib.parse
from pathlib import Path

__all__ = ["DEFAULT_DB", "LEGACY_DB", "is_default_db", "resolve_default_db"]

DEFAULT_DB = Path("lrlab-runs") / "lrlab.db"
# Where lrlab.study wrote its store before it shared the default.
LEGACY_DB = DEFAULT_DB.with_name("runs.db")
# How long to wait for another process's lock on the old store before using it where it is.
_MOVE_TIMEOUT = 5.0

log = logging.getLogger("lrlab.store")
_told: set[str] = set()


def is_default_db(path: str | Path | None) -> bool:
    """Whether ``path`` names the default store (None does)."""
    return path is None or (str(path) != ":memory:" and Path(path) == DEFAULT_DB)


def resolve_default_db(path: str | Path | None = None) -> Path:
    """The file to open for ``path``: ``path`` itself unless it is the default store
    (``DEFAULT_DB`` or None); for the default, an older ``lrlab-runs/runs.db`` is moved to
    ``DEFAULT_DB`` first if that does not exist yet (see the module docstring).

    >>> str(resolve_default_db("elsewhere/runs.db"))
    'elsewhere/runs.db'
    """
    if not is_default_db(path):
        return Path(path)  # type: ignore[arg-type]
    if not os.path.lexists(LEGACY_DB):
        return DEFAULT_DB
    old = f"{LEGACY_DB} (lrlab.study's older default store)"
    if DEFAULT_DB.exists():
        _say_once(
            f"{old} was left alone: {DEFAULT_DB} is the default store now; "
            f"read the old one with --db {LEGACY_DB} (Python: store={str(LEGACY_DB)!r})"
        )
        return DEFAULT_DB
    return _move_legacy(old)


def _say_once(message: str) -> None:
    """Log ``message`` once per process and working directory (the paths in it are relative)."""
    key = f"{Path.cwd()}\0{message}"
    if key not in _told:
        _told.add(key)
        log.warning(message)


def _move_legacy(old: str) -> Path:
    """Move ``LEGACY_DB`` to ``DEFAULT_DB``, holding the old file's exclusive lock so that
    processes opening the default at once move it once; the path to use."""
    uri = "file:" + urllib.parse.quote(str(LEGACY_DB.resolve())) + "?mode=rw"  # never creates it
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=_MOVE_TIMEOUT, isolation_level=None)
    except sqlite3.OperationalError:
        return DEFAULT_DB  # gone meanwhile: another process moved it
    try:
        if not _is_run_store(conn):
            _say_once(f"{LEGACY_DB} is no run store; it was left alone and {DEFAULT_DB} is the default store")
            return DEFAULT_DB
        moved = _fold_and_rename(conn)
    except (sqlite3.Error, OSError) as exc:
        _say_once(f"{old} could not be moved to {DEFAULT_DB} ({exc}); using it where it is")
        return LEGACY_DB
    finally:
        conn.close()
    if moved:
        _say_once(f"moved {old} to {DEFAULT_DB}")
    return DEFAULT_DB


def _is_run_store(conn: sqlite3.Connection) -> bool:
    try:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.OperationalError):
            raise  # locked or unreadable: the caller says so
        return False  # not an SQLite file at all
    return {"runs", "sweeps"} <= names


def _fold_and_rename(conn: sqlite3.Connection) -> bool:
    """Fold the write-ahead log into the file and leave WAL mode (SQLite allows that only
    when no other connection has the file open, and removes the ``-wal`` and ``-shm``
    files), then rename the file under its exclusive lock. False when another process
    moved it first. The next writer of the default store puts it back in WAL mode."""
    mode = conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0]
    if str(mode).lower() != "delete":
        raise sqlite3.OperationalError(f"its journal stays in {mode} mode")
    conn.execute("BEGIN EXCLUSIVE")
    try:
        if DEFAULT_DB.exists() or not LEGACY_DB.exists():
            return False
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                if os.path.getsize(f"{LEGACY_DB}{suffix}") > 0:
                    raise sqlite3.OperationalError(f"its {suffix} file is still in use")
        os.replace(LEGACY_DB, DEFAULT_DB)
    finally:
        conn.execute("ROLLBACK")
    for suffix in ("-wal", "-shm"):  # empty leftovers of the old name, if SQLite kept any
        leftover = Path(f"{LEGACY_DB}{suffix}")
        with contextlib.suppress(FileNotFoundError):
            if leftover.stat().st_size == 0:
                leftover.unlink()
    return True
