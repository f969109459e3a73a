"""Checks of a :func:`~lrlab.training.trial.trainable` declaration: its numbers, its LR
range, its function's signature, and the options a run gives against the declared ones.
Each failure is one ``ValueError`` naming the argument and what is allowed."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

__all__ = ["check_signature", "checked_lr_range", "like_default", "positive_int"]


def positive_int(name: str, value: Any) -> int:
    """``value`` when it is a whole number >= 1 (``epochs``, ``steps_per_epoch``)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"trainable: {name} must be a whole number >= 1, got {value!r}")
    return int(value)


def checked_lr_range(value: Any) -> tuple[float, float] | None:
    """``(low, high)`` as floats with 0 < low < high, or None when none is declared."""
    if value is None:
        return None
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"trainable: lr_range must be two numbers (low, high), got {value!r}") from None
    if not (0 < low < high and math.isfinite(high)):
        raise ValueError(f"trainable: lr_range must be two finite numbers 0 < low < high, got {value!r}")
    return low, high


def like_default(name: str, key: str, default: Any, value: Any) -> Any:
    """``value`` for the option ``key``, of its default's type (a number, a bool, a string;
    an integer given for a float default made a float, so that ``1`` and ``1.0`` are one
    configuration); ``ValueError`` in one line otherwise. A default of None takes anything."""
    if default is None:
        return value
    if isinstance(default, bool) or isinstance(value, bool):
        ok = isinstance(default, bool) and isinstance(value, bool)
    elif isinstance(default, (int, float)):
        ok = isinstance(value, (int, float)) and (isinstance(default, float) or isinstance(value, int))
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ValueError(
            f"trainable {name!r}: option {key!r} must be {type(default).__name__} like its default {default!r}, "
            f"got {value!r}"
        )
    return float(value) if isinstance(default, float) else value


def check_signature(fn: Callable[..., Any]) -> None:
    """The function must take the trial as its one required argument."""
    try:
        inspect.signature(fn).bind(None)
    except TypeError:
        name = getattr(fn, "__qualname__", repr(fn))
        raise ValueError(
            f"trainable: {name} must take one argument, the trial (def {name}(trial): ...)"
        ) from None
    except ValueError:  # no signature to read: the call will say
        pass
