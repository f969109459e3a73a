"""The error of a law carried beyond its proxies, measured, in the transfer's interval.

A power law fitted over proxies spanning a factor of 4 knows its own noise (the proxies'
intervals, the scatter about the line) but not whether the line holds further out. On ten
tuning ladders that ``bench_transfer`` does not use (``benchmarks/tune_transfer.py``: widths of
MLPs with SGD, a CNN's channels, a character LSTM and a sunspots LSTM, three batch-size and two
run-length ladders), the law's 80 % interval covered the target's own optimum 8x beyond the
largest proxy on 3 of 10; its errors there were -2.18 to +4.57 octaves. Read as a slope that
wanders beyond the proxies, the error left over by the law's own interval is a standard
deviation of :data:`EXTRAPOLATION_SD` octaves of LR* per octave of scale beyond the proxies' range.

:func:`widen` adds it to an interval in quadrature with the law's own (the two are independent:
one is the noise of the proxies' optima, the other how the line bends where no proxy was
trained), growing linearly with the octaves beyond the range; inside the proxies' range it adds
nothing. It is the same on both sides: the law erred high on 6 of the 10 tuning ladders and low
on 4, so no side is known.

What it does not know: five ladders of small models fix one number, not a law of its own; a
target whose optimum sits at a different kind of limit (a model that overfits its data at any
LR, the sunspots LSTM at 128 units, whose best LR was the smallest tried) weighs most in it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from lrlab.core.bracket import two_sided_z

__all__ = ["EXTRAPOLATION_SD", "MEASURED_OCTAVES", "TUNING_ERRORS", "added", "beyond", "widen"]

EXTRAPOLATION_SD = 0.613
"""Octaves of LR* (standard deviation) per octave of scale beyond the proxies' range, measured
by ``benchmarks/tune_transfer.py`` (docs/benchmarks.md, "Transfer tuning ladders")."""


MEASURED_OCTAVES = 3.0
"""How far beyond their proxies the tuning ladders' targets lay (8x): the error was measured
there; a target further out extrapolates its growth."""

TUNING_ERRORS = (1.53, 1.15)
"""The mean size of the error, in octaves, 8x beyond the proxies on the same ten tuning ladders:
the law's, and reusing the largest proxy's optimum (docs/benchmarks.md)."""


def beyond(scale: float, scales: Sequence[float]) -> float:
    """How many octaves ``scale`` lies outside the range of ``scales`` (0 inside it).

    >>> beyond(512, [16, 32, 64]), beyond(32, [16, 32, 64]), beyond(4, [16, 32, 64])
    (3.0, 0.0, 2.0)
    """
    low, high = min(scales), max(scales)
    if scale > high:
        return math.log2(scale / high)
    if scale < low:
        return math.log2(low / scale)
    return 0.0


def added(octaves: float, level: float = 0.8, sd: float = EXTRAPOLATION_SD) -> float:
    """The half-width, in octaves, that the extrapolation error alone has at ``level`` for a
    target ``octaves`` beyond the proxies: ``z * sd * octaves`` (0 inside their range).

    >>> round(added(1.0, sd=0.5), 3), added(0.0)
    (0.641, 0.0)
    """
    return two_sided_z(level) * sd * max(0.0, octaves)


def widen(
    lr: float, low: float, high: float, octaves: float, level: float = 0.8, sd: float = EXTRAPOLATION_SD
) -> tuple[float, float]:
    """The interval ``(low, high)`` around ``lr`` at ``level`` with the extrapolation error of
    ``octaves`` beyond the proxies added in quadrature on each side: a half-width of ``h``
    octaves becomes ``sqrt(h**2 + (z * sd * octaves)**2)``, ``z`` the normal quantile of the level.

    >>> low, high = widen(1.0, 0.5, 2.0, 0.0)
    >>> (low, high)
    (0.5, 2.0)
    >>> low, high = widen(1.0, 0.5, 2.0, 3.0, sd=0.5)
    >>> round(math.log2(high), 3), round(-math.log2(low), 3)
    (2.167, 2.167)
    """
    if octaves <= 0 or sd <= 0:
        return low, high
    extra = added(octaves, level, sd)
    below = math.hypot(math.log2(lr / low), extra) if low > 0 else math.inf
    above = math.hypot(math.log2(high / lr), extra)
    return (lr * 2**-below if math.isfinite(below) else 0.0), lr * 2**above
