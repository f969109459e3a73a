"""Everything a report draws, read once from the store (or built from records directly).

:func:`load_report_data` reads runs, epoch metrics, step series and finder results;
:func:`build_report_data` is the pure part (records in, :class:`ReportData` out): it
groups runs by configuration, runs the diagnostics on the full step series, then keeps
only a downsampled copy of each series (spikes and the divergence point preserved).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from lrlab.core.diagnostics import Finding, diagnose, ranked_configurations
from lrlab.core.grouping import Configuration, group_runs, is_diverged, shared_axes
from lrlab.core.ranking import Ranked
from lrlab.core.records import EpochRecord, FinderRecord, RunRecord, StepSeries
from lrlab.core.verdict import StudyVerdict
from lrlab.plot.downsample import DEFAULT_MAX_POINTS, downsample_indices, sorted_unique
from lrlab.report.instruments import load_instruments
from lrlab.report.looks import LegendNames, Look, compute_looks, legend_names

if TYPE_CHECKING:
    from lrlab.store.sqlite import InstrumentSeries, Store


@dataclass
class ReportData:
    """Records grouped for drawing, the diagnostics, and downsampled step series.

    The ranking of its configurations (the one scorer's), their legend names and how each
    is drawn are computed once per report, on first use (:attr:`ranking`, :attr:`names`,
    :attr:`looks`), and shared by the figures and the page.
    """

    title: str
    runs: list[RunRecord]
    configs: list[Configuration]
    epochs: dict[str, list[EpochRecord]]
    steps: dict[str, StepSeries]  # downsampled
    finders: list[FinderRecord]
    findings: list[Finding]
    steps_per_epoch: dict[str, float]  # run id -> optimizer steps per epoch, where known
    total_steps: dict[str, int] = field(default_factory=dict)  # recorded steps per run (before downsampling)
    planned_steps: dict[str, int] = field(default_factory=dict)  # steps per run its config asked for
    shared: dict[str, str] = field(default_factory=dict)
    study: StudyVerdict | None = None  # the report of a study: its stored verdict
    part_of: StudyVerdict | None = None  # the report of one sweep of a study: that study's verdict
    instruments: dict[str, dict[str, InstrumentSeries]] = field(default_factory=dict)  # drawn runs' series

    @property
    def is_classification(self) -> bool:
        return any(r.val_error is not None for recs in self.epochs.values() for r in recs)

    @cached_property
    def ranking(self) -> list[tuple[Configuration, Ranked]]:
        """The configurations that finished, best first, by the one scorer
        (:func:`lrlab.core.ranking.rank` on the runs' objective)."""
        return ranked_configurations(self.configs, self.epochs)

    @cached_property
    def names(self) -> LegendNames:
        """What the legend names are made of (:func:`lrlab.report.looks.legend_names`)."""
        return legend_names(self.configs)

    @cached_property
    def looks(self) -> dict[str, Look]:
        """Configuration key -> how it is drawn in every figure (:func:`lrlab.report.looks.compute_looks`)."""
        return compute_looks(self)


def _steps_per_epoch(
    runs: Sequence[RunRecord], epochs: Mapping[str, Sequence[EpochRecord]]
) -> dict[str, float]:
    """Steps per epoch for each run: from its own epoch records, else from a run with the
    same task and batch size (a run that diverged in epoch 1 has none of its own)."""
    own: dict[str, float] = {}
    for run in runs:
        for rec in epochs.get(run.id, ()):
            if rec.epoch > 0 and rec.step > 0:
                own[run.id] = rec.step / rec.epoch
                break
    by_shape: dict[tuple[str, str], float] = {}
    for run in runs:
        if run.id in own:
            by_shape.setdefault(_shape(run), own[run.id])
    out = dict(own)
    for run in runs:
        if run.id not in out and _shape(run) in by_shape:
            out[run.id] = by_shape[_shape(run)]
    return out


def _shape(run: RunRecord) -> tuple[str, int | None]:
    return (run.config.task, run.config.batch_size)


def _planned_steps(runs: Sequence[RunRecord], spe: Mapping[str, float]) -> dict[str, int]:
    out = {}
    for run in runs:
        epochs = run.config.epochs
        if run.id in spe and epochs:
            out[run.id] = max(1, round(spe[run.id] * epochs))
    return out


def divergence_index(series: StepSeries, run: RunRecord) -> int | None:
    """Index into ``series`` of the divergence point: the recorded diverged step, else the
    first non-finite loss of a diverged run."""
    if not len(series):
        return None
    if run.diverged_step is not None:
        i = int(np.searchsorted(series.step, run.diverged_step))
        return min(i, len(series) - 1)
    if is_diverged(run):
        bad = ~np.isfinite(series.loss)
        return int(np.argmax(bad)) if bad.any() else len(series) - 1
    return None


def downsample_series(
    series: StepSeries, max_points: int = DEFAULT_MAX_POINTS, keep: Sequence[int] = (), with_lr: bool = False
) -> StepSeries:
    """A copy of ``series`` at the union of the indices kept for loss and gradient norm
    (and LR and momentum when ``with_lr``), each by :func:`downsample_indices`."""
    n = len(series)
    if n <= max_points:
        return series
    columns = [series.loss, series.grad_norm]
    if with_lr:
        columns += [series.lr, series.momentum]
    keep = [int(k) for k in keep if 0 <= k < n]
    idx = sorted_unique(np.concatenate([downsample_indices(c, max_points, keep) for c in columns]))
    return StepSeries(
        run_id=series.run_id,
        step=series.step[idx],
        epoch=series.epoch[idx],
        lr=series.lr[idx],
        lrs=series.lrs[idx],
        momentum=series.momentum[idx],
        loss=series.loss[idx],
        grad_norm=series.grad_norm[idx],
    )


def points_per_run(runs: int) -> int:
    """Default points per step column: 800 for up to 50 runs, fewer beyond (at least 200).

    >>> points_per_run(10), points_per_run(100), points_per_run(1000)
    (800, 400, 200)
    """
    return max(200, min(DEFAULT_MAX_POINTS, 40_000 // max(1, runs)))


def build_report_data(
    runs: Sequence[RunRecord],
    epochs: Mapping[str, Sequence[EpochRecord]],
    steps: Mapping[str, StepSeries],
    finders: Sequence[FinderRecord] = (),
    *,
    title: str = "lrlab report",
    max_points: int | None = None,
) -> ReportData:
    """Group, diagnose and downsample (pure: records in, ReportData out).

    ``max_points`` bounds the points kept per step column of a run; by default it shrinks
    from 800 towards 200 as runs grow in number (:func:`points_per_run`), which keeps a
    100-run page well under 10 MB.
    """
    if not runs:
        raise ValueError("runs must not be empty")
    max_points = max_points or points_per_run(len(runs))
    configs = group_runs(runs)
    epochs = {r.id: sorted(epochs.get(r.id, ()), key=lambda e: e.epoch) for r in runs}
    spe = _steps_per_epoch(runs, epochs)
    planned = _planned_steps(runs, spe)
    findings = diagnose(configs, epochs, steps, planned)
    representatives = {c.runs[0].id for c in configs}
    small: dict[str, StepSeries] = {}
    for run in runs:
        series = steps.get(run.id)
        if series is None or not len(series):
            continue
        div = divergence_index(series, run)
        small[run.id] = downsample_series(
            series, max_points, () if div is None else (div,), with_lr=run.id in representatives
        )
    tasks = sorted({r.config.task for r in runs})
    used = [f for f in finders if not tasks or f.task in tasks]
    return ReportData(
        title=title,
        runs=list(runs),
        configs=configs,
        epochs=epochs,
        steps=small,
        finders=used,
        findings=findings,
        steps_per_epoch=spe,
        total_steps={rid: len(s) for rid, s in steps.items()},
        planned_steps=planned,
        shared=shared_axes([c.axes for c in configs]),
    )


READ_BATCH = 50  # runs whose steps are read in one call (progress is reported after each)


def load_report_data(
    store: Store,
    *,
    sweep: str | None = None,
    run_ids: Sequence[str] | None = None,
    max_points: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ReportData:
    """Read a sweep (or the given runs, or every run) from ``store`` and build the report data.

    Raises ``ValueError`` when nothing matches (no such sweep, unknown run ids, empty store).
    """
    if sweep is not None and run_ids:
        raise ValueError("give either sweep or run_ids, not both")
    study = None
    if sweep is not None:
        runs, title = _sweep_runs(store, sweep)
        record = store.study_record(sweep)
        study = None if record is None else StudyVerdict.from_dict(record)  # parsed once, here
    elif run_ids:
        runs, title = _chosen_runs(store, run_ids)
    else:
        runs, title = _every_run(store)
    epochs = store.epochs_for([r.id for r in runs])
    steps: dict[str, StepSeries] = {}
    ids = [r.id for r in runs]
    for start in range(0, len(ids), READ_BATCH):
        steps.update(store.steps_for(ids[start : start + READ_BATCH]))
        if progress is not None:
            progress(min(start + READ_BATCH, len(ids)), len(ids))
    finders = store.finder_results()
    if sweep is not None:
        finders = [f for f in finders if f.sweep in (None, sweep)]
    data = build_report_data(runs, epochs, steps, finders, title=title, max_points=max_points)
    data.study = study
    load_instruments(store, data)  # the instruments' series of the best runs, every run's findings
    if sweep is not None and study is None:
        data.part_of = _parent_study(store, {r.id for r in runs})
    return data


def _sweep_runs(store: Store, sweep: str) -> tuple[list[RunRecord], str]:
    runs = store.sweep_runs(sweep)  # a study: its runs across its sweeps
    if not runs:
        known = store.sweeps()
        hint = f"; sweeps: {', '.join(known[:10])}" if known else "; the store has no sweeps"
        raise ValueError(f"sweep {sweep!r} has no runs in {store.path}{hint}")
    return runs, f"Sweep {sweep}"


def _chosen_runs(store: Store, run_ids: Sequence[str]) -> tuple[list[RunRecord], str]:
    wanted = list(dict.fromkeys(run_ids))
    runs = store.runs(ids=wanted)
    found = {r.id for r in runs}
    missing = [i for i in wanted if i not in found]
    if missing:
        runs += _by_prefix(store, missing)
    return runs, f"{len(runs)} runs"


def _every_run(store: Store) -> tuple[list[RunRecord], str]:
    runs = store.runs()
    if not runs:
        raise ValueError(f"the store {store.path} has no runs")
    sweeps = sorted({r.sweep for r in runs if r.sweep})
    return runs, f"Sweep {sweeps[0]}" if len(sweeps) == 1 else f"All {len(runs)} runs"


def _parent_study(store: Store, ids: set[str]) -> StudyVerdict | None:
    """The verdict of the study whose runs include these (a study's sweep reported alone)."""
    for name in store.sweeps():
        record = store.study_record(name)
        if record is None:
            continue
        verdict = StudyVerdict.from_dict(record)
        if ids & set(verdict.compute.run_ids):
            return verdict
    return None


def _by_prefix(store: Store, prefixes: Sequence[str]) -> list[RunRecord]:
    everything = store.runs()
    out = []
    for prefix in prefixes:
        matches = [r for r in everything if r.id.startswith(prefix)]
        if len(matches) != 1:
            why = "no run matches it" if not matches else f"{len(matches)} runs match it"
            raise ValueError(f"run id {prefix!r}: {why} in {store.path}")
        out.append(matches[0])
    return out
