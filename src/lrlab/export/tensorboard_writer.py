"""Runs as TensorBoard event files, written through torch's ``SummaryWriter``.

Each run is a folder ``DIR/<sweep>/<run id>`` (``DIR/runs/<run id>`` without a sweep), so
``tensorboard --logdir DIR`` shows one line per run and filters by sweep. Scalars are
written in double precision (TensorBoard's tensor form), so what TensorBoard reads back is
what the store holds, to the bit; the names are those of :mod:`lrlab.export.series`. The
config is an hparams entry (with the final metrics as its columns) and a text panel; the
findings are a text panel, one line each.

A stored run is written into a folder beside its target and renamed over it, so exporting
again replaces the run whole instead of adding a second copy of every scalar.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from lrlab.core.records import EpochRecord, RunRecord
from lrlab.export.series import (
    RunExport,
    Scalar,
    config_params,
    config_text,
    epoch_scalars,
    findings_text,
    instrument_scalars,
    read_export,
    rows_to_series,
    step_scalars,
    summary_metrics,
)
from lrlab.store.sqlite import StepRow, Store

__all__ = ["TensorBoard", "run_folder"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")


def _part(name: str) -> str:
    """A path component for a sweep or run id: unsafe characters as ``_``, never empty or a dot name."""
    cleaned = _UNSAFE.sub("_", name).strip(".")
    return cleaned or "_"


def run_folder(root: str | Path, record: RunRecord) -> Path:
    """Where ``record``'s event files go under ``root``."""
    return Path(root) / _part(record.sweep or "runs") / _part(record.id)


def _write_scalars(writer: SummaryWriter, series: Sequence[Scalar]) -> None:
    for scalar in series:
        for step, value in zip(scalar.steps.tolist(), scalar.values.tolist()):
            writer.add_scalar(scalar.name, value, step, new_style=True, double_precision=True)


def _write_summary(writer: SummaryWriter, run: RunExport) -> None:
    """The parts known at a run's end: instruments, findings, config text, hparams."""
    _write_scalars(writer, instrument_scalars(run.instruments))
    last = run.epochs[-1].step if run.epochs else 0
    writer.add_text("findings", findings_text(run.findings), last)
    writer.add_text("config", "```\n" + config_text(run.record) + "\n```", 0)
    metrics = summary_metrics(run)
    experiment, start, end = hparams(config_params(run.record), metrics)
    file_writer = writer._get_file_writer()
    for summary in (experiment, start, end):
        file_writer.add_summary(summary)
    for name, value in metrics.items():  # the hparams table reads its columns from these scalars
        writer.add_scalar(name, value, last, new_style=True, double_precision=True)


class TensorBoard:
    """Export runs to TensorBoard event files under ``log_dir``.

    Stored runs: ``TensorBoard(dir).write_run(run)`` (or ``lrlab runs export --to tensorboard
    DIR``). Live: pass it to ``lrlab.track(optimizer, export=[TensorBoard(dir)])``; the steps
    and epochs go out as the recorder writes them to the store, the instruments, findings and
    hparams when the run ends.
    """

    def __init__(self, log_dir: str | Path) -> None:
        self.log_dir = Path(log_dir)
        self._live: dict[str, SummaryWriter] = {}

    def __repr__(self) -> str:
        return f"TensorBoard({str(self.log_dir)!r})"

    def view_command(self) -> str:
        """The command that shows what was written."""
        return f"tensorboard --logdir {self.log_dir}"

    # -------------------------------------------------------- stored runs

    def write_run(self, run: RunExport) -> Path:
        """Write ``run`` whole into its folder, replacing an earlier export of it; returns the folder."""
        target = run_folder(self.log_dir, run.record)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
        try:
            writer = SummaryWriter(log_dir=str(partial))
            try:
                _write_scalars(writer, [*step_scalars(run.steps), *epoch_scalars(run.epochs)])
                _write_summary(writer, run)
            finally:
                writer.close()
            _swap(partial, target)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        return target

    # -------------------------------------------------------- live runs (the recorder's listener)

    def begin(self, record: RunRecord) -> None:
        """A run starts recording: its folder is opened (its steps are appended as they come)."""
        self._live[record.id] = SummaryWriter(log_dir=str(run_folder(self.log_dir, record)))

    def written(self, run_id: str, rows: Sequence[StepRow], epochs: Sequence[EpochRecord]) -> None:
        """Steps and epochs the recorder just wrote to the store."""
        writer = self._live[run_id]
        _write_scalars(writer, [*step_scalars(rows_to_series(run_id, rows)), *epoch_scalars(epochs)])
        writer.flush()

    def ended(self, store: Store, run_id: str) -> None:
        """The run ended: its instruments, findings and hparams, read from the store; folder closed."""
        writer = self._live.pop(run_id)
        try:
            _write_summary(writer, read_export(store, store.run(run_id), steps=False))
        finally:
            writer.close()


def _swap(partial: Path, target: Path) -> None:
    """Rename ``partial`` over ``target`` (a folder): the old export moved aside, then removed."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.old")
        target.rename(old)
    partial.rename(target)
    if old is not None:
        with contextlib.suppress(OSError):
            shutil.rmtree(old)
