"""Optuna's storage for a tune: an embedded SQLite file next to the lrlab store by default,
any Optuna RDB URL (``postgresql://``, ``mysql://``, ``sqlite:///``) or a journal file
(``journal:PATH``, or a path ending in ``.journal``/``.log``) for many machines.

A storage is named by a string, so that worker processes and Ray tasks open their own
connection to the same one (:func:`open_storage`). One that cannot be opened fails at
once, in one line, before anything trains.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["ALLOWED", "default_storage", "open_storage"]

ALLOWED = "sqlite:///FILE, postgresql://..., mysql://..., journal:FILE or a FILE.journal path"
_RDB = ("sqlite", "postgresql", "postgres", "mysql", "mariadb", "oracle", "mssql")
CONNECT_SECONDS = 10


def default_storage(db: str | Path) -> str:
    """``sqlite:///<folder of the lrlab store>/optuna.db``; a journal file beside an
    in-memory store is not possible, so ``:memory:`` gives Optuna's in-memory storage."""
    if str(db) == ":memory:":
        return ":memory:"
    return f"sqlite:///{Path(db).expanduser().resolve().parent / 'optuna.db'}"


def _journal_path(url: str) -> str | None:
    if url.startswith("journal:"):
        return url.removeprefix("journal:")
    if url.endswith((".journal", ".log")) and "://" not in url:
        return url
    return None


def open_storage(url: str) -> Any:
    """The Optuna storage named by ``url``; ``ValueError`` in one line when it cannot be
    used (unknown kind, a server that does not answer, a missing driver)."""
    import optuna

    if url == ":memory:":
        return optuna.storages.InMemoryStorage()
    journal = _journal_path(url)
    if journal is not None:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = Path(journal).expanduser()
        if path.is_dir():
            raise ValueError(f"Optuna journal {journal!r} is a folder; pass a file (allowed: {ALLOWED})")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as exc:
            raise ValueError(f"cannot open the Optuna journal {journal!r}: {exc.strerror or exc}") from None
    scheme = url.partition("://")[0].partition("+")[0].lower()
    if "://" not in url or scheme not in _RDB:
        raise ValueError(f"unknown Optuna storage {url!r} (allowed: {ALLOWED})")
    engine: dict[str, Any] = {}
    if scheme == "sqlite":
        file = url.partition(":///")[2]
        if file and file != ":memory:":
            path = Path(file).expanduser()
            if path.is_dir():
                raise ValueError(f"Optuna storage {url!r} is a folder, not a SQLite file")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ValueError(f"cannot open the Optuna storage {url!r}: {exc.strerror or exc} "
                                 f"(allowed: {ALLOWED})") from None
        engine["connect_args"] = {"timeout": 60}
    elif scheme in ("postgresql", "postgres", "mysql", "mariadb"):
        engine["connect_args"] = {"connect_timeout": CONNECT_SECONDS}
    try:
        with _creation_lock(url if scheme == "sqlite" else None):
            return optuna.storages.RDBStorage(url, engine_kwargs=engine, skip_compatibility_check=False)
    except ImportError as exc:
        raise ValueError(f"Optuna storage {_shown(url)} needs a database driver that is not installed ({exc})") from None
    except Exception as exc:  # SQLAlchemy's OperationalError and friends: the server is not there
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"cannot open the Optuna storage {_shown(url)}: {first[:200]} (allowed: {ALLOWED})") from None


@contextlib.contextmanager
def _creation_lock(url: str | None) -> Iterator[None]:
    """Hold an exclusive lock beside a SQLite storage while Optuna opens it: two processes that
    find the file new both create its tables otherwise, and one fails ("table studies already
    exists"). A lock file ``<file>.lock``; nothing to lock for other kinds, in-memory files, or
    where ``fcntl`` is missing (not POSIX)."""
    file = url.partition(":///")[2] if url else ""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        fcntl = None  # type: ignore[assignment]
    if not file or file == ":memory:" or fcntl is None:
        yield
        return
    lock = Path(file).expanduser().with_name(Path(file).name + ".lock")
    handle = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)  # a lock file, never written
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # closing releases the lock


def _shown(url: str) -> str:
    """The URL without its password."""
    head, sep, tail = url.partition("://")
    if sep and "@" in tail:
        credentials, _, host = tail.rpartition("@")
        user = credentials.partition(":")[0]
        return repr(f"{head}://{user}:***@{host}")
    return repr(url)


def storage_env() -> None:
    """Quiet Optuna's per-trial INFO lines (lrlab renders its own progress)."""
    import optuna

    optuna.logging.set_verbosity(int(os.environ.get("LRLAB_OPTUNA_VERBOSITY", optuna.logging.WARNING)))
