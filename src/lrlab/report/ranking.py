"""The one scorer: how every "best" in lrlab is decided (pure functions of stored records).

The study's recommendation, the report's best-configuration finding and the CLI tables
all rank with :func:`rank`, so they always name the same winner and runner-up:

- the objective is the final **validation error** for classifiers, the final
  **validation loss** otherwise (language models, nats per token);
- a configuration is the runs that differ only in their seed (``RunConfig.key()``); it is
  scored by the mean over its seeds that finished (``done``) of the objective at the last
  epoch that reports it;
- ties on the objective (common for error rates on small validation sets) go to the lower
  mean validation loss, then to the order the runs were given in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lrlab.store.records import EpochRecord, RunConfig, RunRecord, RunStatus

__all__ = ["Ranked", "final_metric", "objective", "rank"]


def final_metric(records: Sequence[EpochRecord], metric: str = "val_loss") -> float | None:
    """The metric at the last epoch that reports a finite value (None when none does)."""
    for rec in reversed(records):
        value = getattr(rec, metric)
        if value is not None and math.isfinite(value):
            return float(value)
    return None


def objective(runs: Sequence[RunRecord], epochs: Mapping[str, Sequence[EpochRecord]]) -> str:
    """``"val_error"`` when any run reports a validation error (a classifier), else ``"val_loss"``."""
    for run in runs:
        if final_metric(epochs.get(run.id, ()), "val_error") is not None:
            return "val_error"
    return "val_loss"


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

    @property
    def seeds(self) -> int:
        return len(self.runs)

    @property
    def run_ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.runs)


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def rank(
    runs: Sequence[RunRecord],
    epochs: Mapping[str, Sequence[EpochRecord]],
    metric: str | None = None,
) -> list[Ranked]:
    """Every configuration with a finished run reporting ``metric`` (default: the
    :func:`objective`), best first. See the module docstring for the rules."""
    metric = metric or objective(runs, epochs)
    groups: dict[str, list[RunRecord]] = {}
    for run in runs:
        if run.status is RunStatus.DONE:
            groups.setdefault(run.configuration, []).append(run)
    ranked: list[tuple[float, float, int, Ranked]] = []
    for order, (key, members) in enumerate(groups.items()):
        scored = [(r, final_metric(epochs.get(r.id, ()), metric)) for r in members]
        scored = [(r, v) for r, v in scored if v is not None]
        if not scored:
            continue
        values = np.asarray([v for _, v in scored])
        kept = tuple(r for r, _ in scored)
        val_loss = _mean([final_metric(epochs.get(r.id, ()), "val_loss") for r in kept])
        entry = Ranked(
            key=key,
            config=kept[0].config,
            runs=kept,
            metric=metric,
            mean=float(values.mean()),
            sd=float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            low=float(values.min()),
            high=float(values.max()),
            val_loss=val_loss,
            accuracy=_mean([final_metric(epochs.get(r.id, ()), "val_accuracy") for r in kept]),
        )
        ranked.append((entry.mean, val_loss if val_loss is not None else math.inf, order, entry))
    ranked.sort(key=lambda item: item[:3])
    return [entry for *_, entry in ranked]
