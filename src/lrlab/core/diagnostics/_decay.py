"""Schedules whose LR falls less than the rule of thumb (about 100x) by the end of training."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lrlab.core.diagnostics._common import Finding, display, positive_int
from lrlab.core.grouping import Configuration, is_diverged, schedule_shape
from lrlab.core.records import RunRecord, RunStatus, StepSeries
from lrlab.schedules import Constant
from lrlab.schedules.cyclic import Cyclic
from lrlab.schedules.summary import key_points

# The article: "near the end of training the learning rate should have decayed by about 100x or more".
DECAY_RULE = 100.0
DECAY_TOLERANCE = 0.9  # a decay within 10% of the rule counts as meeting it
# Schedules that do not decay by design (a constant LR, a cycle between two bounds): a note
# that they do not would only restate how the sweep was designed.
NON_DECAYING = (Constant, Cyclic)


@dataclass(frozen=True)
class Decay:
    peak: float
    end: float
    source: str  # "recorded" LRs or the "schedule" spec

    @property
    def factor(self) -> float:
        if self.end <= 0:
            return math.inf if self.peak > 0 else 1.0
        return self.peak / self.end


def lr_decay(run: RunRecord, series: StepSeries | None, planned_steps: int | None = None) -> Decay | None:
    """Peak and final LR of a run: from its recorded LRs when it ran to the end, else from
    its schedule spec (``lrlab.schedules.parse`` + ``key_points``) over ``planned_steps``."""
    if series is not None and len(series) and not is_diverged(run) and run.status is RunStatus.DONE:
        # The param group with the highest peak: a frozen group (lr_mult 0) says nothing of the schedule.
        groups = series.lrs if series.lrs.ndim == 2 and series.lrs.shape[1] > 1 else series.lr[:, None]
        groups = groups[np.all(np.isfinite(groups), axis=1)]
        if len(groups):
            column = groups[:, int(np.argmax(groups.max(axis=0)))]
            if column.max() > 0:
                return Decay(float(column.max()), float(column[-1]), "recorded")
    planned_steps = planned_steps or positive_int(run.extras.get("total_steps"))
    if planned_steps:
        kp = key_points(run.config.schedule, planned_steps)
        return Decay(kp.peak, kp.end, "schedule")
    return None


def schedule_decay(
    configs: Sequence[Configuration],
    steps: Mapping[str, StepSeries],
    planned_steps: Mapping[str, int] | None = None,
    rule: float = DECAY_RULE,
) -> list[Finding]:
    """Schedules whose LR falls less than ``rule`` times (100x) from its peak to the end.

    One finding per schedule (written relative to the LR), naming how many configurations
    use it and the smallest decay factor among them.
    """
    planned_steps = planned_steps or {}
    by_shape: dict[str, list[tuple[Configuration, Decay]]] = {}
    for cfg in configs:
        if isinstance(cfg.config.schedule, NON_DECAYING):  # baselines that do not decay by design
            continue
        decay = None
        for run in cfg.runs:
            decay = lr_decay(run, steps.get(run.id), planned_steps.get(run.id))
            if decay is not None:
                break
        # "About 100x": a designed 100x (step decay by 0.1 twice) is not flagged for rounding.
        if decay is None or decay.factor >= rule * DECAY_TOLERANCE:
            continue
        by_shape.setdefault(schedule_shape(cfg.config.schedule, cfg.lr), []).append((cfg, decay))
    findings = []
    for shape, items in by_shape.items():
        cfg, decay = min(items, key=lambda item: item[1].factor)
        count = f" in {len(items)} configurations" if len(items) > 1 else ""
        message = (
            f"Schedule {shape}{count}: the LR falls only {decay.factor:.3g}x from its peak "
            f"{display(decay.peak)} to {display(decay.end)} at the end of training ({decay.source}); the rule of "
            f"thumb is a decay of about {rule:g}x or more by the end, which lets the trained network "
            "settle instead of bouncing on noise."
        )
        numbers = {"peak": decay.peak, "end": decay.end, "factor": decay.factor, "rule": rule}
        findings.append(
            Finding(
                "schedule_decay",
                "warning",
                message,
                numbers,
                tuple(c.label for c, _d in items),
                tuple(r.id for c, _d in items for r in c.runs),
            )
        )
    return findings
