"""Configurations whose train-validation gap keeps widening to the end of training."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lrlab.core.diagnostics._common import Finding, display
from lrlab.core.grouping import Configuration, epoch_stats
from lrlab.core.records import EpochRecord


@dataclass(frozen=True)
class GapTrend:
    """Where the train-validation gap starts widening for good."""

    onset_epoch: int
    last_epoch: int
    gap_at_onset: float
    gap_at_end: float


def widening_gap(
    epochs: np.ndarray,
    gap: np.ndarray,
    *,
    min_epochs: int = 3,
    min_widening: float = 0.01,
    val_loss: np.ndarray | None = None,
    min_relative: float = 0.05,
) -> GapTrend | None:
    """The trailing stretch over which ``gap`` (val - train) rises epoch after epoch.

    Only the part of the stretch where the gap is positive counts: early in training the
    epoch-averaged training loss is above the validation loss measured after the epoch,
    and a gap climbing from negative towards zero is learning, not overfitting. Flagged
    when the positive gap rises at least ``min_epochs`` times in a row up to the last
    epoch, by ``min_widening`` in total (loss units), and (when ``val_loss`` is given)
    ends at ``min_relative`` or more of the final validation loss.

    >>> widening_gap(np.arange(1, 8), np.array([0.3, 0.1, 0.05, 0.08, 0.12, 0.2, 0.3]))
    GapTrend(onset_epoch=3, last_epoch=7, gap_at_onset=0.05, gap_at_end=0.3)
    >>> widening_gap(np.arange(1, 8), np.array([-0.6, -0.4, -0.2, -0.1, -0.05, 0.01, 0.02])) is None
    True
    """
    ok = np.isfinite(gap)
    epochs, gap = np.asarray(epochs)[ok], np.asarray(gap, dtype=np.float64)[ok]
    if len(gap) < min_epochs + 1:
        return None
    onset = len(gap) - 1
    while onset > 0 and gap[onset] > gap[onset - 1] and gap[onset - 1] > 0:
        onset -= 1
    rises = len(gap) - 1 - onset
    if rises < min_epochs or gap[-1] - gap[onset] < min_widening:
        return None
    if val_loss is not None:
        final_val = np.asarray(val_loss, dtype=np.float64)[ok][-1]
        if np.isfinite(final_val) and gap[-1] < min_relative * abs(final_val):
            return None
    return GapTrend(int(epochs[onset]), int(epochs[-1]), float(gap[onset]), float(gap[-1]))


def gap_series(
    cfg: Configuration, epochs: Mapping[str, Sequence[EpochRecord]], with_val: bool = False
) -> Any:
    """Mean validation loss minus mean training loss, per epoch, over the configuration's
    seeds: ``(epochs, gap)``, and the mean validation loss too when ``with_val``."""
    per_run = [epochs.get(r.id, ()) for r in cfg.runs]
    train, val = epoch_stats(per_run, "train_loss"), epoch_stats(per_run, "val_loss")
    common, ti, vi = np.intersect1d(train.epoch, val.epoch, return_indices=True)
    gap = val.mean[vi] - train.mean[ti]
    return (common, gap, val.mean[vi]) if with_val else (common, gap)


def overfitting(
    configs: Sequence[Configuration], epochs: Mapping[str, Sequence[EpochRecord]], **thresholds: float
) -> list[Finding]:
    """Configurations whose train-validation gap keeps widening to the end of training."""
    findings = []
    for cfg in configs:
        x, gap, val_mean = gap_series(cfg, epochs, with_val=True)
        trend = widening_gap(x, gap, val_loss=val_mean, **thresholds)  # type: ignore[arg-type]
        if trend is None:
            continue
        per_run = [epochs.get(r.id, ()) for r in cfg.runs]
        val = epoch_stats(per_run, "val_loss")
        best_i = int(np.argmin(val.mean))
        best_epoch = int(val.epoch[best_i])
        message = (
            f"{cfg.label} overfits: the gap between validation and training loss widens every epoch "
            f"from epoch {trend.onset_epoch} ({display(trend.gap_at_onset)}) to epoch {trend.last_epoch} "
            f"({display(trend.gap_at_end)}); "
        )
        if best_epoch < trend.last_epoch:
            message += (
                f"validation loss was lowest at epoch {best_epoch} ({display(float(val.mean[best_i]))}). "
                "Regularise (dropout, weight decay) or stop earlier."
            )
        else:  # still improving at the end: stopping earlier would not help
            message += (
                f"validation loss still fell to its lowest in the last epoch ({best_epoch}, "
                f"{display(float(val.mean[best_i]))}), so stopping earlier would not help; regularise "
                "(dropout, weight decay) before training longer."
            )
        numbers = {
            "onset_epoch": trend.onset_epoch,
            "last_epoch": trend.last_epoch,
            "gap_at_onset": trend.gap_at_onset,
            "gap_at_end": trend.gap_at_end,
            "best_val_epoch": best_epoch,
            "best_val_loss": float(val.mean[best_i]),
        }
        findings.append(
            Finding("overfitting", "warning", message, numbers, (cfg.label,), tuple(r.id for r in cfg.runs))
        )
    return findings
