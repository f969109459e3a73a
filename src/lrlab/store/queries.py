"""Python API over the store: runs and their metrics as plain records or pandas DataFrames.

>>> from lrlab.store.queries import runs_frame   # doctest: +SKIP
>>> runs_frame("lrlab-runs/lrlab.db", sweep="digits-lr").sort_values("final_val_loss").head()  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lrlab.core.records import EpochRecord, RunRecord
from lrlab.store.errors import StoreError
from lrlab.store.location import resolve_default_db
from lrlab.store.sqlite import Store

__all__ = [
    "EXPORT_COLUMNS",
    "FINAL_METRICS",
    "epochs_frame",
    "export_records",
    "flat_record",
    "flat_records",
    "load_runs",
    "open_store",
    "runs_frame",
    "steps_frame",
]

FINAL_METRICS = ("train_loss", "val_loss", "val_error", "val_accuracy")
# The first columns of the CSV export and of runs_frame, in order (the JSON export nests them);
# the objective and the task's named metrics follow (flat_records).
EXPORT_COLUMNS = (
    "id", "sweep", "status", "task", "optimizer", "schedule", "lr", "seed", "epochs", "batch_size",
    "error", "diverged_step", "final_epoch", "final_train_loss", "final_val_loss", "final_val_error",
    "final_val_accuracy", "wall_time", "config",
)  # fmt: skip


def open_store(db: str | Path | Store | None = None, *, readonly: bool = True) -> Store:
    """A ``Store`` for ``db`` (a path, a Store, or None for the one default store), read-only
    by default: it must exist (else ``FileNotFoundError``), and it is never written (nor
    migrated). A file that is no usable store raises :class:`~lrlab.store.sqlite.StoreError`.
    The CLI opens its stores through this function too."""
    if isinstance(db, Store):
        return db
    path = resolve_default_db(db)
    if path.is_dir():
        raise StoreError(f"{path} is a folder, not a run store: pass the path of a .db file")
    if readonly and not path.is_file():
        raise FileNotFoundError(f"no run store at {str(path)!r} (run 'lrlab sweep' first or pass --db)")
    return Store(path, readonly=readonly, _resolved=True)


def load_runs(db: str | Path | Store | None = None, sweep: str | None = None) -> list[RunRecord]:
    return _selected(open_store(db), sweep, None)


def _final(epochs: list[EpochRecord]) -> dict[str, Any] | None:
    if not epochs:
        return None
    last = epochs[-1]
    return {"epoch": last.epoch, **{key: getattr(last, key) for key in FINAL_METRICS}, **dict(last.metrics)}


def _selected(store: Store, sweep: str | None, ids: Sequence[str] | None) -> list[RunRecord]:
    """The runs a query asks for: a sweep's (a study's across its sweeps), given ids, or all."""
    return store.sweep_runs(sweep) if sweep is not None and ids is None else store.runs(sweep=sweep, ids=ids)


def export_records(
    db: str | Path | Store | None = None, sweep: str | None = None, ids: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """One JSON-ready dict per run, the stable export format::

        {"id", "sweep", "status", "seed", "config", "error", "diverged_step",
         "created_at", "started_at", "finished_at", "lrlab_version", "torch_version",
         "objective": {"metric", "higher_is_better", "loss", "unit", "metrics"} or null,
         "final": {"epoch", "train_loss", "val_loss", "val_error", "val_accuracy", ...} or null}

    ``final`` holds the last recorded epoch's metrics (``val_error``/``val_accuracy`` are
    null for language models and regression) and any named metric of the task
    (``val_mae``, ``val_r2``, a custom task's own); ``objective`` what the task declared.
    """
    store = open_store(db)
    runs = _selected(store, sweep, ids)
    epochs = store.epochs_for([r.id for r in runs])
    return [
        {
            "id": r.id,
            "sweep": r.sweep,
            "status": r.status.value,
            "seed": r.seed,
            "config": r.config.to_dict(),
            "error": r.error,
            "diverged_step": r.diverged_step,
            "created_at": r.created_at,
            "started_at": r.started_at,
            "finished_at": r.finished_at,
            "lrlab_version": r.lrlab_version,
            "torch_version": r.torch_version,
            "objective": r.extras.get("objective"),
            "final": _final(epochs[r.id]),
        }
        for r in runs
    ]


def flat_record(record: dict[str, Any]) -> dict[str, Any]:
    """An exported record flattened to ``EXPORT_COLUMNS`` (config as JSON text)."""
    config = record["config"]
    final = record["final"] or {}
    wall = None
    if record.get("started_at") is not None and record.get("finished_at") is not None:
        wall = record["finished_at"] - record["started_at"]
    row = {
        "id": record["id"],
        "sweep": record["sweep"],
        "status": record["status"],
        "task": config.get("task"),
        "optimizer": config.get("optimizer"),
        "schedule": config.get("schedule"),
        "lr": config.get("lr"),
        "seed": record["seed"],
        "epochs": config.get("epochs"),
        "batch_size": config.get("batch_size"),
        "error": record["error"],
        "diverged_step": record["diverged_step"],
        "final_epoch": final.get("epoch"),
        **{f"final_{key}": final.get(key) for key in FINAL_METRICS},
        "wall_time": wall,
        "config": json.dumps(config, sort_keys=True),
    }
    return {key: row[key] for key in EXPORT_COLUMNS}


def flat_records(records: Sequence[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Exported records as flat rows, and their columns: ``EXPORT_COLUMNS``, then the objective
    the task declared (``objective``, ``objective_higher_is_better``) and a ``final_<metric>``
    column for every named metric some run recorded (``final_val_mae``), in the order first
    seen. What the CSV export and :func:`runs_frame` both write, so neither drops a task's own
    metric."""
    named = list(
        dict.fromkeys(k for r in records for k in (r["final"] or {}) if k not in ("epoch", *FINAL_METRICS))
    )
    columns = [*EXPORT_COLUMNS, "objective", "objective_higher_is_better", *(f"final_{k}" for k in named)]
    rows = []
    for record in records:
        objective = record.get("objective") or {}
        final = record["final"] or {}
        rows.append(
            {**flat_record(record), "objective": objective.get("metric"),
             "objective_higher_is_better": objective.get("higher_is_better"),
             **{f"final_{k}": final.get(k) for k in named}}
        )  # fmt: skip
    return columns, rows


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ImportError("DataFrames need pandas: pip install 'lrlab[pandas]'") from None
    return pandas


def runs_frame(db: str | Path | Store | None = None, sweep: str | None = None) -> Any:
    """One row per run, as a pandas DataFrame: ``EXPORT_COLUMNS``, the task's objective and
    every named final metric (``final_val_mae``), as in the CSV export (:func:`flat_records`)."""
    pandas = _pandas()
    columns, rows = flat_records(export_records(db, sweep))
    return pandas.DataFrame(rows, columns=columns)


def epochs_frame(
    db: str | Path | Store | None = None, sweep: str | None = None, ids: Sequence[str] | None = None
) -> Any:
    """One row per run and epoch, with the run's config axes beside the metrics."""
    pandas = _pandas()
    store = open_store(db)
    runs = _selected(store, sweep, ids)
    epochs = store.epochs_for([r.id for r in runs])
    rows = []
    for r in runs:
        for e in epochs[r.id]:
            rows.append(
                {"run_id": r.id, "sweep": r.sweep, "status": r.status.value, "optimizer": r.config.optimizer,
                 "schedule": str(r.config.schedule), "lr": r.config.lr, "seed": r.seed,
                 "epoch": e.epoch, "step": e.step, "train_loss": e.train_loss, "val_loss": e.val_loss,
                 "val_error": e.val_error, "val_accuracy": e.val_accuracy, "wall_time": e.wall_time,
                 **dict(e.metrics)}
            )  # fmt: skip
    columns = ["run_id", "sweep", "status", "optimizer", "schedule", "lr", "seed", "epoch", "step",
               "train_loss", "val_loss", "val_error", "val_accuracy", "wall_time"]  # fmt: skip
    named = sorted({k for r in runs for e in epochs[r.id] for k in e.metrics})
    columns += named
    return pandas.DataFrame(rows, columns=columns)


def steps_frame(db: str | Path | Store | None, run_id: str) -> Any:
    """Every step of one run: step, epoch, lr (and lr_<i> per group), momentum, loss, grad_norm."""
    pandas = _pandas()
    series = open_store(db).steps(run_id)
    data: dict[str, Any] = {"step": series.step, "epoch": series.epoch, "lr": series.lr}
    if series.lrs.shape[1] > 1:
        for i in range(series.lrs.shape[1]):
            data[f"lr_{i}"] = series.lrs[:, i]
    data.update(momentum=series.momentum, loss=series.loss, grad_norm=series.grad_norm)
    return pandas.DataFrame(data)
