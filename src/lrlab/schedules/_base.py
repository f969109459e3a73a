"""The schedule value type shared by every family.

A schedule is a frozen dataclass whose fields are its parameters. Subclasses
implement ``_values(t)`` on a float64 numpy array of steps; ``__call__`` turns
numbers into arrays and back, so that a scalar and a vector give the same
numbers by construction. Subclasses check their fields in ``_validate``; the
shared ``__post_init__`` then evaluates the new schedule at a few probe steps and
rejects parameters whose values overflow or are not numbers.

A number is evaluated as a one-element 1-d array, never as a 0-d array: arithmetic
on a 0-d array gives numpy scalars, ``**`` on those (or on Python floats) is the C
library's ``pow``, and ``np.power`` of two 0-d operands takes shortcuts (``x**2.0``
as ``x*x``), while an array goes through numpy's SIMD power loop. They differ by an
ulp for some inputs (``polynomial(total_steps=5037, power=3)``, ``exponential``). A
one-element array goes through the loops a long array does.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, overload

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

REGISTRY: dict[str, type[Schedule]] = {}
# Steps evaluated per block in a long array (see ``Schedule._blockwise``).
BLOCK = 1 << 13
# A new schedule must give finite values at every step up to here (2**53: up to it
# float64 holds every whole step exactly). ``Schedule._check_values`` probes up to it.
PROBE_HORIZON = 2.0**53
# At most this many probe steps taken from a schedule's parameters (a sequence of
# thousands of parts still probes a few dozen steps, not one per boundary).
MAX_PARAMETER_PROBES = 32
# The smallest nonzero step count: ``t / count`` stays finite (< 1.8e308) for every step
# up to PROBE_HORIZON (9.0e15 / 1.8e308 = 5e-293, rounded up).
MIN_STEP_COUNT = 1e-290


class Schedule:
    """Base class: an immutable map from optimizer step ``t`` (0-based) to a value."""

    name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            REGISTRY[cls.name] = cls

    def __post_init__(self) -> None:
        self._validate()
        self._check_values()

    def _validate(self) -> None:
        """Check and normalise the fields (with ``set_fields``); raise ValueError naming one."""

    def _values(self, t: FloatArray) -> FloatArray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _start_value(self) -> float:
        """``self(0)``, exactly as ``_values`` computes it; combinators make it cheap."""
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return _only_value(self._values(np.zeros(1)))

    def _check_values(self) -> None:
        """Raise ValueError unless the values at the probe steps are finite.

        Each parameter is valid on its own by now; this catches the combinations that
        overflow (``lr=1e300`` times a step count) or give NaN (``inf - inf``). The
        parameter named is the most extreme one, the likeliest culprit.
        """
        numbers = _numeric_parameters(self)
        probes = _probe_steps([abs(value) for _, value in numbers])
        step = _first_non_finite_step(self, probes)
        if step is None:
            return
        if not numbers or all(value == 0 for _, value in numbers):
            raise ValueError(f"{self.name}() gives values that are not finite at step {step:g}, got {self!s}")
        name, value = max(numbers, key=lambda item: _extremeness(item[1]))
        raise ValueError(
            f"{name} is out of range: {self.name}() gives a value that is not finite at step "
            f"{step:g} (values must stay finite for steps 0 to 2**53), got {name}={value!r}"
        )

    @overload
    def __call__(self, t: float) -> float: ...

    @overload
    def __call__(self, t: npt.ArrayLike) -> FloatArray: ...

    def __call__(self, t: Any) -> Any:
        steps = _as_steps(t)
        if steps.ndim == 0:
            return self._scalar(float(steps), t)
        # min and max are two passes without temporaries; NaN fails both comparisons.
        if steps.size and not (steps.min() >= 0 and steps.max() < np.inf):
            raise ValueError(f"step t must be finite and >= 0, got {t!r}")
        # Contiguous, as a number's one-element array is: the same ufunc loops either way.
        steps = np.ascontiguousarray(steps)
        # np.where evaluates every branch; a branch that divides by zero is never selected.
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if steps.size > BLOCK:
                return self._blockwise(steps)
            values = np.asarray(self._values(steps), dtype=np.float64)
        if values.shape != steps.shape or np.may_share_memory(values, steps):
            return np.broadcast_to(values, steps.shape).copy()
        return values

    def _scalar(self, step: float, t: Any) -> float:
        """``self(t)`` for a number: ``_values`` on the one-element array ``[step]``.

        Never a 0-d array (see the module docstring): its arithmetic is not an array's,
        down to the last bit.
        """
        if not (0 <= step < math.inf):
            raise ValueError(f"step t must be finite and >= 0, got {t!r}")
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return _only_value(self._values(np.array([step])))

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

    def nodes(self) -> Iterator[Schedule]:
        """This schedule and every schedule inside it, depth first in field order
        (``warmup(sequence([a, b], ...))`` gives the warmup, the sequence, ``a``, ``b``).

        >>> from lrlab.schedules import cosine, warmup
        >>> [n.name for n in warmup(cosine(1.0, total_steps=10), steps=2).nodes()]
        ['warmup', 'cosine']
        """
        yield self
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            for item in value if isinstance(value, tuple) else (value,):
                if isinstance(item, Schedule):
                    yield from item.nodes()

    def __str__(self) -> str:
        from lrlab.schedules.spec import format_spec

        return format_spec(self)


def _as_steps(t: Any) -> FloatArray:
    """``t`` as float64 steps; a string, a bool or an array of them (or of complex numbers,
    dates...) is a ``ValueError``: ``np.asarray("5", float)`` would read a number into it."""
    if type(t) is not int and type(t) is not float:  # the common case, taken straight
        _check_step_type(t)
    try:
        return np.asarray(t, dtype=np.float64)
    except (OverflowError, TypeError, ValueError):
        raise ValueError(f"step t must be finite and >= 0, got {t!r}") from None


def _check_step_type(t: Any) -> None:
    if isinstance(t, (str, bytes, bool, np.bool_)):
        raise ValueError(f"step t must be a number or an array of numbers, got {t!r}")
    kind = getattr(t, "dtype", None)
    if kind is None and not isinstance(t, (int, float, np.number)):
        try:
            kind = np.asarray(t).dtype  # a list or tuple: what numpy reads it as
        except (ValueError, TypeError, OverflowError):
            kind = None
    if kind is not None and getattr(kind, "kind", "f") not in "iufO":
        raise ValueError(f"step t must be a number or an array of numbers, got {t!r}")


def _only_value(values: Any) -> float:
    """The value of ``_values`` on a one-element array, as a Python float."""
    return float(np.asarray(values, dtype=np.float64).reshape(-1)[0])


def _to_plain(value: Any) -> Any:
    if isinstance(value, Schedule):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_to_plain(v) for v in value]
    return value


def _numeric_parameters(schedule: Schedule) -> list[tuple[str, float]]:
    """``(name, value)`` of each number among the fields, list items as ``name[i]``."""
    found: list[tuple[str, float]] = []
    for field in dataclasses.fields(schedule):  # type: ignore[arg-type]
        value = getattr(schedule, field.name)
        items = enumerate(value) if isinstance(value, tuple) else [(None, value)]
        for index, item in items:
            if isinstance(item, (int, float)) and not isinstance(item, bool):
                found.append((field.name if index is None else f"{field.name}[{index}]", item))
    return found


def _probe_steps(magnitudes: list[float]) -> FloatArray:
    """Steps 0, 1 and PROBE_HORIZON, and half of, just before and at each magnitude."""
    # Plain Python: a handful of numbers, where numpy's per-call overhead would dominate.
    marks = sorted({float(m) for m in magnitudes if 0 < m < PROBE_HORIZON})
    if len(marks) > MAX_PARAMETER_PROBES:
        stride = len(marks) / MAX_PARAMETER_PROBES
        marks = [marks[int(i * stride)] for i in range(MAX_PARAMETER_PROBES)]
    probes = {0.0, 1.0, PROBE_HORIZON}
    for mark in marks:
        probes.update((mark / 2, math.nextafter(mark, 0.0), mark))
    return np.array(sorted(probes), dtype=np.float64)


def _first_non_finite_step(schedule: Schedule, probes: FloatArray) -> float | None:
    """The first probe step whose value is not finite (or raises), None if there is none."""
    with np.errstate(all="ignore"):
        try:
            if np.isfinite(schedule._values(probes)).all():
                return None
        except ArithmeticError:
            pass
        # Rare: find the step, one at a time.
        for index in range(probes.size):
            try:
                if not np.isfinite(schedule._values(probes[index : index + 1])).all():
                    return float(probes[index])
            except ArithmeticError:
                return float(probes[index])
    return float(probes[-1])


def _extremeness(value: float) -> float:
    """How far a number is from 1 in orders of magnitude (0 counts as ordinary)."""
    return abs(math.log10(abs(value))) if value else 0.0


def per_cycle(index: FloatArray, fn: Callable[[FloatArray], Any]) -> Any:
    """``fn(index)`` for an array of whole numbers >= 0 (cycle or phase counts).

    Long arrays usually hold few distinct counts: ``fn`` then runs once per count on
    ``arange(max + 1)`` and the results are gathered, instead of running on every
    element. Same function, same inputs, so the same numbers either way. ``fn`` may
    return an array or a tuple of arrays.
    """
    if not index.size:
        return fn(index)
    low, high = index.min(), index.max()
    if not np.isfinite(high):
        # A count that overflowed (a huge step over a tiny step size): no table.
        return fn(index)
    low, high = int(low), int(high)
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
    try:
        finite = math.isfinite(float(value))
    except OverflowError:  # an int beyond float64
        finite = False
    if not finite:
        raise ValueError(f"{name} must be finite (a float64, below 1.8e308 in size), got {_show(value)}")
    return value.item() if isinstance(value, (np.integer, np.floating)) else value


def _show(value: Any) -> str:
    """``repr``, except for an int too long to print (Python refuses over 4300 digits)."""
    if isinstance(value, int) and value.bit_length() > 1024:
        return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    return repr(value)


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
    """A step count: kept as the int or float it was given, so that specs round-trip.

    A nonzero count is at least MIN_STEP_COUNT: schedules divide steps by their counts.
    """
    number = _check_number(name, value)
    if (strict and number <= minimum) or (not strict and number < minimum):
        relation = ">" if strict else ">="
        raise ValueError(f"{name} must be {relation} {minimum:g}, got {value!r}")
    if 0 < number < MIN_STEP_COUNT:
        allowed = f">= {MIN_STEP_COUNT:g}" if strict or minimum > 0 else f"0 or >= {MIN_STEP_COUNT:g}"
        raise ValueError(f"{name} must be {allowed} (steps are divided by it), got {value!r}")
    return number


def at_least(name: str, value: Any, minimum: float) -> float:
    """A finite number >= ``minimum``."""
    number = float(_check_number(name, value))
    if number < minimum:
        raise ValueError(f"{name} must be a finite number >= {minimum:g}, got {value!r}")
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
    """Assign validated values on a frozen dataclass from its ``_validate``."""
    for key, value in values.items():
        object.__setattr__(obj, key, value)
