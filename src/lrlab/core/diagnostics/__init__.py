"""Diagnostics in words, each with the numbers behind it: pure functions on records.

Every check returns :class:`Finding` values; nothing here reads the store, draws or
prints. The thresholds are parameters with the defaults documented in ``docs/report.md``.

One module per concern, each private, every public name here: what the checks share
(``_common``: the finding, a family, its peak LR, the ranked configurations), the best
configuration (``_best``), divergence (``_divergence``), stuck, slow and unstable runs
(``_stuck``), overfitting (``_overfitting``), the schedule's decay (``_decay``) and one
sentence per kind (``_words``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from lrlab.core.diagnostics._best import best_configuration
from lrlab.core.diagnostics._common import Finding, family_key, peak_lr, ranked_configurations
from lrlab.core.diagnostics._decay import (
    DECAY_RULE,
    DECAY_TOLERANCE,
    NON_DECAYING,
    Decay,
    lr_decay,
    schedule_decay,
)
from lrlab.core.diagnostics._divergence import divergence
from lrlab.core.diagnostics._overfitting import GapTrend, gap_series, overfitting, widening_gap
from lrlab.core.diagnostics._stuck import StuckCheck, stuck_check, stuck_runs
from lrlab.core.diagnostics._words import describe_runs, family_in_words, kind_summary
from lrlab.core.grouping import Configuration
from lrlab.core.records import EpochRecord, RunStatus, StepSeries

__all__ = [
    "DECAY_RULE",
    "DECAY_TOLERANCE",
    "NON_DECAYING",
    "Decay",
    "Finding",
    "GapTrend",
    "StuckCheck",
    "best_configuration",
    "describe_runs",
    "diagnose",
    "divergence",
    "family_in_words",
    "family_key",
    "gap_series",
    "kind_summary",
    "lr_decay",
    "overfitting",
    "peak_lr",
    "ranked_configurations",
    "schedule_decay",
    "stuck_check",
    "stuck_runs",
    "widening_gap",
]


def diagnose(
    configs: Sequence[Configuration],
    epochs: Mapping[str, Sequence[EpochRecord]],
    steps: Mapping[str, StepSeries],
    planned_steps: Mapping[str, int] | None = None,
) -> list[Finding]:
    """Every diagnostic, in reading order: best, divergence, stuck, overfitting, decay."""
    findings: list[Finding] = []
    best = best_configuration(configs, epochs)
    if best is not None:
        findings.append(best)
    findings += divergence(configs, planned_steps)
    findings += stuck_runs(configs, steps, epochs)
    findings += overfitting(configs, epochs)
    findings += schedule_decay(configs, steps, planned_steps)
    failed = [r for c in configs for r in c.runs if r.status is RunStatus.FAILED]
    if failed:
        first = failed[0]
        findings.append(
            Finding(
                "failed",
                "warning",
                f"{len(failed)} run(s) failed; the first ({first.id}) with: {(first.error or 'no message')[:200]}",
                {"failed_runs": len(failed)},
                (),
                tuple(r.id for r in failed),
            )
        )
    return findings


def __getattr__(name: str) -> Any:
    # The words for a schedule's family were once also called ``schedule_family``, beside
    # lrlab.core.records.schedule_family, which spells the family differently.
    if name == "schedule_family":
        warnings.warn(
            "lrlab.core.diagnostics.schedule_family is lrlab.core.diagnostics.family_in_words "
            "('warmup-cosine'); lrlab.core.records.schedule_family spells the whole family ('warmup+cosine')",
            DeprecationWarning,
            stacklevel=2,
        )
        return family_in_words
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
