"""The LR audit: the LR each param group actually used against the one the schedule gives.

The intended LR of group ``g`` at step ``t`` is ``schedule(t) * lr_mult[g]``. A group whose
LR matches none of ``schedule(t - 1)``, ``schedule(t)``, ``schedule(t + 1)`` (times its
multiplier) within ``tolerance`` for ``patience`` steps in a row is a finding: the window of
one step either side forgives a loop that counts its steps from 1 instead of 0, and nothing
more. It catches a scheduler stepped per epoch instead of per step (the LR lags a whole
epoch), a scheduler built after its state was loaded or a resumed run whose LR restarts from
step 0 (the LR of step ``t - t0``), an ``lr_mult`` lost on resume (ratio ``1 / lr_mult``) and
a readout layer at ten times its intended LR (ratio 10).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from lrlab.schedules import Schedule

__all__ = ["AUDIT_PATIENCE", "AUDIT_TOLERANCE", "LRAudit", "Mismatch", "auditable"]

AUDIT_TOLERANCE = 0.01  # relative: torch's recursive schedulers drift ~1e-12 from the closed form
AUDIT_PATIENCE = 3  # steps in a row before a mismatch is a finding


def auditable(schedule: Schedule | None) -> bool:
    """Whether the LR of every step is known in advance (no plateau node, whose reductions
    follow a metric)."""
    if schedule is None:
        return False
    return not any(type(node).__name__ == "Plateau" for node in schedule.nodes())


@dataclass(frozen=True)
class Mismatch:
    """A group's LR that left its schedule: from ``step`` on, ``actual`` against ``intended``."""

    step: int
    group: int
    actual: float
    intended: float

    @property
    def ratio(self) -> float:
        return self.actual / self.intended if self.intended else math.inf


@dataclass
class LRAudit:
    """Audit of the LR per group against ``schedule`` and the intended multipliers ``lr_mults``
    (a group without one: 1). :meth:`observe` returns the ratio actual/intended per group and
    the mismatches that just became findings (each group reported once)."""

    schedule: Schedule
    lr_mults: Sequence[float] | None = None
    tolerance: float = AUDIT_TOLERANCE
    patience: int = AUDIT_PATIENCE
    _streak: dict[int, int] = field(default_factory=dict)
    _first: dict[int, Mismatch] = field(default_factory=dict)
    _reported: set[int] = field(default_factory=set)

    def mult(self, group: int) -> float:
        mults = self.lr_mults or ()
        return float(mults[group]) if group < len(mults) else 1.0

    def observe(self, step: int, lrs: Sequence[float]) -> tuple[list[float], list[Mismatch]]:
        near = [float(self.schedule(t)) for t in (max(step - 1, 0), step, step + 1)]
        ratios, found = [], []
        for group, actual in enumerate(lrs):
            mult = self.mult(group)
            intended = near[1] * mult
            ratios.append(actual / intended if intended else (1.0 if actual == 0 else math.inf))
            if self._matches(actual, [v * mult for v in near]):
                self._streak[group] = 0
                self._first.pop(group, None)
                continue
            self._first.setdefault(group, Mismatch(step, group, float(actual), intended))
            self._streak[group] = self._streak.get(group, 0) + 1
            if self._streak[group] >= self.patience and group not in self._reported:
                self._reported.add(group)
                found.append(self._first[group])
        return ratios, found

    def _matches(self, actual: float, candidates: list[float]) -> bool:
        if not math.isfinite(actual):
            return False
        return any(abs(actual - c) <= self.tolerance * max(abs(c), 1e-12) for c in candidates)
