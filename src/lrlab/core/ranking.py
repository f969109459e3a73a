"""The one scorer: how every "best" in lrlab is decided (pure functions of stored records).

The study's recommendation, the report's best-configuration finding and the CLI tables
all rank with :func:`rank`, so they always name the same winner and runner-up:

- the objective is the metric the runs' task declared (``RunRecord.objective``: the
  final **validation error** for classifiers, the final **validation loss** for language
  models and regression, or a custom task's own metric and direction); runs stored
  before tasks declared one fall back to validation error when any run reports it, else
  validation loss;
- a configuration is the runs that differ only in their seed (``RunConfig.key()``); it is
  scored by the mean over its seeds that finished (``done``) of the objective at the last
  epoch that reports it;
- a configuration with a seed that diverged (among the runs given) ranks after every
  configuration without one, whatever the mean of its other seeds: advice that blows up on
  one seed in three is not the best advice;
- ties on the objective (common for error rates on small validation sets) go to the lower
  mean validation loss, then to the order the runs were given in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lrlab.core.records import EpochRecord, Objective, RunConfig, RunRecord, RunStatus

__all__ = ["Ranked", "declared_objective", "final_metric", "higher_is_better", "objective", "rank"]


def final_metric(records: Sequence[EpochRecord], metric: str = "val_loss") -> float | None:
    """The metric at the last epoch that reports a finite value (None when none does)."""
    for rec in reversed(records):
        value = rec.value(metric)
        if value is not None and math.isfinite(value):
            return float(value)
    return None


def declared_objective(runs: Sequence[RunRecord]) -> Objective | None:
    """The objective the runs' task declared (the first run that has one), else None."""
    for run in runs:
        declared = run.objective
        if declared is not None:
            return declared
    return None


def objective(runs: Sequence[RunRecord], epochs: Mapping[str, Sequence[EpochRecord]]) -> str:
    """The metric every configuration is judged on: the task's declared objective; for
    runs without one, ``"val_error"`` when any run reports a validation error (a
    classifier), else ``"val_loss"``."""
    declared = declared_objective(runs)
    if declared is not None:
        return declared.metric
    for run in runs:
        if final_metric(epochs.get(run.id, ()), "val_error") is not None:
            return "val_error"
    return "val_loss"


def higher_is_better(runs: Sequence[RunRecord], metric: str) -> bool:
    """Whether a larger ``metric`` is better: as the task declared it, else by name
    (accuracy and R² go up; losses and errors go down)."""
    declared = declared_objective(runs)
    if declared is not None and declared.metric == metric:
        return declared.higher_is_better
    return metric.endswith(("accuracy", "_r2"))


@dataclass(frozen=True)
class Ranked:
    """A configuration's score: the mean of ``metric`` over its finished seeds.

    ``sd`` is the sample standard deviation over seeds (0 for one seed); ``low``/``high``
    the smallest and largest seed's value.
    """

    key: str
    config: RunConfig
    runs: tuple[RunRecord, ...]
    metric: str
    mean: float
    sd: float
    low: float
    high: float
    val_loss: float | None
    accuracy: float | None
    higher_is_better: bool = False
    diverged: int = 0  # seeds of this configuration, among the runs given, that diverged

    @property
    def seeds(self) -> int:
        return len(self.runs)

    @property
    def run_ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.runs)


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def _entry(
    key: str,
    members: Sequence[RunRecord],
    epochs: Mapping[str, Sequence[EpochRecord]],
    metric: str,
    sign: float,
    diverged: int,
) -> Ranked | None:
    """One configuration's finished seeds that report ``metric``, summed up (None: none do)."""
    scored = [(r, final_metric(epochs.get(r.id, ()), metric)) for r in members]
    scored = [(r, v) for r, v in scored if v is not None]
    if not scored:
        return None
    values = np.asarray([v for _, v in scored])
    kept = tuple(r for r, _ in scored)
    return Ranked(
        key=key,
        config=kept[0].config,
        runs=kept,
        metric=metric,
        mean=float(values.mean()),
        sd=float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        low=float(values.min()),
        high=float(values.max()),
        val_loss=_mean([final_metric(epochs.get(r.id, ()), "val_loss") for r in kept]),
        accuracy=_mean([final_metric(epochs.get(r.id, ()), "val_accuracy") for r in kept]),
        higher_is_better=sign < 0,
        diverged=diverged,
    )


def rank(
    runs: Sequence[RunRecord],
    epochs: Mapping[str, Sequence[EpochRecord]],
    metric: str | None = None,
) -> list[Ranked]:
    """Every configuration with a finished run reporting ``metric`` (default: the
    :func:`objective`), best first. See the module docstring for the rules."""
    metric = metric or objective(runs, epochs)
    sign = -1.0 if higher_is_better(runs, metric) else 1.0
    groups: dict[str, list[RunRecord]] = {}
    diverged: dict[str, int] = {}
    for run in runs:
        if run.status is RunStatus.DONE:
            groups.setdefault(run.configuration, []).append(run)
        elif run.status is RunStatus.DIVERGED:
            diverged[run.configuration] = diverged.get(run.configuration, 0) + 1
    ranked: list[tuple[bool, float, float, int, Ranked]] = []
    for order, (key, members) in enumerate(groups.items()):
        entry = _entry(key, members, epochs, metric, sign, diverged.get(key, 0))
        if entry is not None:
            val_loss = entry.val_loss if entry.val_loss is not None else math.inf
            ranked.append((entry.diverged > 0, sign * entry.mean, val_loss, order, entry))
    ranked.sort(key=lambda item: item[:4])
    return [entry for *_, entry in ranked]
