"""Where the optimum learning rate lies, from losses measured at a few LRs.

An optimum read off a grid is only as good as the grid: when the best LR tried is the
largest (or the smallest) one, the optimum may lie beyond it, and nothing in the numbers
says by how much. This module decides which LR to try next until the best one has a worse
(or diverged) LR on both sides (:func:`next_lrs`, :func:`bracket`), then fits a quadratic in
log LR over the bracket and bootstraps it over seeds for an interval (:func:`fit_optimum`).
:func:`fit_power_law` carries optima measured at small scales (widths, run lengths, batch
sizes) to a larger one: a straight line in log-log, weighted by each optimum's interval.

Losses are "lower is better" (pass ``-metric`` for a metric to maximize); a diverged run's
loss is NaN or infinite. ``losses[i]`` holds one value per seed for ``lrs[i]``, seed ``j``
in column ``j`` of every LR (the seeds are paired: seed ``j`` draws the same weights and
batches at every LR), so a bootstrap resamples seeds, not single runs. Torch-free: numpy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "LEVEL",
    "Optimum",
    "PowerLaw",
    "bracket",
    "fit_optimum",
    "fit_power_law",
    "grid_factor",
    "mean_losses",
    "next_lrs",
    "two_sided_z",
]

LEVEL = 0.8
"""The intervals' coverage: 80%, a range a user acts on, not a significance test."""

DEFAULT_FACTOR = 3.0  # the step to extend by when one LR alone gives no grid spacing


@dataclass(frozen=True)
class Optimum:
    """The optimum LR of one configuration (a schedule family, a proxy model), with how it was found.

    ``lr`` is the vertex of a quadratic in log LR fitted over the best tried LR and its
    neighbours (the best tried LR itself when no fit is possible); ``low``/``high`` bound it
    at ``level`` (a bootstrap over seeds, never narrower than the grid can resolve).
    ``bracketed`` says the best tried LR has a worse or diverged LR on both sides; otherwise
    ``edge`` says which side was left open and the interval runs to 0 or infinity there.
    """

    lr: float
    low: float
    high: float
    level: float
    bracketed: bool
    edge: str | None
    best_lr: float
    lrs: tuple[float, ...]
    losses: tuple[tuple[float, ...], ...]
    reason: str

    @property
    def seeds(self) -> int:
        """The most seeds any LR of the bracket trained."""
        return max((len(row) for row in self.losses), default=0)

    @property
    def width(self) -> float:
        """``high / low``: how many times wider than a point the interval is (inf when open)."""
        return self.high / self.low if self.low > 0 else math.inf


@dataclass(frozen=True)
class PowerLaw:
    """``log lr* = intercept + slope * log scale``, fitted over proxies, predicted at ``target``.

    ``lr`` and ``low``/``high`` are the prediction and its interval at ``level``; ``slope_low``
    and ``slope_high`` bound the slope. ``transfers_unchanged`` is True when the slope's interval
    contains 0: the proxies cannot tell the optimum moves with scale. ``inflation`` (>= 1) is
    the factor the proxies' intervals were widened by because they scatter about the line more
    than their intervals allow.
    """

    slope: float
    slope_low: float
    slope_high: float
    intercept: float
    target: float
    lr: float
    low: float
    high: float
    level: float
    inflation: float

    @property
    def transfers_unchanged(self) -> bool:
        return self.slope_low <= 0.0 <= self.slope_high

    def predict(self, scale: float) -> float:
        """The fitted line's optimum at ``scale`` (no interval)."""
        return math.exp(self.intercept + self.slope * math.log(scale))


def _sorted(lrs: Sequence[float], losses: Sequence[Sequence[float]]) -> tuple[np.ndarray, list[list[float]]]:
    if len(lrs) != len(losses):
        raise ValueError(f"lrs and losses differ in length ({len(lrs)} and {len(losses)})")
    if not lrs:
        raise ValueError("no LRs: pass at least one LR with its losses")
    for lr in lrs:
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"an LR must be a positive number, got {lr!r}")
    order = np.argsort(np.asarray(lrs, dtype=float), kind="stable")
    if len(set(lrs)) != len(lrs):
        raise ValueError("an LR appears twice: merge its seeds into one row")
    rows = [[float(v) for v in losses[i]] for i in order]
    if any(not row for row in rows):
        raise ValueError("an LR has no losses: give one per seed trained")
    return np.asarray(lrs, dtype=float)[order], rows


def mean_losses(losses: Sequence[Sequence[float]]) -> np.ndarray:
    """The mean loss over seeds per LR; infinite where any seed diverged (NaN or inf).

    >>> mean_losses([[1.0, 3.0], [0.5, float("nan")]]).tolist()
    [2.0, inf]
    """
    out = np.empty(len(losses))
    for i, row in enumerate(losses):
        values = np.asarray(row, dtype=float)
        out[i] = float(values.mean()) if values.size and np.all(np.isfinite(values)) else math.inf
    return out


def grid_factor(lrs: Sequence[float]) -> float:
    """The grid's step as a factor: the geometric mean ratio of neighbouring LRs (3 for one LR).

    >>> round(grid_factor([0.01, 0.03, 0.09]), 6)
    3.0
    """
    values = np.sort(np.asarray(lrs, dtype=float))
    if values.size < 2:
        return DEFAULT_FACTOR
    return float(np.exp(np.mean(np.diff(np.log(values)))))


def next_lrs(
    lrs: Sequence[float], losses: Sequence[Sequence[float]], factor: float | None = None
) -> list[float]:
    """The LRs to train next so that the best one gets a worse LR on both sides.

    ``[]`` when the best LR already has a worse (or diverged) neighbour on each side; else
    one LR a ``factor`` (the grid's own step by default) beyond the open edge: above the
    largest when it is (one of) the best, below the smallest when it is. When every LR
    diverged, the next try is below the smallest.

    >>> next_lrs([0.01, 0.03, 0.1], [[2.0], [1.0], [0.5]], factor=3)
    [0.30000000000000004]
    >>> next_lrs([0.01, 0.03, 0.1], [[2.0], [1.0], [float("nan")]])
    []
    """
    grid, rows = _sorted(lrs, losses)
    step = float(factor) if factor is not None else grid_factor(grid)
    if not step > 1.0:
        raise ValueError(f"factor must be larger than 1, got {step:g}")
    means = mean_losses(rows)
    if not np.isfinite(means).any():
        return [float(grid[0] / step)]
    best = float(np.min(means))
    out = []
    if means[0] == best:
        out.append(float(grid[0] / step))
    if means[-1] == best:
        out.append(float(grid[-1] * step))
    return out


def bracket(
    evaluate: Callable[[list[float]], Mapping[float, Sequence[float]]],
    lrs: Sequence[float],
    *,
    factor: float | None = None,
    max_extra: int = 4,
    level: float = LEVEL,
) -> Optimum:
    """Train ``lrs`` through ``evaluate``, extend outward until the optimum is bracketed or
    ``max_extra`` more LRs were spent, and fit it (:func:`fit_optimum`).

    ``evaluate(new_lrs)`` trains those LRs with every seed and returns ``{lr: [loss per seed]}``.
    The grid's step is fixed by the first ``lrs`` (or ``factor``), so the extensions continue it.
    """
    if max_extra < 0:
        raise ValueError(f"max_extra must be 0 or more, got {max_extra}")
    step = float(factor) if factor is not None else grid_factor(lrs)
    table: dict[float, list[float]] = {float(k): list(v) for k, v in evaluate(list(lrs)).items()}
    spent = 0
    while True:
        wanted = [lr for lr in next_lrs(list(table), list(table.values()), step) if lr not in table]
        if not wanted or spent + len(wanted) > max_extra:
            break
        table.update({float(k): list(v) for k, v in evaluate(wanted).items()})
        spent += len(wanted)
    grid = sorted(table)
    optimum = fit_optimum(grid, [table[lr] for lr in grid], level=level)
    if not optimum.bracketed and optimum.edge is not None:
        reason = f"{optimum.reason}; {spent} more LR(s) were tried, the most allowed ({max_extra})"
        optimum = Optimum(**{**optimum.__dict__, "reason": reason})
    return optimum


ASYMMETRIC_POINTS = 5
"""A window of this many LRs is fitted with a curvature of its own on each side of the vertex:
a loss against log LR is steeper above the optimum (towards divergence) than below, and one
parabola over five LRs pulls its vertex toward the gentle side (on simulated curves four times
steeper above, an 80% interval covered the optimum 0-15% of the time; the two-sided fit 85-94%)."""


def _vertices(xs: np.ndarray, means: np.ndarray) -> np.ndarray:
    """The fitted vertex of each row of ``means`` (redraws x LRs) over the LRs at ``xs``.

    Five or more LRs: ``c + a (x - v)^2`` left of ``v`` and ``c + b (x - v)^2`` right of it,
    ``a, b > 0``, least squares, ``v`` searched on a grid over the window and refined. Fewer:
    the parabola through the best LR and its two neighbours. A row no fit opens upward for
    keeps its best LR.
    """
    means = np.atleast_2d(np.asarray(means, dtype=float))
    if len(xs) >= ASYMMETRIC_POINTS:
        return _two_sided(xs, means)
    if len(xs) < 3:  # two LRs (the other neighbour diverged or failed): no curvature to read
        return xs[np.argmin(means, axis=1)].astype(float)
    return _parabola(xs, means)


def _parabola(xs: np.ndarray, means: np.ndarray) -> np.ndarray:
    coefficients = means @ np.linalg.pinv(np.vander(xs, 3)).T  # a, b, c per row
    a, b = coefficients[:, 0], coefficients[:, 1]
    fallback = xs[np.argmin(means, axis=1)]
    # a curvature lost in rounding (a straight line through three points) is no curvature
    flat = 1e-9 * (1.0 + np.abs(means).max(axis=1)) / (xs[-1] - xs[0]) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(a > flat, -b / (2 * a), fallback)


def _two_sided(xs: np.ndarray, means: np.ndarray) -> np.ndarray:
    span = xs[-1] - xs[0]
    best = _scan(xs, means, np.linspace(xs[0], xs[-1], 161))
    if len(means) > 1:  # redraws for an interval: a step of span / 160 is fine enough
        return best
    fine = np.clip(best[0] + np.linspace(-span / 160, span / 160, 81), xs[0], xs[-1])
    return _scan(xs, means, fine)  # the point estimate: a second, finer scan around the first


def _scan(xs: np.ndarray, means: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """For each row, the candidate vertex with the least squared error (curvatures > 0)."""
    best_error = np.full(len(means), np.inf)
    best_x = xs[np.argmin(means, axis=1)].astype(float)
    for v in candidates:
        d = xs - v
        design = np.stack(
            [np.ones_like(xs), np.where(d < 0, d * d, 0.0), np.where(d >= 0, d * d, 0.0)], axis=1
        )
        coefficients = means @ np.linalg.pinv(design).T
        residual = means - coefficients @ design.T
        error = np.where(
            (coefficients[:, 1] > 0) & (coefficients[:, 2] > 0), (residual**2).sum(axis=1), np.inf
        )
        better = error < best_error
        best_error, best_x = np.where(better, error, best_error), np.where(better, v, best_x)
    return best_x


def _window(means: np.ndarray, best: int) -> list[int]:
    """The LRs the fit reads: the best and two finite neighbours on each side (a diverged LR
    ends the window on its side), for the two-sided fit; short of five, the best and its
    nearest finite neighbours only (a parabola is fitted to three)."""
    out = [best]
    for direction in (-1, 1):
        i = best + direction
        while 0 <= i < len(means) and abs(i - best) <= 2 and math.isfinite(means[i]):
            out.append(i)
            i += direction
    out.sort()
    if len(out) < ASYMMETRIC_POINTS and len(out) > 3:
        near = [i for i in out if abs(i - best) <= 1]
        out = near if len(near) == 3 else out[:3] if out[0] < best - 1 else out[-3:]
    return out


def fit_optimum(
    lrs: Sequence[float],
    losses: Sequence[Sequence[float]],
    *,
    level: float = LEVEL,
    n_boot: int = 2000,
    seed: int = 0,
) -> Optimum:
    """The optimum LR of one configuration from its losses, with an interval at ``level``.

    The fit in log LR (:func:`_vertices`: a curvature of its own on each side over five LRs, a
    parabola over three) reads the best tried LR and up to two finite neighbours on each
    side, and its vertex is kept between the best LR's two neighbours (where the bracket says
    the optimum is). The interval resamples seeds (paired across LRs) and refits
    (a resample's vertex may leave the bracket, not the fitted window);
    it is never narrower than a quarter of the grid's step on each side, and with one seed it
    is the grid's resolution (half a step each side). Over three LRs it always reaches the best
    tried LR: a parabola through three points cannot tell a steeper side from a shifted vertex. Unbracketed: the best tried LR, with the
    interval open on the side left unexplored.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level:g}")
    grid, rows = _sorted(lrs, losses)
    means = mean_losses(rows)
    frozen = (tuple(float(v) for v in grid), tuple(tuple(r) for r in rows))
    if not np.isfinite(means).any():
        reason = f"every LR diverged ({grid[0]:.3g}..{grid[-1]:.3g}): try smaller LRs"
        return Optimum(math.nan, math.nan, math.nan, level, False, None, math.nan, *frozen, reason)
    best = int(np.argmin(means))
    best_lr = float(grid[best])
    edge = "high" if best == len(grid) - 1 else "low" if best == 0 else None
    if edge is not None:
        return _open(grid, means, best, edge, level, frozen)
    x = np.log(grid)
    window = _window(means, best)
    step = float(np.mean(np.diff(x[window]))) if len(window) > 1 else float(np.log(grid_factor(grid)))
    low_x, high_x = float(x[best - 1]), float(x[best + 1])
    vertex = _vertex(x, means, window, best, low_x, high_x)
    lo, hi = _seed_interval(
        x, rows, window, best, (float(x[window[0]]), float(x[window[-1]])), level, n_boot, seed
    )
    seeds = min(len(rows[i]) for i in window)
    floor = 0.5 * step if seeds < 2 else 0.25 * step
    lo, hi = min(lo, vertex - floor), max(hi, vertex + floor)
    if len(window) < ASYMMETRIC_POINTS:  # three LRs cannot tell a steeper side from a shifted vertex:
        lo, hi = min(lo, float(x[best])), max(hi, float(x[best]))  # the best tried LR stays in the interval
    how = "one seed: the interval is the grid's resolution" if seeds < 2 else f"{seeds} seeds, bootstrapped"
    fit = (
        f"two half-parabolas in log LR over {len(window)} LRs" if len(window) >= ASYMMETRIC_POINTS
        else f"a parabola in log LR over {len(window)} LRs" if len(window) >= 3
        else "the better of the 2 LRs with a loss (no curve through two points)"
    )  # fmt: skip
    reason = f"bracketed: {grid[best - 1]:.3g} and {grid[best + 1]:.3g} are worse than {best_lr:.3g}; {fit} ({how})"
    return Optimum(math.exp(vertex), math.exp(lo), math.exp(hi), level, True, None, best_lr, *frozen, reason)


def _vertex(x: np.ndarray, means: np.ndarray, window: list[int], best: int, low: float, high: float) -> float:
    """The fitted vertex (:func:`_vertices`) kept inside the bracket and inside the LRs the fit
    read: never beyond the last finite LR toward a neighbour that diverged or failed, where
    no run measured a loss."""
    vertex = float(_vertices(x[window], means[window][None, :])[0])
    return float(min(max(vertex, low, x[window[0]]), high, x[window[-1]]))


def _seed_interval(
    x: np.ndarray,
    rows: list[list[float]],
    window: list[int],
    best: int,
    bounds: tuple[float, float],
    level: float,
    n_boot: int,
    seed: int,
) -> tuple[float, float]:
    """Percentiles of the vertex when each LR's mean loss is redrawn with the seed noise.

    The noise is the within-LR variance over seeds pooled across the window (``sum(k - 1)``
    degrees of freedom, not the handful of seeds one LR has), widened to a Student t for those
    degrees of freedom: resampling two or three seeds alone gives intervals that cover far less
    than they claim. Each redrawn vertex stays inside the fitted window (a redraw may move the
    best LR, so the point estimate's bracket does not bound them)."""
    counts = np.asarray([len(rows[i]) for i in window])
    dof = int(np.sum(counts - 1))
    if dof < 1 or n_boot < 1:
        centre = _vertex(x, mean_losses(rows), window, best, *bounds)
        return centre, centre
    pooled = sum(float(np.sum((np.asarray(rows[i]) - np.mean(rows[i])) ** 2)) for i in window) / dof
    rng = np.random.default_rng(seed)
    scale = np.sqrt(pooled / counts) * _t_over_z(level, dof)
    draws = (
        np.asarray([np.mean(rows[i]) for i in window]) + rng.standard_normal((n_boot, len(window))) * scale
    )
    vertices = np.clip(_vertices(x[window], draws), *bounds)
    tail = (1 - level) / 2 * 100
    return float(np.percentile(vertices, tail)), float(np.percentile(vertices, 100 - tail))


def _t_over_z(level: float, dof: int) -> float:
    """How much wider a Student t interval with ``dof`` degrees of freedom is than a normal one."""
    from scipy.stats import t

    return float(t.ppf((1 + level) / 2, dof)) / two_sided_z(level)


def _open(
    grid: np.ndarray, means: np.ndarray, best: int, edge: str, level: float, frozen: tuple[tuple, tuple]
) -> Optimum:
    best_lr = float(grid[best])
    if len(grid) == 1:
        reason = f"only one LR tried ({best_lr:.3g}): the optimum may lie on either side"
        return Optimum(best_lr, 0.0, math.inf, level, False, edge, best_lr, *frozen, reason)
    if edge == "high":
        reason = (
            f"not bracketed: the best LR was the largest tried ({best_lr:.3g}); the optimum may lie higher"
        )
        return Optimum(best_lr, best_lr, math.inf, level, False, edge, best_lr, *frozen, reason)
    reason = f"not bracketed: the best LR was the smallest tried ({best_lr:.3g}); the optimum may lie lower"
    return Optimum(best_lr, 0.0, best_lr, level, False, edge, best_lr, *frozen, reason)


def two_sided_z(level: float) -> float:
    """The normal quantile of a two-sided interval at ``level`` (1.2816 at 80%)."""
    from statistics import NormalDist

    return NormalDist().inv_cdf((1 + level) / 2)


def fit_power_law(
    scales: Sequence[float],
    optima: Sequence[Optimum],
    target: float,
    *,
    level: float = LEVEL,
    n_boot: int = 2000,
    seed: int = 0,
) -> PowerLaw:
    """Fit ``log lr* = a + slope * log scale`` over the proxies' optima and predict at ``target``.

    Each proxy weighs by its interval (read as a normal in log LR at its ``level``). When the
    proxies scatter about the line more than their intervals allow (chi-square over degrees
    of freedom above 1), the intervals are widened by its square root (the Birge ratio), so
    the prediction's interval covers a curve as well as noise. The interval comes from a
    parametric bootstrap: each proxy's log optimum redrawn from its normal, the line refitted.
    Needs three or more bracketed proxies at distinct scales.
    """
    if len(scales) != len(optima):
        raise ValueError(f"scales and optima differ in length ({len(scales)} and {len(optima)})")
    if len(scales) < 3:
        raise ValueError(f"a slope needs three or more proxies, got {len(scales)}: add a proxy")
    if len(set(scales)) != len(scales) or any(not (math.isfinite(s) and s > 0) for s in scales):
        raise ValueError(f"proxy scales must be distinct positive numbers, got {list(scales)}")
    if not (math.isfinite(target) and target > 0):
        raise ValueError(f"target must be a positive number, got {target!r}")
    for scale, optimum in zip(scales, optima):
        if not optimum.bracketed:
            raise ValueError(
                f"the optimum at {scale:g} is not bracketed ({optimum.reason}): widen its LR grid"
            )
    x = np.log(np.asarray(scales, dtype=float))
    y = np.log([o.lr for o in optima])
    sigma = np.asarray([(math.log(o.high) - math.log(o.low)) / (2 * two_sided_z(o.level)) for o in optima])
    sigma = np.maximum(sigma, 1e-6)
    slope, intercept = _weighted_line(x, y, sigma)
    dof = len(x) - 2
    chi2 = float(np.sum(((y - (intercept + slope * x)) / sigma) ** 2))
    inflation = max(1.0, math.sqrt(chi2 / dof)) if dof > 0 else 1.0
    sigma = sigma * inflation
    rng = np.random.default_rng(seed)
    draws = y + rng.standard_normal((n_boot, len(y))) * sigma
    fits = np.asarray([_weighted_line(x, row, sigma) for row in draws])
    at_target = fits[:, 1] + fits[:, 0] * math.log(target)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(at_target, [tail, 100 - tail])
    slope_lo, slope_hi = np.percentile(fits[:, 0], [tail, 100 - tail])
    centre = intercept + slope * math.log(target)
    return PowerLaw(
        float(slope), float(slope_lo), float(slope_hi), float(intercept), float(target), math.exp(centre),
        math.exp(min(float(lo), centre)), math.exp(max(float(hi), centre)), level, inflation,
    )  # fmt: skip


def _weighted_line(x: np.ndarray, y: np.ndarray, sigma: np.ndarray) -> tuple[float, float]:
    """Slope and intercept of the least-squares line weighted by ``1 / sigma**2``."""
    w = 1.0 / sigma**2
    mx, my = np.sum(w * x) / np.sum(w), np.sum(w * y) / np.sum(w)
    slope = np.sum(w * (x - mx) * (y - my)) / np.sum(w * (x - mx) ** 2)
    return float(slope), float(my - slope * mx)
