"""The schedule value type shared by every family.

A schedule is a frozen dataclass whose fields are its parameters. Subclasses
implement ``_values(t)`` on a float64 numpy array of steps; ``__call__`` turns
numbers into arrays and back, so that a scalar and a vector give the same
numbers by construction.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, overload

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

REGISTRY: dict[str, type[Schedule]] = {}
# Steps evaluated per block in a long array (see ``Schedule._blockwise``).
BLOCK = 1 << 13


class Schedule:
    """Base class: an immutable map from optimizer step ``t`` (0-based) to a value."""

    name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            REGISTRY[cls.name] = cls

    def _values(self, t: FloatArray) -> FloatArray:  # pragma: no cover - abstract
        raise NotImplementedError

    @overload
    def __call__(self, t: float) -> float: ...

    @overload
    def __call__(self, t: npt.ArrayLike) -> FloatArray: ...

    def __call__(self, t: Any) -> Any:
        steps = np.asarray(t, dtype=np.float64)
        # min and max are two passes without temporaries; NaN fails both comparisons.
        if steps.size and not (steps.min() >= 0 and steps.max() < np.inf):
            raise ValueError(f"step t must be finite and >= 0, got {t!r}")
        # np.where evaluates every branch; a branch that divides by zero is never selected.
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if steps.size > BLOCK:
                return self._blockwise(steps)
            values = np.asarray(self._values(steps), dtype=np.float64)
        if steps.ndim == 0:
            return float(values)
        if values.shape != steps.shape or np.may_share_memory(values, steps):
            return np.broadcast_to(values, steps.shape).copy()
        return values

    def _blockwise(self, steps: FloatArray) -> FloatArray:
        # Long arrays go through in cache-sized blocks: the temporaries of ``_values`` stay
        # small and are reused instead of being fresh pages of memory for every operation.
        flat = steps.ravel()
        out = np.empty(flat.size, dtype=np.float64)
        for start in range(0, flat.size, BLOCK):
            out[start : start + BLOCK] = self._values(flat[start : start + BLOCK])
        return out.reshape(steps.shape)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict ``{"name": ..., **parameters}``; ``from_dict`` reads it back."""
        out: dict[str, Any] = {"name": self.name}
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            out[field.name] = _to_plain(getattr(self, field.name))
        return out

    def __str__(self) -> str:
        from lrlab.schedules.spec import format_spec

        return format_spec(self)


def _to_plain(value: Any) -> Any:
    if isinstance(value, Schedule):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_to_plain(v) for v in value]
    return value


def per_cycle(index: FloatArray, fn: Callable[[FloatArray], Any]) -> Any:
    """``fn(index)`` for an array of whole numbers >= 0 (cycle or phase counts).

    Long arrays usually hold few distinct counts: ``fn`` then runs once per count on
    ``arange(max + 1)`` and the results are gathered, instead of running on every
    element. Same function, same inputs, so the same numbers either way. ``fn`` may
    return an array or a tuple of arrays.
    """
    if not index.size:
        return fn(index)
    low, high = int(index.min()), int(index.max())
    count = high - low + 1
    if count > index.size // 4:
        return fn(index)
    table = fn(np.arange(low, high + 1, dtype=np.float64))
    at = index.astype(np.intp) - low
    if isinstance(table, tuple):
        return tuple(np.broadcast_to(part, (count,))[at] for part in table)
    return np.broadcast_to(table, (count,))[at]


# ---------------------------------------------------------------- validation


def _check_number(name: str, value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value.item() if isinstance(value, (np.integer, np.floating)) else value


def rate(name: str, value: Any) -> float:
    """A learning rate (or any schedule value): finite and >= 0."""
    number = float(_check_number(name, value))
    if number < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return number


def positive(name: str, value: Any) -> float:
    number = float(_check_number(name, value))
    if number <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return number


def steps(name: str, value: Any, minimum: float = 0.0, strict: bool = True) -> int | float:
    """A step count: kept as the int or float it was given, so that specs round-trip."""
    number = _check_number(name, value)
    if (strict and number <= minimum) or (not strict and number < minimum):
        relation = ">" if strict else ">="
        raise ValueError(f"{name} must be {relation} {minimum:g}, got {value!r}")
    return number


def fraction(name: str, value: Any, *, low_open: bool = True, high_open: bool = False) -> float:
    """A factor in (0, 1] by default."""
    number = float(_check_number(name, value))
    low_ok = number > 0 if low_open else number >= 0
    high_ok = number < 1 if high_open else number <= 1
    if not (low_ok and high_ok):
        interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return number


def choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        options = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return str(value)


def schedule_arg(name: str, value: Any) -> Schedule:
    if not isinstance(value, Schedule):
        raise ValueError(f"{name} must be a schedule, got {value!r}")
    return value


def set_fields(obj: Any, **values: Any) -> None:
    """Assign validated values on a frozen dataclass from its ``__post_init__``."""
    for key, value in values.items():
        object.__setattr__(obj, key, value)
