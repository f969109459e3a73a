"""The one-cycle policy (Smith & Topin, "Super-Convergence", 2018)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lrlab.schedules._base import (
    FloatArray,
    Schedule,
    choice,
    fraction,
    positive,
    rate,
    set_fields,
    steps,
)


@dataclass(frozen=True)
class OneCycle(Schedule):
    """Up from ``max_lr / div_factor`` to ``max_lr`` over ``pct_start`` of the steps,
    then down to ``max_lr / (div_factor * final_div_factor)``; with ``three_phase``
    back to the start value first and then down. Identical to torch's OneCycleLR inside
    ``[0, total_steps)``; holds its final value after that.

    >>> s = one_cycle(1.0, total_steps=100)
    >>> round(s(0), 6), s(29), round(s(99), 9)
    (0.04, 1.0, 4e-06)
    """

    name = "one_cycle"
    max_lr: float
    total_steps: int
    pct_start: float = 0.3
    anneal: str = "cos"
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    three_phase: bool = False

    def _validate(self) -> None:
        total = steps("total_steps", self.total_steps, minimum=1)
        if not isinstance(total, int):
            raise ValueError(f"total_steps must be a whole number, got {self.total_steps!r}")
        pct = fraction("pct_start", self.pct_start, high_open=True)
        three_phase = self.three_phase
        if not isinstance(three_phase, bool):
            raise ValueError(f"three_phase must be true or false, got {three_phase!r}")
        if pct * total <= 1:
            raise ValueError(
                f"pct_start * total_steps must be > 1 so that the warm-up phase has a step, "
                f"got pct_start={pct!r}, total_steps={total!r}"
            )
        if three_phase and 2 * pct * total - 2 >= total - 1:
            raise ValueError(f"pct_start must leave room for the third phase, got {pct!r}")
        set_fields(
            self,
            max_lr=rate("max_lr", self.max_lr),
            pct_start=pct,
            anneal=choice("anneal", self.anneal, ("cos", "linear")),
            div_factor=positive("div_factor", self.div_factor),
            final_div_factor=positive("final_div_factor", self.final_div_factor),
        )

    def _phases(self) -> list[tuple[float, float, float]]:
        """``(end_step, start_value, end_value)`` for each phase, as torch builds them."""
        initial = self.max_lr / self.div_factor
        final = initial / self.final_div_factor
        up_end = float(self.pct_start * self.total_steps) - 1
        last = float(self.total_steps - 1)
        if self.three_phase:
            down_end = float(2 * self.pct_start * self.total_steps) - 2
            return [(up_end, initial, self.max_lr), (down_end, self.max_lr, initial), (last, initial, final)]
        return [(up_end, initial, self.max_lr), (last, self.max_lr, final)]

    def _anneal(self, start: float, end: float, pct: FloatArray) -> FloatArray:
        if self.anneal == "cos":
            return end + (start - end) / 2.0 * (np.cos(np.pi * pct) + 1)
        return (end - start) * pct + start

    def _values(self, t: FloatArray) -> FloatArray:
        t = np.minimum(t, self.total_steps - 1)
        phases = self._phases()
        # torch takes the first phase whose end_step >= t (the last phase for any later t);
        # gather each step's phase bounds and evaluate the anneal once, with torch's formula.
        ends = np.array([end for end, _, _ in phases])
        starts = np.concatenate([[0.0], ends[:-1]])
        first = np.array([start for _, start, _ in phases])
        last = np.array([end for _, _, end in phases])
        which = np.minimum(np.searchsorted(ends, t, side="left"), len(phases) - 1)
        if which.size and which.min() == which.max():
            # All in one phase (the usual case for a block of consecutive steps): the same
            # arithmetic with scalars instead of gathered arrays.
            which = which.flat[0]
        phase_start, phase_end = starts[which], ends[which]
        pct = (t - phase_start) / (phase_end - phase_start)
        return self._anneal(first[which], last[which], pct)


one_cycle = OneCycle
