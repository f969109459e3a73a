"""Key points of a schedule over a training run, for tables and diagnostics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lrlab.schedules._base import Schedule


@dataclass(frozen=True)
class KeyPoints:
    """Where a schedule starts, peaks, bottoms out and ends over ``total_steps`` steps."""

    start: float
    peak: float
    peak_step: int
    minimum: float
    minimum_step: int
    end: float
    total_steps: int

    @property
    def decay_factor(self) -> float:
        """Peak divided by the value at the last step (inf when it ends at 0)."""
        if self.end == 0:
            return float("inf") if self.peak > 0 else 1.0
        return self.peak / self.end


def key_points(schedule: Schedule, total_steps: int) -> KeyPoints:
    """Evaluate ``schedule`` at steps ``0 .. total_steps - 1`` and summarise.

    >>> from lrlab.schedules import cosine
    >>> kp = key_points(cosine(1.0, total_steps=100, final_lr=0.01), 101)
    >>> kp.peak, kp.end, round(kp.decay_factor)
    (1.0, 0.01, 100)
    """
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise ValueError(f"total_steps must be a whole number >= 1, got {total_steps!r}")
    values = schedule(np.arange(total_steps, dtype=np.float64))
    peak_step, minimum_step = int(np.argmax(values)), int(np.argmin(values))
    return KeyPoints(
        start=float(values[0]),
        peak=float(values[peak_step]),
        peak_step=peak_step,
        minimum=float(values[minimum_step]),
        minimum_step=minimum_step,
        end=float(values[-1]),
        total_steps=total_steps,
    )
