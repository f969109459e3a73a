"""Runs and their instruments exported where users already look: TensorBoard event files and MLflow.

Stored runs::

    from lrlab.export import TensorBoard, export_runs
    export_runs("lrlab-runs/lrlab.db", TensorBoard("tb"), sweep="digits-lr")

or ``lrlab runs export --to tensorboard tb --sweep digits-lr``. Live, from your own loop::

    with lrlab.track(optimizer, name="mine", export=[TensorBoard("tb"), MLflow("mlruns")]) as run:
        ...

Both write the same names (:mod:`lrlab.export.series`): ``lr/group<i>``, ``momentum``,
``loss``, ``grad_norm``, ``epoch/<metric>``, ``instruments/<name>``; the findings and the
config as text, the config as hparams/params. TensorBoard and MLflow are the ``export``
extra (``pip install 'lrlab[export]'``); each is imported when its exporter is first named.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from lrlab.export.series import RunExport, load_exports
from lrlab.store.sqlite import Store

__all__ = ["MLflow", "RunExport", "RunWriter", "TensorBoard", "export_runs", "exporter"]

_LAZY = {"TensorBoard": "lrlab.export.tensorboard_writer", "MLflow": "lrlab.export.mlflow_writer"}
_EXTRA = {"TensorBoard": "tensorboard", "MLflow": "mlflow"}
KINDS = {"tensorboard": "TensorBoard", "mlflow": "MLflow"}


class RunWriter(Protocol):
    """What an exporter does with a stored run (``TensorBoard``, ``MLflow``)."""

    def write_run(self, run: RunExport) -> Any: ...

    def view_command(self) -> str: ...


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        try:
            module = importlib.import_module(_LAZY[name])
        except ImportError as exc:
            raise ImportError(
                f"lrlab.export.{name} needs {_EXTRA[name]}: pip install 'lrlab[export]' ({exc})"
            ) from None
        return getattr(module, name)
    raise AttributeError(f"module 'lrlab.export' has no attribute {name!r}")


def exporter(kind: str, where: str | Path) -> RunWriter:
    """The exporter named ``kind`` (``tensorboard`` or ``mlflow``) writing to ``where``."""
    if kind not in KINDS:
        raise ValueError(f"export to must be one of {', '.join(KINDS)}, got {kind!r}")
    return __getattr__(KINDS[kind])(where)


def export_runs(
    store: Store,
    writer: RunWriter,
    *,
    sweep: str | None = None,
    ids: Sequence[str] | None = None,
    progress: Callable[[RunExport], None] | None = None,
) -> int:
    """Write the runs of ``sweep`` (or ``ids``, or every run) with ``writer``, one run at a
    time (a 540-run sweep never sits in memory whole); returns how many were written."""
    count = 0
    for run in load_exports(store, sweep=sweep, ids=ids):
        writer.write_run(run)
        count += 1
        if progress is not None:
            progress(run)
    return count
