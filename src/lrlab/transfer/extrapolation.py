"""The error of a law carried beyond its proxies, measured, in the transfer's interval.

A power law fitted over proxies spanning a factor of 4 knows its own noise (the proxies'
intervals, the scatter about the line) but not whether the line holds further out. On five
tuning ladders that ``bench_transfer`` does not use (``benchmarks/tune_transfer.py``: widths of
an MLP with SGD, a character LSTM and a sunspots LSTM, a batch-size and a run-length ladder),
the law's 80 % interval covered the target's own optimum 8x beyond the largest proxy on 1 of 5;
its errors there were +0.49 to +4.57 octaves. Read as a slope that wanders beyond the proxies,
the error left over by the law's own interval is a standard deviation of
:data:`EXTRAPOLATION_SD` octaves of LR* per octave of scale beyond the proxies' range.

:func:`widen` adds it to an interval in quadrature with the law's own (the two are independent:
one is the noise of the proxies' optima, the other how the line bends where no proxy was
trained), growing linearly with the octaves beyond the range; inside the proxies' range it adds
nothing. It is the same on both sides: on the tuning ladders the law erred high, on the
benchmark's six in both directions, so no side is known.

What it does not know: five ladders of small models fix one number, not a law of its own; a
target whose optimum sits at a different kind of limit (a model that overfits its data at any
LR, the sunspots LSTM at 128 units, whose best LR was the smallest tried) weighs most in it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

__all__ = ["EXTRAPOLATION_SD", "beyond", "widen"]

EXTRAPOLATION_SD = 0.736
"""Octaves of LR* (standard deviation) per octave of scale beyond the proxies' range, measured
by ``benchmarks/tune_transfer.py`` (docs/benchmarks.md, "Transfer tuning ladders")."""


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


def widen(
    lr: float, low: float, high: float, octaves: float, level: float = 0.8, sd: float = EXTRAPOLATION_SD
) -> tuple[float, float]:
    """The interval ``(low, high)`` around ``lr`` at ``level`` with the extrapolation error of
    ``octaves`` beyond the proxies added in quadrature on each side: a half-width of ``h``
    octaves becomes ``sqrt(h**2 + (z * sd * octaves)**2)``, ``z`` the normal quantile of the level.

    >>> low, high = widen(1.0, 0.5, 2.0, 0.0)
    >>> (low, high)
    (0.5, 2.0)
    >>> low, high = widen(1.0, 0.5, 2.0, 3.0)
    >>> round(math.log2(high), 3), round(-math.log2(low), 3)
    (3.001, 3.001)
    """
    if octaves <= 0 or sd <= 0:
        return low, high
    z = NormalDist().inv_cdf(0.5 + level / 2)
    extra = z * sd * octaves
    below = math.hypot(math.log2(lr / low), extra) if low > 0 else math.inf
    above = math.hypot(math.log2(high / lr), extra)
    return (lr * 2**-below if math.isfinite(below) else 0.0), lr * 2**above
