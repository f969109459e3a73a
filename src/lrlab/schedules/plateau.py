"""Reduce on plateau: a metric-driven schedule as an immutable value.

``plateau(lr, ...)`` is the learning rate after the reductions a run has applied so far:
a node of the schedule tree like any other, so ``warmup(plateau(...), steps=500)`` and
``sequence([..., plateau(...)], ...)`` evaluate with the ordinary code. What changes
during a run is the number of reductions, kept in the node (``reductions``), and the
bookkeeping between metrics (best metric, bad epochs, cooldown), kept beside the tree in
a :class:`PlateauState` per plateau node. :func:`observe` feeds one metric: it mirrors
``torch.optim.lr_scheduler.ReduceLROnPlateau.step(metrics)`` line for line and returns
the new tree and states; everything here is a pure function of values.

A plateau node counts a metric only while it is in effect: inside ``warmup(...)`` from
step ``steps`` on, inside ``sequence(...)`` while its part is the one in use
(:func:`in_effect`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, SupportsFloat

import numpy as np

from lrlab.schedules._base import FloatArray, Schedule, at_least, choice, fraction, rate, set_fields
from lrlab.schedules.combinators import SequenceSchedule, Warmup

__all__ = [
    "Plateau",
    "PlateauState",
    "active_plateaus",
    "find_plateaus",
    "in_effect",
    "initial_states",
    "observe",
    "plateau",
    "reduce_on_plateau",
]

# The value is computed by repeating torch's reduction ``reductions`` times (the only
# way to get torch's floats exactly), so the count is bounded to keep that work small
# (about a millisecond) for any spec. Only the reductions that lower the LR count: with
# torch's eps=1e-8 a factor up to 0.998 lowers an LR of 1 fewer times than this.
MAX_REDUCTIONS = 10_000

# A path from the root of a tree to a node: the child index taken at each level.
Path = tuple[int, ...]


@dataclass(frozen=True)
class Plateau(Schedule):
    """``lr`` lowered ``reductions`` times as torch's ``ReduceLROnPlateau`` lowers it:
    ``v = lr``, then ``reductions`` times ``new = max(v * factor, min_lr)``, kept if
    ``v - new > eps``. Constant in ``t``: the steps do not reduce it, metrics do
    (:func:`observe`, or ``lrlab.torch.LRScheduler.step(metric)``).

    The other parameters are torch's, with its defaults: a metric is better than the
    best so far when below ``best * (1 - threshold)`` (``mode="min"``,
    ``threshold_mode="rel"``), below ``best - threshold`` (``"abs"``), or above
    ``best * (1 + threshold)`` / ``best + threshold`` with ``mode="max"``; after more
    than ``patience`` metrics in a row that are not better, the LR is reduced and the
    next ``cooldown`` metrics are not counted.

    >>> s = plateau(0.1, factor=0.5)
    >>> s(0), s(1000)
    (0.1, 0.1)
    >>> str(s)
    'plateau(lr=0.1, factor=0.5)'
    >>> plateau(0.1, factor=0.5, reductions=2)(0)
    0.025
    """

    name = "plateau"
    lr: float
    factor: float = 0.1
    patience: int = 10
    threshold: float = 1e-4
    threshold_mode: str = "rel"
    cooldown: int = 0
    min_lr: float = 0.0
    mode: str = "min"
    eps: float = 1e-8
    reductions: int = 0

    def _validate(self) -> None:
        set_fields(
            self,
            lr=rate("lr", self.lr),
            factor=fraction("factor", self.factor, high_open=True),
            patience=_count("patience", self.patience),
            threshold=at_least("threshold", self.threshold, 0.0),
            threshold_mode=choice("threshold_mode", self.threshold_mode, ("rel", "abs")),
            cooldown=_count("cooldown", self.cooldown),
            min_lr=rate("min_lr", self.min_lr),
            mode=choice("mode", self.mode, ("min", "max")),
            eps=at_least("eps", self.eps, 0.0),
            reductions=_count("reductions", self.reductions, maximum=MAX_REDUCTIONS),
        )
        # Computed once: every evaluation and every further reduction starts from it.
        set_fields(self, _current=self._reduced_value())

    @functools.cached_property
    def _current(self) -> float:
        """The LR after the reductions. (Set by ``_validate``; computed here only for an
        object unpickled without it.)"""
        return self._reduced_value()

    def _reduced_value(self) -> float:
        value = self.lr
        for _ in range(self.reductions):
            lowered = self._lowered(value)
            if lowered == value:
                break  # the same value gives the same step: no later step changes it
            value = lowered
        return value

    def _lowered(self, value: float) -> float:
        """One reduction, as torch's ``_reduce_lr``: kept only if it lowers by more than eps."""
        new_lr = max(value * self.factor, self.min_lr)
        return new_lr if value - new_lr > self.eps else value

    def reduced(self) -> Plateau:
        """This schedule after one more reduction; itself when the reduction would not
        lower the LR (at ``min_lr``, or by ``eps`` or less)."""
        if self._lowered(self._current) == self._current:
            return self
        return dataclasses.replace(self, reductions=self.reductions + 1)

    def is_better(self, metric: float, best: float) -> bool:
        """torch's ``_is_better``: NaN is never better."""
        if self.mode == "min" and self.threshold_mode == "rel":
            return metric < best * (1.0 - self.threshold)
        if self.mode == "min":
            return metric < best - self.threshold
        if self.threshold_mode == "rel":
            return metric > best * (self.threshold + 1.0)
        return metric > best + self.threshold

    def _start_value(self) -> float:
        return self._current

    def _values(self, t: FloatArray) -> FloatArray:
        return np.full_like(t, self._current)


def _count(name: str, value: Any, maximum: int | None = None) -> int:
    """A whole number >= 0 (a float with a whole value is taken as its int)."""
    whole = isinstance(value, (int, np.integer)) or (
        isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer()
    )
    if isinstance(value, bool) or not whole or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class PlateauState:
    """What one plateau node remembers between metrics (torch's attributes of the same
    names): the best metric so far, the metrics in a row that were not better, the
    metrics still to skip after a reduction, and the number of metrics counted."""

    best: float
    num_bad_epochs: int = 0
    cooldown_counter: int = 0
    last_epoch: int = 0

    @classmethod
    def start(cls, schedule: Plateau) -> PlateauState:
        """The state before any metric: ``best`` is the worst value for the mode."""
        return cls(best=math.inf if schedule.mode == "min" else -math.inf)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlateauState:
        return cls(
            best=float(data["best"]),
            num_bad_epochs=int(data["num_bad_epochs"]),
            cooldown_counter=int(data["cooldown_counter"]),
            last_epoch=int(data["last_epoch"]),
        )


def reduce_on_plateau(
    schedule: Plateau, state: PlateauState, metric: SupportsFloat
) -> tuple[Plateau, PlateauState]:
    """One metric for one plateau node: torch's ``ReduceLROnPlateau.step(metrics)``."""
    current = float(metric)
    best, num_bad_epochs = state.best, state.num_bad_epochs
    if schedule.is_better(current, best):
        best, num_bad_epochs = current, 0
    else:
        num_bad_epochs += 1
    cooldown_counter = state.cooldown_counter
    if cooldown_counter > 0:
        cooldown_counter -= 1
        num_bad_epochs = 0  # bad epochs in cooldown are ignored
    if num_bad_epochs > schedule.patience:
        schedule = schedule.reduced()
        cooldown_counter = schedule.cooldown
        num_bad_epochs = 0
    return schedule, PlateauState(best, num_bad_epochs, cooldown_counter, state.last_epoch + 1)


# ---------------------------------------------------------------- trees


def in_effect(schedule: Schedule, t: float) -> list[tuple[Schedule, float, bool]]:
    """The schedules ``schedule`` holds, each with its own step and whether it is the one
    in effect at step ``t``: the one rule for where a metric goes.

    ``warmup(inner, steps)`` holds ``inner``, in effect from ``steps`` on (its step
    ``t - steps``); ``sequence(parts, boundaries)`` holds each part, in effect from its
    start boundary up to the next (its step ``t - start``). No other schedule holds any.
    """
    if isinstance(schedule, Warmup):
        return [(schedule.schedule, t - schedule.steps, t >= schedule.steps)]
    if isinstance(schedule, SequenceSchedule):
        starts = (0, *schedule.boundaries)
        ends = (*schedule.boundaries, math.inf)
        return [
            (part, t - start, start <= t < end) for part, start, end in zip(schedule.schedules, starts, ends)
        ]
    return []


def _walk(schedule: Schedule, t: float) -> Iterator[tuple[Path, Plateau, bool]]:
    """Every plateau node, depth first: its path, the node, whether it is in effect at t."""
    pending: list[tuple[Path, Schedule, float, bool]] = [((), schedule, t, True)]
    while pending:
        path, node, step, active = pending.pop()
        if isinstance(node, Plateau):
            yield path, node, active
        children = in_effect(node, step)
        for index in reversed(range(len(children))):
            child, child_step, child_active = children[index]
            pending.append(((*path, index), child, child_step, active and child_active))


def find_plateaus(schedule: Schedule) -> tuple[Plateau, ...]:
    """The plateau nodes of a tree, depth first (the order of its states)."""
    return tuple(node for _, node, _ in _walk(schedule, 0.0))


def active_plateaus(schedule: Schedule, t: float) -> tuple[int, ...]:
    """The indices (in :func:`find_plateaus` order) of the plateau nodes in effect at t."""
    return tuple(index for index, (_, _, active) in enumerate(_walk(schedule, t)) if active)


def initial_states(schedule: Schedule) -> tuple[PlateauState, ...]:
    """One fresh state per plateau node, in :func:`find_plateaus` order."""
    return tuple(PlateauState.start(node) for node in find_plateaus(schedule))


def _replace_at(schedule: Schedule, path: Path, new: Schedule) -> Schedule:
    """``schedule`` with the node at ``path`` replaced, each node above it rebuilt."""
    above: list[Schedule] = []
    node = schedule
    for index in path:
        above.append(node)
        node = node.schedule if isinstance(node, Warmup) else node.schedules[index]  # type: ignore[attr-defined]
    for parent, index in zip(reversed(above), reversed(path)):
        if isinstance(parent, Warmup):
            new = dataclasses.replace(parent, schedule=new)
        else:
            parts = list(parent.schedules)  # type: ignore[attr-defined]
            parts[index] = new
            new = dataclasses.replace(parent, schedules=tuple(parts))
    return new


def observe(
    schedule: Schedule, t: float, metric: SupportsFloat, states: Sequence[PlateauState] | None = None
) -> tuple[Schedule, tuple[PlateauState, ...]]:
    """Feed one metric, measured at step ``t``, to the plateau node(s) in effect there.

    Returns the tree (the node reduced if the metric called for it) and the states, one
    per plateau node in :func:`find_plateaus` order (``states=None``: fresh ones). Nodes
    not in effect at ``t`` keep their state.

    >>> from lrlab.schedules import warmup
    >>> s = warmup(plateau(1.0, factor=0.5, patience=0), steps=2)
    >>> s, states = observe(s, 0, 3.0)          # in the warmup: not counted
    >>> s, states = observe(s, 2, 3.0, states)  # the first metric counted: the best so far
    >>> s, states = observe(s, 3, 3.0, states)  # not better: more than patience=0 in a row
    >>> s(4), states[0].last_epoch
    (0.5, 2)
    """
    sites = list(_walk(schedule, t))
    current = initial_states(schedule) if states is None else tuple(states)
    if len(current) != len(sites):
        raise ValueError(f"states must hold one state per plateau node ({len(sites)}), got {len(current)}")
    value = float(metric)
    new_states = list(current)
    tree = schedule
    for index, (path, node, active) in enumerate(sites):
        if not active:
            continue
        reduced, new_states[index] = reduce_on_plateau(node, current[index], value)
        if reduced is not node:
            tree = _replace_at(tree, path, reduced)
    return tree, tuple(new_states)


plateau = Plateau
