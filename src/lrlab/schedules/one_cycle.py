"""The one-cycle policy (Smith & Topin, "Super-Convergence", 2018): its learning rate and
the momentum that goes with it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


def _check_cycle(total_steps: Any, pct_start: Any, three_phase: Any) -> None:
    """The checks the learning rate and the momentum of a one-cycle share."""
    total = steps("total_steps", total_steps, minimum=1)
    if not isinstance(total, int):
        raise ValueError(f"total_steps must be a whole number, got {total_steps!r}")
    pct = fraction("pct_start", pct_start, high_open=True)
    if not isinstance(three_phase, bool):
        raise ValueError(f"three_phase must be true or false, got {three_phase!r}")
    if pct * total <= 1:
        raise ValueError(
            f"pct_start * total_steps must be > 1 so that the warm-up phase has a step, "
            f"got pct_start={pct!r}, total_steps={total!r}"
        )
    if three_phase and 2 * pct * total - 2 >= total - 1:
        raise ValueError(f"pct_start must leave room for the third phase, got {pct!r}")


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
        _check_cycle(self.total_steps, self.pct_start, self.three_phase)
        pct = fraction("pct_start", self.pct_start, high_open=True)
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

    def _values(self, t: FloatArray) -> FloatArray:
        return _phase_values(t, self._phases(), self.anneal, self.total_steps)


def _phase_values(
    t: FloatArray, phases: list[tuple[float, float, float]], anneal: str, total_steps: int
) -> FloatArray:
    """The value at steps ``t`` of a one-cycle made of ``phases`` (``(end_step, start_value,
    end_value)`` each), with torch's phase lookup and anneal formula: shared by the learning
    rate and the momentum, which torch computes in the same loop."""
    t = np.minimum(t, total_steps - 1)
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
    start, end = first[which], last[which]
    if anneal == "cos":
        return end + (start - end) / 2.0 * (np.cos(np.pi * pct) + 1)
    return (end - start) * pct + start


@dataclass(frozen=True)
class OneCycleMomentum(Schedule):
    """The momentum of a one-cycle, as torch's ``OneCycleLR(cycle_momentum=True)`` sets it
    (SGD's ``momentum``, the Adam family's ``betas[0]``): inverse to the learning rate of
    :class:`OneCycle` with the same ``total_steps``, ``pct_start``, ``anneal`` and
    ``three_phase``. Down from ``max_momentum`` to ``base_momentum`` while the learning
    rate rises, then back up to ``max_momentum`` while it falls (with ``three_phase``: up
    in the second phase, held at ``max_momentum`` in the third).

    With ``e_k`` the end step of phase ``k`` (``e_0 = pct_start * total_steps - 1``,
    ``e_last = total_steps - 1``, three-phase ``e_1 = 2 * pct_start * total_steps - 2``),
    inside phase ``k`` from ``a`` to ``b`` at ``p = (t - e_{k-1}) / (e_k - e_{k-1})``
    (``e_{-1} = 0``): ``cos``: ``b + (a - b) / 2 * (cos(pi * p) + 1)``; ``linear``:
    ``(b - a) * p + a``. The same float64 arithmetic as torch, so the values are equal.
    From ``total_steps`` on it holds ``max_momentum``.

    >>> m = one_cycle_momentum(total_steps=100)
    >>> m(0), m(29), m(99)
    (0.95, 0.85, 0.95)
    """

    name = "one_cycle_momentum"
    total_steps: int
    pct_start: float = 0.3
    anneal: str = "cos"
    base_momentum: float = 0.85
    max_momentum: float = 0.95
    three_phase: bool = False

    def _validate(self) -> None:
        _check_cycle(self.total_steps, self.pct_start, self.three_phase)
        set_fields(
            self,
            pct_start=fraction("pct_start", self.pct_start, high_open=True),
            anneal=choice("anneal", self.anneal, ("cos", "linear")),
            base_momentum=fraction("base_momentum", self.base_momentum, low_open=False),
            max_momentum=fraction("max_momentum", self.max_momentum, low_open=False),
        )

    def _phases(self) -> list[tuple[float, float, float]]:
        """``(end_step, start_value, end_value)`` for each phase, as torch builds them."""
        low, high = self.base_momentum, self.max_momentum
        up_end = float(self.pct_start * self.total_steps) - 1
        last = float(self.total_steps - 1)
        if self.three_phase:
            down_end = float(2 * self.pct_start * self.total_steps) - 2
            return [(up_end, high, low), (down_end, low, high), (last, high, high)]
        return [(up_end, high, low), (last, low, high)]

    def _values(self, t: FloatArray) -> FloatArray:
        return _phase_values(t, self._phases(), self.anneal, self.total_steps)


def momentum_for(schedule: Schedule) -> OneCycleMomentum | None:
    """The momentum that goes with ``schedule`` where it is a one-cycle (torch's and fastai's
    default: 0.95 -> 0.85 -> 0.95 in the one-cycle's phases), else ``None``.

    >>> print(momentum_for(one_cycle(0.1, total_steps=100, anneal="linear")))
    one_cycle_momentum(total_steps=100, anneal="linear")
    """
    if not isinstance(schedule, OneCycle):
        return None
    return OneCycleMomentum(
        total_steps=schedule.total_steps,
        pct_start=schedule.pct_start,
        anneal=schedule.anneal,
        three_phase=schedule.three_phase,
    )


one_cycle = OneCycle
one_cycle_momentum = OneCycleMomentum
