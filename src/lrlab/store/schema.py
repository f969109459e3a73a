"""The store's schema: its tables, the migrations between versions, and the checks that
a file is a run store this lrlab can use.

The schema is versioned with ``PRAGMA user_version``; ``_MIGRATIONS[i]`` takes version ``i``
to ``i + 1``, and ``SCHEMA_VERSION`` is their number. Columns are typed where the shape is
known; JSON is used only for a run's resolved config, its extras, a sweep's spec and a
finder's suggestions.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from lrlab.store.codec import INSERT_BLOCK, block_row, legacy_series
from lrlab.store.errors import StoreError
from lrlab.store.instruments import MIGRATION as _INSTRUMENTS

__all__ = ["SCHEMA_VERSION", "check_schema", "migrate", "tables"]

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
        tx.execute(INSERT_BLOCK, block_row(0, legacy_series(tx, run_id)))
    tx.execute("DROP TABLE step_metrics")


# A migration is SQL (statements separated by ';') or a function of the open transaction.
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
    # 5 -> 6: instrument series (as blocks) and findings made while a run trains.
    _INSTRUMENTS,
)
SCHEMA_VERSION = len(_MIGRATIONS)


def migrate(tx: sqlite3.Connection) -> None:
    """Take the store of the open write transaction ``tx`` to ``SCHEMA_VERSION`` (read again
    inside the write lock: another process may have migrated meanwhile)."""
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


def tables(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def check_schema(conn: sqlite3.Connection, path: str, *, quick_check: bool) -> None:
    """Refuse, in one line naming the file, a store of a newer lrlab, a foreign SQLite file
    and (with ``quick_check``) a damaged one."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} has schema version {version}, newer than this lrlab's ({SCHEMA_VERSION}): "
            "upgrade lrlab to use it"
        )
    names = tables(conn)
    if (version == 0 and names) or (version > 0 and not {"runs", "sweeps"} <= names):
        raise StoreError(f"{path} is an SQLite file of another program, not a run store: pass another --db")
    if quick_check:
        result = conn.execute("PRAGMA quick_check").fetchone()[0]
        if result != "ok":
            raise StoreError(
                f"{path} is damaged (quick_check: {str(result).splitlines()[0]}): "
                "restore it from a backup or pass another --db"
            )
