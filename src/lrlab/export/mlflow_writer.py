"""Runs as MLflow runs, written through ``mlflow.tracking.MlflowClient``.

Each lrlab run is one MLflow run in the experiment named after its sweep (``lrlab`` without
one), tagged ``lrlab_run_id`` and ``lrlab_status``: the config as params, every series of
:mod:`lrlab.export.series` as metrics at their steps, the findings and the config as text
artifacts (``findings.txt``, ``config.json``). Exporting a run again replaces the MLflow run
made from it (the old one is deleted, MLflow's soft delete), so the experiment never holds
two copies. MLflow keeps NaN; it stores an infinite value as the largest float of its sign.

``uri`` is a tracking URI (``sqlite:///path/mlflow.db``, ``http://host:5000``) or a folder,
which becomes ``sqlite:///FOLDER/mlflow.db`` with the artifacts in ``FOLDER/artifacts``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from lrlab.core.records import EpochRecord, RunRecord, RunStatus
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

__all__ = ["MLflow", "tracking_uri"]

BATCH = 1000  # MLflow's limit of metrics per log_batch call
PARAM_CHARS = 6000  # MLflow's limit on a param value (the whole config is in config.json)
_END_STATUS = {RunStatus.DONE: "FINISHED", RunStatus.DIVERGED: "FINISHED", RunStatus.FAILED: "FAILED"}
log = logging.getLogger("lrlab.export")


def tracking_uri(where: str | Path) -> tuple[str, str | None]:
    """``(tracking URI, artifact folder or None)`` for a URI or a folder."""
    text = str(where)
    if "://" in text or text.startswith("sqlite:"):
        return text, None
    folder = Path(text).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}", (folder / "artifacts").as_uri()


def _param(value: Any) -> str:
    text = str(value)
    return text if len(text) <= PARAM_CHARS else text[: PARAM_CHARS - 1] + "\u2026"


def _stamp(record: RunRecord) -> int:
    """A stored run's metrics are stamped with the time it started (milliseconds)."""
    return int((record.started_at or record.created_at or 0) * 1000)


class MLflow:
    """Export runs to the MLflow tracking store at ``uri`` (see the module docstring).

    Stored runs: ``MLflow(uri).write_run(run)`` (or ``lrlab runs export --to mlflow DIR``).
    Live: ``lrlab.track(optimizer, export=[MLflow(uri)])``.
    """

    def __init__(self, uri: str | Path, experiment: str | None = None) -> None:
        self.uri, self._artifacts = tracking_uri(uri)
        self.experiment = experiment
        self._client: MlflowClient | None = None
        self._live: dict[str, str] = {}  # lrlab run id -> MLflow run id
        self._experiments: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"MLflow({self.uri!r})"

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    def experiment_id(self, record: RunRecord) -> str:
        """The experiment of ``record`` (its sweep's, or the one given), made if missing."""
        name = self.experiment or record.sweep or "lrlab"
        if name not in self._experiments:
            found = self.client.get_experiment_by_name(name)
            if found is not None:
                self._experiments[name] = found.experiment_id
            else:
                location = None if self._artifacts is None else f"{self._artifacts}/{quote(name, safe='')}"
                self._experiments[name] = self.client.create_experiment(name, artifact_location=location)
        return self._experiments[name]

    def runs_of(self, run_id: str, experiment_id: str) -> list[str]:
        """The MLflow runs made from lrlab run ``run_id`` in the experiment."""
        found = self.client.search_runs([experiment_id], filter_string=f"tags.`lrlab_run_id` = '{run_id}'")
        return [r.info.run_id for r in found]

    def view_command(self) -> str:
        """The command that shows what was written."""
        return f"mlflow ui --backend-store-uri {self.uri}"

    # -------------------------------------------------------- stored runs

    def write_run(self, run: RunExport) -> str:
        """Write ``run`` whole, replacing an earlier export of it; returns the MLflow run id."""
        experiment = self.experiment_id(run.record)
        for old in self.runs_of(run.run_id, experiment):
            self.client.delete_run(old)
        mlflow_id = self._create(run.record, experiment)
        self._log(mlflow_id, [*step_scalars(run.steps), *epoch_scalars(run.epochs)], _stamp(run.record))
        self._finish(mlflow_id, run)
        return mlflow_id

    def _create(self, record: RunRecord, experiment: str) -> str:
        tags = {
            "lrlab_run_id": record.id,
            "lrlab_status": record.status.value,
            "lrlab_sweep": record.sweep or "",
        }
        start = None if record.started_at is None else int(record.started_at * 1000)
        created = self.client.create_run(experiment, start_time=start, tags=tags, run_name=record.id[:40])
        mlflow_id = created.info.run_id
        params = [Param(k, _param(v)) for k, v in config_params(record).items()]
        for first in range(0, len(params), 100):  # MLflow's limit of params per call
            self.client.log_batch(mlflow_id, params=params[first : first + 100])
        return mlflow_id

    def _log(self, mlflow_id: str, series: Sequence[Scalar], stamp: int) -> None:
        metrics = [
            Metric(s.name, value, stamp, step)
            for s in series
            for step, value in zip(s.steps.tolist(), s.values.tolist())
        ]
        for first in range(0, len(metrics), BATCH):
            self.client.log_batch(mlflow_id, metrics=metrics[first : first + BATCH])

    def _finish(self, mlflow_id: str, run: RunExport) -> None:
        """Instruments, final metrics, findings and config text; the run's status."""
        self._log(mlflow_id, instrument_scalars(run.instruments), _stamp(run.record))
        last = run.epochs[-1].step if run.epochs else 0
        stamp = int((run.record.finished_at or run.record.started_at or 0) * 1000)
        finals = [Metric(k, v, stamp, last) for k, v in summary_metrics(run).items()]
        self.client.log_batch(
            mlflow_id, metrics=finals, tags=[RunTag("lrlab_status", run.record.status.value)]
        )
        self.client.log_text(mlflow_id, findings_text(run.findings) + "\n", "findings.txt")
        self.client.log_text(mlflow_id, config_text(run.record) + "\n", "config.json")
        status = _END_STATUS.get(run.record.status)
        if status is not None:
            end = None if run.record.finished_at is None else int(run.record.finished_at * 1000)
            self.client.set_terminated(mlflow_id, status=status, end_time=end)

    # -------------------------------------------------------- live runs (the recorder's listener)

    def begin(self, record: RunRecord) -> None:
        """A run starts recording: its MLflow run is made (an earlier one of the same id replaced)."""
        experiment = self.experiment_id(record)
        for old in self.runs_of(record.id, experiment):
            self.client.delete_run(old)
        self._live[record.id] = self._create(record, experiment)

    def written(self, run_id: str, rows: Sequence[StepRow], epochs: Sequence[EpochRecord]) -> None:
        """Steps and epochs the recorder just wrote to the store."""
        series = [*step_scalars(rows_to_series(run_id, rows)), *epoch_scalars(epochs)]
        self._log(self._live[run_id], series, int(time.time() * 1000))  # live: stamped when written

    def ended(self, store: Store, run_id: str) -> None:
        """The run ended: its instruments, findings, final metrics and status, read from the store."""
        self._finish(self._live.pop(run_id), read_export(store, store.run(run_id), steps=False))
