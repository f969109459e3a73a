"""The arguments of a transfer, checked before anything trains: each bad one is a
:class:`TransferError` in one line that names what is wrong and what is allowed."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

from lrlab.training.trial_task import is_trainable

__all__ = [
    "RUN_AXES",
    "SCHEDULES",
    "TransferError",
    "check_axis",
    "check_numbers",
    "check_proxies",
    "factory_keywords",
]

RUN_AXES = ("steps", "batch_size")
"""Axes that scale the run itself: the factory is called without an argument and the run's
length (epochs) or batch size takes each value."""

SCHEDULES = ("constant", "cosine", "warmup-cosine", "step", "exponential", "one-cycle")
"""The schedule families a transfer trains at each LR (their peak is the LR), as the study builds them."""

MIN_PROXIES = 3


class TransferError(ValueError):
    """A transfer that cannot give a trustworthy prediction (too few proxies, a target inside
    their range, optima that could not be bracketed, a fit through diverged runs). The
    message is one line and says what to do; everything trained stays in the store."""


def check_proxies(proxies: Sequence[float], target: float, axis: str) -> tuple[tuple[float, ...], float]:
    """The proxies sorted and the target, as numbers; ``TransferError`` when there are fewer
    than three distinct positive proxies, or the target is not beyond their range."""
    if isinstance(proxies, str | bytes) or not isinstance(proxies, Sequence):
        raise TransferError(f"proxies must be a list of numbers (at least {MIN_PROXIES}), got {proxies!r}")
    values = tuple(sorted({_positive(f"proxy {axis}", p, axis) for p in proxies}))
    if len(values) < MIN_PROXIES:
        raise TransferError(
            f"a transfer needs at least {MIN_PROXIES} distinct proxies to fit a slope with an interval, "
            f"got {len(values)} ({', '.join(_fmt(v) for v in values) or 'none'}); add proxies, e.g. "
            f"{', '.join(_fmt(v) for v in _suggest(values))}"
        )
    goal = _positive(f"target {axis}", target, axis)
    if values[0] <= goal <= values[-1]:
        raise TransferError(
            f"target {axis} {_fmt(goal)} lies inside the proxies' range {_fmt(values[0])}..{_fmt(values[-1])}: "
            "train it directly (lrlab study), or give a target beyond the largest (or below the smallest) proxy"
        )
    return values, goal


def _positive(label: str, value: Any, axis: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise TransferError(f"{label} must be a number > 0, got {value!r}")
    if axis in RUN_AXES and float(value) != int(value):
        raise TransferError(f"{label} must be a whole number ({axis} counts), got {value!r}")
    return float(value)


def _suggest(values: tuple[float, ...]) -> list[float]:
    start = values[0] if values else 32.0
    return [start, start * 2, start * 4]


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def factory_keywords(factory: Callable[..., Any]) -> tuple[tuple[str, ...], bool]:
    """The keywords ``factory`` takes by name, and whether it takes any (``**kwargs``)."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return (), True  # a builtin or C callable: nothing to read, let the call say
    names, anything = [], False
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            anything = True
        elif parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            names.append(parameter.name)
    return tuple(names), anything


def check_axis(factory: Callable[..., Any], axis: str) -> None:
    """``TransferError`` when ``axis`` is neither a run axis (``steps``, ``batch_size``) nor
    a keyword ``factory`` takes (the message names the keywords it takes)."""
    if not callable(factory):
        raise TransferError(f"factory must be a function of the axis returning a task, got {factory!r}")
    if not isinstance(axis, str) or not axis.isidentifier():
        raise TransferError(
            f"axis must be a keyword of the factory or one of {', '.join(RUN_AXES)}, got {axis!r}"
        )
    if axis in RUN_AXES:
        return
    if is_trainable(factory):  # the axis is one of its declared options
        declared = factory.options  # type: ignore[attr-defined]
        if axis in declared:
            return
        takes = ", ".join(declared) or "no options"
        raise TransferError(
            f"trainable {getattr(factory, '__name__', '')!r} has no option {axis!r} (its options: {takes}); the "
            f"axis must be one of them or {' / '.join(RUN_AXES)}"
        )
    names, anything = factory_keywords(factory)
    if axis in names or anything:
        return
    name = getattr(factory, "__name__", "the factory")
    takes = ", ".join(names) if names else "no keywords"
    raise TransferError(
        f"{name}() takes no keyword {axis!r} (it takes: {takes}); the axis must be one of its keywords "
        f"or {' / '.join(RUN_AXES)}"
    )


def check_numbers(
    *, seeds: Any, jobs: Any, epochs: Any, batch_size: Any, max_extra: Any, lr: Any, level: Any
) -> None:
    """``TransferError`` naming the first of the run's numbers that is not what it must be."""
    whole = {"seeds": (seeds, 1, False), "jobs": (jobs, 1, False), "epochs": (epochs, 1, True),
             "batch_size": (batch_size, 1, True), "max_extra": (max_extra, 0, False)}  # fmt: skip
    for name, (value, least, optional) in whole.items():
        if value is None and optional:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            unset = " (or None: the task's)" if optional else ""
            raise TransferError(f"{name} must be a whole number >= {least}{unset}, got {value!r}")
    if lr is not None and (
        isinstance(lr, bool) or not isinstance(lr, int | float) or not math.isfinite(lr) or lr <= 0
    ):
        raise TransferError(f"lr must be a number > 0 (or None: a range test), got {lr!r}")
    if isinstance(level, bool) or not isinstance(level, int | float) or not 0 < level < 1:
        raise TransferError(f"level must be a number between 0 and 1 (0.8: an 80% interval), got {level!r}")
