"""Claims on runs: which process trains a run, and when another may take it over.

A process that begins a run with an ``owner`` (:func:`new_owner`) *claims* it: the run's
``owner`` column names it and its ``heartbeat`` column is renewed by every write it makes.
Another process may take the run over when the claim's owner has not written for
``LEASE_SECONDS``, or when the owner ran on this machine and its process is gone; the
first owner's next write then raises :class:`ClaimLost`. Each check runs inside the write
transaction that acts on it, so two processes never both hold a run.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
import uuid

from lrlab.core.records import RunStatus

__all__ = ["LEASE_SECONDS", "ClaimLost", "RunRemoved", "claimable", "hold", "new_owner"]

# A claim whose owner has not written for this long may be taken over by another process.
LEASE_SECONDS = 120.0


class ClaimLost(RuntimeError):
    """A process wrote to a run whose claim another process has taken over."""


class RunRemoved(KeyError):
    """The run a process trained was removed from the store by another process meanwhile
    (``lrlab runs rm``): nothing of it is left to record or return. A ``KeyError``, as a
    run looked up by id that is not in the store."""

    def __str__(self) -> str:  # one line, not KeyError's quoted repr
        return str(self.args[0]) if self.args else ""


def new_owner() -> str:
    """A claim owner for this process: ``host:pid:token``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_local(owner: str) -> bool:
    """Whether a claim owner (``host:pid:token``) ran on this machine."""
    host, _, rest = owner.partition(":")
    return host == socket.gethostname() and rest.partition(":")[0].isdigit()


def owner_alive(owner: str) -> bool:
    """False when the owner's process ran on this machine and is gone."""
    if not owner_is_local(owner):
        return True  # another machine: only its heartbeat can tell
    try:
        os.kill(int(owner.split(":")[1]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claimable(tx: sqlite3.Connection, run_id: str, owner: str) -> bool:
    """Whether ``owner`` may begin the run: it is not stored yet, or not finished and held by
    no live owner (nor running), or held by ``owner`` itself."""
    row = tx.execute("SELECT status, owner, heartbeat FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        return True
    status, holder, beat = RunStatus.parse(row[0]), row[1], row[2]
    if status.is_finished:
        return False
    if status is not RunStatus.RUNNING or holder is None or holder == owner:
        return True
    return not owner_alive(holder) or beat is None or time.time() - beat > LEASE_SECONDS


def hold(tx: sqlite3.Connection, run_id: str, owner: str | None) -> None:
    """Renew ``owner``'s heartbeat on the run, or raise ``ClaimLost`` when it no longer holds
    it. No owner: nothing to check."""
    if owner is None:
        return
    cursor = tx.execute("UPDATE runs SET heartbeat = ? WHERE id = ? AND owner = ?", (time.time(), run_id, owner))
    if cursor.rowcount != 1:
        raise ClaimLost(f"run {run_id} is no longer held by {owner} (another process took it over)")
