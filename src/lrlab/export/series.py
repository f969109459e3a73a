"""A stored run as the exporters see it: named scalar series, parameters and text.

Both exporters (TensorBoard, MLflow) write the same names, so a run reads the same in
either tool: ``lr/group<i>`` (the LR of every param group), ``momentum`` (or Adam's beta1;
left out when the optimizer has none), ``loss`` and ``grad_norm`` per optimizer step;
``epoch/<metric>`` (``train_loss``, ``val_loss``, ``val_error``, ``val_accuracy`` and every
named metric of the task, such as ``val_mae``) at the step each epoch ended; and
``instruments/<name>`` for every instrument series the run recorded (``update_ratio/group0``,
``sharpness``, ...). The findings and the config are text; the config is also flattened to
parameters (``schedule`` as its spec string).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lrlab.core.diagnostics import Finding
from lrlab.core.records import EpochRecord, RunRecord, StepSeries
from lrlab.store.instruments import InstrumentSeries
from lrlab.store.sqlite import StepRow, Store

__all__ = [
    "RunExport",
    "Scalar",
    "config_params",
    "findings_text",
    "load_exports",
    "read_export",
    "rows_to_series",
    "scalars",
    "summary_metrics",
]

EPOCH_COLUMNS = ("train_loss", "val_loss", "val_error", "val_accuracy")


@dataclass(frozen=True)
class Scalar:
    """One named series: the step of every value, and the values (NaN and inf kept)."""

    name: str
    steps: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class RunExport:
    """Everything an exporter writes about one stored run, read from the store once."""

    record: RunRecord
    steps: StepSeries
    epochs: list[EpochRecord]
    instruments: Mapping[str, InstrumentSeries] = field(default_factory=dict)
    findings: Sequence[Finding] = ()  # the instruments' findings, in the order they were made

    @property
    def run_id(self) -> str:
        return self.record.id


def load_exports(
    store: Store, sweep: str | None = None, ids: Sequence[str] | None = None
) -> Iterator[RunExport]:
    """The runs of ``sweep`` (a study's across its sweeps), or ``ids``, or every run, one at a time."""
    if ids is not None:
        runs = store.runs(ids=list(ids))
    elif sweep is not None:
        runs = store.sweep_runs(sweep)
    else:
        runs = store.runs()
    for record in runs:
        yield read_export(store, record)


def read_export(store: Store, record: RunRecord, *, steps: bool = True) -> RunExport:
    """One run's steps (unless ``steps=False``: a live exporter has them already), epochs,
    instruments and findings from ``store``."""
    return RunExport(
        record=record,
        steps=store.steps(record.id) if steps else StepSeries.empty(record.id),
        epochs=store.epochs(record.id),
        instruments=store.instruments(record.id),
        findings=store.findings(record.id),
    )


def rows_to_series(run_id: str, rows: Sequence[StepRow]) -> StepSeries:
    """Step rows as the recorder writes them (step, epoch, LRs, momentum, loss, grad norm) as a
    :class:`StepSeries` (momentum ``None`` as NaN)."""
    if not rows:
        return StepSeries.empty(run_id)
    width = max(len(row[2]) for row in rows)
    lrs = np.full((len(rows), width), np.nan)
    for i, row in enumerate(rows):
        lrs[i, : len(row[2])] = row[2]
    return StepSeries(
        run_id,
        np.array([row[0] for row in rows], dtype=np.int64),
        np.array([row[1] for row in rows], dtype=np.int64),
        lrs[:, 0].copy(),
        lrs,
        np.array([np.nan if row[3] is None else row[3] for row in rows], dtype=float),
        np.array([row[4] for row in rows], dtype=float),
        np.array([row[5] for row in rows], dtype=float),
    )


def step_scalars(steps: StepSeries) -> list[Scalar]:
    """The per-step series: LR per group, momentum (when the optimizer has one), loss, grad norm."""
    at = np.asarray(steps.step, dtype=np.int64)
    out = [Scalar(f"lr/group{i}", at, np.asarray(steps.lrs[:, i], dtype=float)) for i in range(steps.groups)]
    momentum = np.asarray(steps.momentum, dtype=float)
    if len(momentum) and not np.all(np.isnan(momentum)):
        out.append(Scalar("momentum", at, momentum))
    out.append(Scalar("loss", at, np.asarray(steps.loss, dtype=float)))
    out.append(Scalar("grad_norm", at, np.asarray(steps.grad_norm, dtype=float)))
    return out


def epoch_scalars(epochs: Sequence[EpochRecord]) -> list[Scalar]:
    """``epoch/<metric>`` for every metric some epoch recorded, at the step the epoch ended."""
    names = [c for c in EPOCH_COLUMNS if any(e.value(c) is not None for e in epochs)]
    names += sorted({k for e in epochs for k, v in e.metrics.items() if v is not None})
    out = []
    for name in names:
        kept = [e for e in epochs if e.value(name) is not None]
        steps = np.array([e.step for e in kept], dtype=np.int64)
        out.append(Scalar(f"epoch/{name}", steps, np.array([float(e.value(name)) for e in kept])))  # type: ignore[arg-type]
    return out


def instrument_scalars(instruments: Mapping[str, InstrumentSeries]) -> list[Scalar]:
    """``instruments/<name>`` for every stored instrument series."""
    return [
        Scalar(
            f"instruments/{name}",
            np.asarray(series.steps, dtype=np.int64),
            np.asarray(series.values, dtype=float),
        )
        for name, series in sorted(instruments.items())
    ]


def scalars(run: RunExport) -> list[Scalar]:
    """Every scalar series of ``run``, in the order they are written."""
    return [*step_scalars(run.steps), *epoch_scalars(run.epochs), *instrument_scalars(run.instruments)]


def config_params(record: RunRecord) -> dict[str, str | float | int | bool]:
    """The run's config flattened to parameters (nested keys dotted; ``None`` as ``"none"``),
    with its sweep, seed and status, and the objective its task declared (``objective``, the
    metric, and ``objective_higher_is_better``): what TensorBoard's hparams and MLflow's
    params hold."""
    flat: dict[str, str | float | int | bool] = {}

    def visit(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, sub in value.items():
                visit(f"{prefix}.{key}" if prefix else str(key), sub)
        elif value is None:
            flat[prefix] = "none"
        elif isinstance(value, (bool, int, float)):
            flat[prefix] = value
        else:
            flat[prefix] = value if isinstance(value, str) else json.dumps(value)

    visit("", record.config.to_dict())
    flat.update(sweep=record.sweep or "none", run_seed=record.seed, status=record.status.value)
    objective = record.objective
    if objective is not None:
        flat.update(objective=objective.metric, objective_higher_is_better=objective.higher_is_better)
    return flat


def summary_metrics(run: RunExport) -> dict[str, float]:
    """The last epoch's finite metrics, named ``final/<metric>``: the hparams table's columns."""
    if not run.epochs:
        return {}
    last = run.epochs[-1]
    names = [*EPOCH_COLUMNS, *sorted(last.metrics)]
    values = {name: last.value(name) for name in names}
    return {f"final/{k}": float(v) for k, v in values.items() if v is not None and math.isfinite(float(v))}


def findings_text(findings: Sequence[Finding]) -> str:
    """One line per finding (``step 120 [spike, warning] message {evidence}``), or a line
    saying there were none."""
    if not findings:
        return "no findings"
    lines = []
    for finding in findings:
        where = f"step {finding.step} " if finding.step is not None else ""
        evidence = f" {json.dumps(finding.evidence, sort_keys=True, default=str)}" if finding.evidence else ""
        lines.append(f"{where}[{finding.kind}, {finding.severity}] {finding.message}{evidence}")
    return "\n".join(lines)


def config_text(record: RunRecord) -> str:
    """The run's resolved config as indented JSON, for a text panel."""
    return json.dumps(record.config.to_dict(), indent=2, sort_keys=True)
