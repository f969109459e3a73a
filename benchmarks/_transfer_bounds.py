"""bench_transfer's bound on its accuracy bars from the proxies' own precision.

The law's own 80 % interval at the target is how far the proxies' optima, measured with a few
seeds each, leave the prediction uncertain once their straight line is carried 8x beyond them.
Read as a normal spread in octaves (one standard deviation below the prediction, one above),
it says how close a prediction from proxies measured this precisely could come to the
target's optimum *if the law held exactly there*: an upper estimate of what any predictor
that carries these proxies' slope can reach. More seeds narrow it as one over their square
root, at a cost that grows with them; that is the trade between the accuracy bars and the
cost bar, measured per ladder.

Nothing here trains or decides: it reads a cached row of ``bench_transfer``.
"""

from __future__ import annotations

import itertools
import math
from statistics import NormalDist
from typing import Any

from lrlab.core.bracket import two_sided_z

Z80 = two_sided_z(0.8)  # an 80 % two-sided interval's half-width, in standard deviations
_STD = NormalDist()


def spread(row: dict[str, Any]) -> tuple[float, float]:
    """Standard deviations in octaves of the law's prediction at the target, below and above
    it, read off the law's own 80 % interval."""
    low, high = row["law_interval"]
    centre = row["predicted"]
    return math.log2(centre / low) / Z80, math.log2(high / centre) / Z80


def within_chance(below: float, above: float, factor: float = 1.5) -> float:
    """The chance that a prediction spread ``below``/``above`` octaves (a split normal around
    the truth) lands within ``factor`` of it."""
    bar = math.log2(factor)
    return _STD.cdf(bar / above) - _STD.cdf(-bar / below)


def seeds_for(row: dict[str, Any], seeds: int, factor: float = 1.5, chance: float = 0.9) -> float:
    """Seeds per proxy for a prediction within ``factor`` with ``chance``, the spread narrowing
    as one over the square root of the seeds (``seeds``: what the proxies had)."""
    below, above = spread(row)
    if within_chance(below, above, factor) >= chance:
        return float(seeds)
    lo, hi = 1e-6, 1.0  # the spread's scale that reaches ``chance``: bisection, monotone in the scale
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if within_chance(mid * below, mid * above, factor) >= chance else (lo, mid)
    return seeds / lo**2


def mean_abs(below: float, above: float) -> float:
    """The mean absolute value of a split normal spread ``below``/``above`` about 0."""
    return math.sqrt(2 / math.pi) * (below + above) / 2


def mean_miss(row: dict[str, Any]) -> float:
    """The mean size in octaves of an exact law's miss (:func:`mean_abs` of its spread)."""
    return mean_abs(*spread(row))


def gap_chance(row: dict[str, Any], gaps: dict[float, float], bar: float, points: int = 4001) -> float:
    """The chance that a prediction spread as ``spread(row)`` around the target's grid optimum
    ends within ``bar`` of the grid's best, ``gaps`` being the gap measured at each LR trained
    at the target (inf where a seed diverged). Between two LRs the gap is interpolated in log
    LR (the nearer one's where either diverged); beyond the LRs tried it is the nearest one's,
    which only flatters the chance (further out is worse)."""
    below, above = spread(row)
    xs = sorted((math.log2(lr), g) for lr, g in gaps.items())
    centre = math.log2(row["grid"]["lr"])
    total = hit = 0.0
    for i in range(points):
        z = -6 + 12 * i / (points - 1)
        weight = _STD.pdf(z)
        total += weight
        hit += weight * (_interpolate(xs, centre + z * (above if z > 0 else below)) <= bar)
    return hit / total


def _interpolate(xs: list[tuple[float, float]], x: float) -> float:
    if x <= xs[0][0]:
        return xs[0][1]
    if x >= xs[-1][0]:
        return xs[-1][1]
    for (x0, g0), (x1, g1) in itertools.pairwise(xs):
        if x0 <= x <= x1:
            if not (math.isfinite(g0) and math.isfinite(g1)):
                return g0 if x - x0 <= x1 - x else g1
            return g0 + (g1 - g0) * (x - x0) / (x1 - x0)
    raise AssertionError("unreachable: x lies between the first and last LR")
