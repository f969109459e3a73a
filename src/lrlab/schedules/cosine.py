"""Cosine annealing (Loshchilov & Hutter, SGDR, 2017) and its warm restarts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lrlab.schedules._base import (
    FloatArray,
    Schedule,
    at_least,
    fraction,
    per_cycle,
    rate,
    set_fields,
    steps,
)


def _cosine_fall(start: FloatArray | float, end: float, position: FloatArray) -> FloatArray:
    """From ``start`` at position 0 to ``end`` at position 1 along half a cosine."""
    return end + (start - end) * (1 + np.cos(np.pi * position)) / 2


@dataclass(frozen=True)
class Cosine(Schedule):
    """``final_lr + (lr - final_lr) * (1 + cos(pi * min(t, T) / T)) / 2``, ``T = total_steps``.

    Holds ``final_lr`` after ``total_steps`` (torch's CosineAnnealingLR rises again).

    >>> cosine(1.0, total_steps=10)(5)
    0.5
    """

    name = "cosine"
    lr: float
    total_steps: int | float
    final_lr: float = 0.0

    def _validate(self) -> None:
        set_fields(
            self,
            lr=rate("lr", self.lr),
            total_steps=steps("total_steps", self.total_steps),
            final_lr=rate("final_lr", self.final_lr),
        )

    def _values(self, t: FloatArray) -> FloatArray:
        return _cosine_fall(self.lr, self.final_lr, np.minimum(t, self.total_steps) / self.total_steps)


@dataclass(frozen=True)
class CosineRestarts(Schedule):
    """SGDR: cycle ``i`` lasts ``period * period_mult**i`` steps, starts at
    ``lr * decay**i`` and falls along a cosine towards ``final_lr``, then restarts.

    The cycle is found exactly (integer periods and multipliers give integer
    restart steps), so every restart lands on its step.

    >>> s = cosine_restarts(1.0, period=10, period_mult=2.0, decay=0.5)
    >>> s(10), s(30)
    (0.5, 0.25)
    """

    name = "cosine_restarts"
    lr: float
    period: int | float
    period_mult: float = 1.0
    decay: float = 1.0
    final_lr: float = 0.0

    def _validate(self) -> None:
        set_fields(
            self,
            lr=rate("lr", self.lr),
            period=steps("period", self.period),
            period_mult=at_least("period_mult", self.period_mult, 1.0),
            decay=fraction("decay", self.decay),
            final_lr=rate("final_lr", self.final_lr),
        )

    def cycle_start(self, cycle: FloatArray) -> FloatArray:
        """The first step of cycle ``cycle`` (0-based): the sum of earlier cycle lengths."""
        if self.period_mult == 1.0:
            return self.period * cycle
        return self._start_from_growth(self.period_mult**cycle)

    def _start_from_growth(self, growth: FloatArray) -> FloatArray:
        # growth = period_mult**cycle; the start is period * (growth - 1) / (period_mult - 1).
        return self.period * (growth - 1) / (self.period_mult - 1)

    def cycle_of(self, t: FloatArray) -> FloatArray:
        """The 0-based cycle that step ``t`` falls in, exact at restart steps."""
        steps = np.asarray(t, dtype=np.float64)
        return self._locate(steps)[0].reshape(steps.shape)

    def _growth_and_start(self, cycle: FloatArray) -> tuple[FloatArray, FloatArray]:
        growth = self.period_mult**cycle
        return growth, self._start_from_growth(growth)

    def _locate(self, t: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """``(cycle, start, length)`` of the cycle holding each step, as flat arrays."""
        t = t.ravel()
        if self.period_mult == 1.0:
            cycle = np.floor(t / self.period)
            return cycle, self.period * cycle, np.full_like(t, self.period)
        m = self.period_mult
        cycle = np.floor(np.log1p(t * (m - 1) / self.period) / np.log(m))
        # A cycle overflows to inf only at steps far beyond any run (values are NaN there).
        last = int(cycle.max()) + 2 if cycle.size and np.isfinite(cycle.max()) else 0
        if 0 < last < t.size // 4:
            # Few cycles: find each step's cycle among the exact cycle starts.
            growth, start = self._growth_and_start(np.arange(last + 1, dtype=np.float64))
            cycle = np.searchsorted(start, t, side="right") - 1
            if cycle.min() == cycle.max():
                # One cycle (usual for a block of consecutive steps): scalars, same numbers.
                only = cycle[0]
                return cycle.astype(np.float64), start[only], self.period * growth[only]
            return cycle.astype(np.float64), start[cycle], self.period * growth[cycle]
        growth, start = self._growth_and_start(cycle)
        # The logarithm may land one cycle off either way at a restart; correct it exactly
        # (at those few steps only, with the same formulas).
        off = np.flatnonzero((start > t) | (start + self.period * growth <= t))
        if off.size:
            near = cycle[off]
            near = np.where(self.cycle_start(near) > t[off], near - 1, near)
            near = np.where(self.cycle_start(near + 1) <= t[off], near + 1, near)
            cycle[off] = near
            growth[off], start[off] = self._growth_and_start(near)
        return cycle, start, self.period * growth

    def _peak(self, cycle: FloatArray) -> FloatArray:
        return self.lr * self.decay**cycle

    def _values(self, t: FloatArray) -> FloatArray:
        cycle, start, length = self._locate(t)
        peak = self.lr if self.decay == 1.0 else per_cycle(cycle, self._peak)
        return _cosine_fall(peak, self.final_lr, (t.ravel() - start) / length).reshape(t.shape)


cosine = Cosine
cosine_restarts = CosineRestarts
