"""Cyclical learning rates (Smith, "Cyclical Learning Rates for Training Neural
Networks", WACV 2017), with sine cycles, per-cycle decay and a cycle limit."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lrlab.schedules._base import (
    FloatArray,
    Schedule,
    choice,
    fraction,
    per_cycle,
    rate,
    set_fields,
    steps,
)

MODES = ("triangular", "triangular2", "exp_range")
SHAPES = ("triangle", "sine")


@dataclass(frozen=True)
class Cyclic(Schedule):
    """Cycles between ``base_lr`` and ``max_lr``: up over ``step_size`` steps, down over
    ``step_size_down`` (default ``step_size``).

    The cycle count and position are those of torch's CyclicLR (``step_size`` is its
    ``step_size_up``). Inside a cycle the waveform rises 0 -> 1 and falls back,
    linearly (``shape="triangle"``) or as ``(1 - cos(pi p)) / 2`` (``shape="sine"``).
    The amplitude ``max_lr - base_lr`` is scaled by the mode (``triangular`` 1,
    ``triangular2`` halves it every cycle, ``exp_range`` ``gamma**t``) and by
    ``cycle_decay**(cycle - 1)``. After ``cycles`` complete cycles it holds ``base_lr``.

    >>> s = cyclic(0.1, 1.0, step_size=10)
    >>> s(0), s(5), s(10), s(20)
    (0.1, 0.55, 1.0, 0.1)
    """

    name = "cyclic"
    base_lr: float
    max_lr: float
    step_size: int | float
    step_size_down: int | float | None = None
    mode: str = "triangular"
    gamma: float = 1.0
    shape: str = "triangle"
    cycle_decay: float = 1.0
    cycles: int | None = None

    def _validate(self) -> None:
        base_lr, max_lr = rate("base_lr", self.base_lr), rate("max_lr", self.max_lr)
        if max_lr < base_lr:
            raise ValueError(f"max_lr must be >= base_lr ({base_lr!r}), got {self.max_lr!r}")
        down = self.step_size_down
        if self.cycles is not None and (
            isinstance(self.cycles, bool) or not isinstance(self.cycles, int) or self.cycles < 1
        ):
            raise ValueError(f"cycles must be a whole number >= 1 or None, got {self.cycles!r}")
        if self.cycles is not None:
            steps("cycles", self.cycles)  # finite as a float64: it multiplies the cycle length
        set_fields(
            self,
            base_lr=base_lr,
            max_lr=max_lr,
            step_size=steps("step_size", self.step_size),
            step_size_down=None if down is None else steps("step_size_down", down),
            mode=choice("mode", self.mode, MODES),
            gamma=fraction("gamma", self.gamma),
            shape=choice("shape", self.shape, SHAPES),
            cycle_decay=fraction("cycle_decay", self.cycle_decay),
        )

    @property
    def cycle_length(self) -> float:
        down = self.step_size if self.step_size_down is None else self.step_size_down
        return float(self.step_size) + float(down)

    def _cycle_decay(self, cycle: FloatArray) -> FloatArray:
        return self.cycle_decay ** (cycle - 1)

    def _values(self, t: FloatArray) -> FloatArray:
        # Same operations, in the same order, as torch's CyclicLR.get_lr.
        total = self.cycle_length
        step_ratio = float(self.step_size) / total
        fraction_done = t / total
        cycle = np.floor(1 + fraction_done)
        x = 1.0 + fraction_done - cycle
        rising = x <= step_ratio
        phase = np.where(rising, x / step_ratio, (x - 1) / (step_ratio - 1))
        if self.shape == "sine":
            phase = (1 - np.cos(np.pi * phase)) / 2
        height = (self.max_lr - self.base_lr) * phase
        if self.mode == "triangular2":
            height *= per_cycle(cycle, _halvings)
        elif self.mode == "exp_range":
            height *= self.gamma**t
        if self.cycle_decay != 1.0:
            height *= per_cycle(cycle, self._cycle_decay)
        values = self.base_lr + height
        if self.cycles is not None:
            values = np.where(t >= self.cycles * total, self.base_lr, values)
        return values


def _halvings(cycle: FloatArray) -> FloatArray:
    # torch's triangular2 scale function, 1 / 2**(cycle - 1).
    return 1 / (2.0 ** (cycle - 1))


cyclic = Cyclic
