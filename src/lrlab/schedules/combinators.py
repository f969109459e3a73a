"""Combinators: ``warmup`` in front of any schedule, ``sequence`` of schedules."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence as SequenceOf
from dataclasses import dataclass

import numpy as np

from lrlab.schedules._base import FloatArray, Schedule, rate, schedule_arg, set_fields, steps


@dataclass(frozen=True)
class Warmup(Schedule):
    """A straight line from ``start_lr`` to ``schedule(0)`` over ``steps``, then
    ``schedule(t - steps)`` (Goyal et al., 2017: gradual warmup).

    >>> from lrlab.schedules import cosine
    >>> s = warmup(cosine(1.0, total_steps=10), steps=5)
    >>> s(0), s(1), s(5), s(10)
    (0.0, 0.2, 1.0, 0.5)
    """

    name = "warmup"
    schedule: Schedule
    steps: int | float
    start_lr: float = 0.0

    def _validate(self) -> None:
        set_fields(
            self,
            schedule=schedule_arg("schedule", self.schedule),
            steps=steps("steps", self.steps, strict=False),
            start_lr=rate("start_lr", self.start_lr),
        )
        # Computed now, innermost first as the schedule is built: one evaluation per level.
        set_fields(self, _peak=self.schedule._start_value())

    @functools.cached_property
    def _peak(self) -> float:
        """``schedule(0)``, kept: evaluating it on every call would evaluate the inner
        schedule twice per call, and ``2**depth`` times through nested warmups. (Set by
        ``_validate``; computed here only for an object unpickled without it.)"""
        return self.schedule._start_value()

    def _start_value(self) -> float:
        if self.steps == 0:
            return self.schedule._start_value()
        # The ramp at t = 0, with the arithmetic of ``_values`` (float64 either way).
        return self.start_lr + (self._peak - self.start_lr) * (0.0 / self.steps)

    def _check_values(self) -> None:
        # Nothing of its own to probe: the values are the inner schedule's (probed when it
        # was made) and, before ``steps``, a ramp between two finite values. Probing here
        # would evaluate the whole inner schedule at every level: quadratic in depth.
        pass

    def _values(self, t: FloatArray) -> FloatArray:
        after = self.schedule._values(np.maximum(t - self.steps, 0.0))
        if self.steps == 0:
            return after
        ramp = self.start_lr + (self._peak - self.start_lr) * (t / self.steps)
        return np.where(t < self.steps, ramp, after)


@dataclass(frozen=True)
class SequenceSchedule(Schedule):
    """``schedules[i](t - boundaries[i - 1])`` from ``boundaries[i - 1]`` on
    (optax's ``join_schedules``).

    >>> from lrlab.schedules import constant, linear
    >>> s = sequence([constant(0.1), linear(0.1, 0.0, total_steps=10)], boundaries=[100])
    >>> s(50), s(105)
    (0.1, 0.05)
    """

    name = "sequence"
    schedules: tuple[Schedule, ...]
    boundaries: tuple[int | float, ...]

    def _validate(self) -> None:
        if not isinstance(self.schedules, SequenceOf) or not self.schedules:
            raise ValueError(f"schedules must be a non-empty list of schedules, got {self.schedules!r}")
        parts = tuple(schedule_arg(f"schedules[{i}]", s) for i, s in enumerate(self.schedules))
        if not isinstance(self.boundaries, SequenceOf):
            raise ValueError(f"boundaries must be a list of steps, got {self.boundaries!r}")
        bounds = tuple(steps(f"boundaries[{i}]", b) for i, b in enumerate(self.boundaries))
        if len(bounds) != len(parts) - 1:
            raise ValueError(
                f"boundaries must have one entry fewer than schedules ({len(parts) - 1}), got {len(bounds)}"
            )
        if any(b <= a for a, b in itertools.pairwise(bounds)):
            raise ValueError(f"boundaries must be strictly increasing, got {list(bounds)!r}")
        set_fields(self, schedules=parts, boundaries=bounds)

    def _start_value(self) -> float:
        return self.schedules[0]._start_value()  # every boundary is > 0

    def _check_values(self) -> None:
        # Nothing of its own to probe: each value is one part's (probed when it was made).
        pass

    def _values(self, t: FloatArray) -> FloatArray:
        # Each part is evaluated once per call, on all of t.
        values = self.schedules[0]._values(t)
        for boundary, part in zip(self.boundaries, self.schedules[1:]):
            shifted = part._values(np.maximum(t - boundary, 0.0))
            values = np.where(t >= boundary, shifted, values)
        return values


warmup = Warmup
sequence = SequenceSchedule
