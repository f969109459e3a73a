"""Cosine annealing (Loshchilov & Hutter, SGDR, 2017) and its warm restarts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lrlab.schedules._base import FloatArray, Schedule, fraction, rate, set_fields, steps


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

    def __post_init__(self) -> None:
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

    def __post_init__(self) -> None:
        period_mult = float(self.period_mult) if not isinstance(self.period_mult, bool) else None
        if period_mult is None or not period_mult >= 1 or not np.isfinite(period_mult):
            raise ValueError(f"period_mult must be a finite number >= 1, got {self.period_mult!r}")
        set_fields(
            self,
            lr=rate("lr", self.lr),
            period=steps("period", self.period),
            period_mult=period_mult,
            decay=fraction("decay", self.decay),
            final_lr=rate("final_lr", self.final_lr),
        )

    def cycle_start(self, cycle: FloatArray) -> FloatArray:
        """The first step of cycle ``cycle`` (0-based): the sum of earlier cycle lengths."""
        if self.period_mult == 1.0:
            return self.period * cycle
        m = self.period_mult
        return self.period * (m**cycle - 1) / (m - 1)

    def cycle_of(self, t: FloatArray) -> FloatArray:
        """The 0-based cycle that step ``t`` falls in, exact at restart steps."""
        if self.period_mult == 1.0:
            return np.floor(t / self.period)
        m = self.period_mult
        guess = np.floor(np.log1p(t * (m - 1) / self.period) / np.log(m))
        # The logarithm may land one cycle off either way at a restart; correct it exactly.
        guess = np.where(self.cycle_start(guess) > t, guess - 1, guess)
        return np.where(self.cycle_start(guess + 1) <= t, guess + 1, guess)

    def _values(self, t: FloatArray) -> FloatArray:
        cycle = self.cycle_of(t)
        length = self.period * self.period_mult**cycle
        position = (t - self.cycle_start(cycle)) / length
        return _cosine_fall(self.lr * self.decay**cycle, self.final_lr, position)


cosine = Cosine
cosine_restarts = CosineRestarts
