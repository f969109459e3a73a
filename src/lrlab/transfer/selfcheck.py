"""The checks a transfer runs on its own proxies before a user trusts the prediction.

**The self-check (leave one out).** The power law is fitted on every proxy but the one
nearest the target, and predicts that one; its own bracketed optimum says how far off the
law was, one span of the scale beyond what it was fitted on. A miss inside the two
intervals is noise the law's interval already carries. A miss beyond them is a law that
bends, and the target lies several such spans further: the interval is widened on the
side of the miss (:func:`self_check`, the rule and why in its docstring).

**The stability check.** A proxy that diverged at an LR at or below the prediction says the
predicted LR is where the proxies could not train (:func:`stability_check`). The prediction
is flagged, not capped (why in the docstring).

Pure and torch-free: reads the proxies' :class:`~lrlab.core.bracket.Optimum` (their LRs,
losses per seed with NaN where a run diverged, and intervals) and the fitted law.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lrlab.core.bracket import Optimum, PowerLaw, two_sided_z
from lrlab.formatting import num

__all__ = ["Check", "SelfCheck", "Stability", "self_check", "stability_check"]


@dataclass(frozen=True)
class Check:
    """One check of a transfer: its ``name``, whether it ``passed``, and its line in words."""

    name: str
    passed: bool
    words: str


@dataclass(frozen=True)
class SelfCheck:
    """The law fitted without the proxy nearest the target (``left_out``), tested on it.

    ``predicted`` (``predicted_low``..``predicted_high``) is what the law fitted on
    ``fitted_on`` (with ``slope``) said at ``left_out``; ``measured`` (``measured_low``..``measured_high``) is
    that proxy's own optimum. ``miss`` is ``log2(measured / predicted)`` in octaves (signed),
    ``allowed`` the octaves the two intervals together allow, ``excess`` the part of the miss
    beyond them (0 when they explain it). ``span`` is the
    octaves of scale the law was carried over (from the nearest fitted proxy to ``left_out``),
    ``distance`` the octaves of scale from ``left_out`` to the target, and ``widening`` the
    octaves the target's interval is widened by on ``side`` (``excess / span * distance``).
    ``law_interval`` is the fitted law's interval, ``interval`` the interval after the check.
    """

    left_out: float
    fitted_on: tuple[float, ...]
    slope: float
    predicted: float
    predicted_low: float
    predicted_high: float
    measured: float
    measured_low: float
    measured_high: float
    miss: float
    allowed: float
    excess: float
    span: float
    distance: float
    widening: float
    side: str | None
    target: float
    law_lr: float
    law_interval: tuple[float, float]
    interval: tuple[float, float]
    level: float

    @property
    def passed(self) -> bool:
        """Whether the left-out proxy's optimum lies where the intervals allow (no widening)."""
        return self.excess <= 0.0

    @property
    def ratio(self) -> float:
        """``predicted / measured``: how far off the law was at the left-out proxy, as a factor."""
        return self.predicted / self.measured

    @property
    def widened(self) -> bool:
        """Whether the target's interval is wider than the law's own."""
        return self.interval != self.law_interval

    def widen(self, scale: float, lr: float, low: float, high: float) -> tuple[float, float]:
        """The interval ``(low, high)`` of the law's ``lr`` at ``scale`` after the check: widened by
        ``excess / span`` octaves per octave of scale beyond ``left_out`` (0 on the proxies' side)."""
        beyond = math.log2(scale / self.left_out) * (1.0 if self.target > self.left_out else -1.0)
        octaves = self.excess / self.span * max(0.0, beyond) if self.span > 0 else 0.0
        if octaves <= 0 or self.side is None:
            return low, high
        if self.side == "high":
            return low, max(high, lr * 2**octaves)
        return min(low, lr * 2**-octaves), high

    def sentence(self, axis: str) -> str:
        """The check in words: what the law fitted on the others said, what was measured, and
        what it did to the target's interval."""
        fitted = " and ".join(num(s) for s in self.fitted_on) if len(self.fitted_on) == 2 else (
            ", ".join(num(s) for s in self.fitted_on)
        )  # fmt: skip
        head = (
            f"self-check: the law fitted on {axis} {fitted} predicted {num(self.left_out)}'s optimum at "
            f"x{num(self.ratio, 2)} of what {num(self.left_out)} measured ({num(self.predicted, 3)} against "
            f"{num(self.measured, 3)}, {self.miss:+.2f} octaves)"
        )
        if self.passed:
            return f"{head}: within the two {self.level:.0%} intervals, so the law's interval stands"
        bent = (
            f"{head}: the law bends, {self.excess:.2f} octaves beyond the two {self.level:.0%} intervals over "
            f"{self.span:.2f} octaves of {axis}; carried {self.distance:.2f} octaves further to the target"
        )
        direction = "upward" if self.side == "high" else "downward"
        if not self.widened:
            return (
                f"{bent}, {self.widening:.2f} octaves {direction}, which the law's own interval already spans"
            )
        low, high = self.interval
        return (
            f"{bent}, the interval is widened {direction} by {self.widening:.2f} octaves, to {num(low, 3)} to "
            f"{num(high, 3)} (the law's own: {num(self.law_interval[0], 3)} to {num(self.law_interval[1], 3)})"
        )

    def check(self, axis: str) -> Check:
        return Check("self-check", self.passed, self.sentence(axis))


def _sigmas(optima: Sequence[Optimum]) -> np.ndarray:
    """Each optimum's interval read as a normal in log LR (as ``fit_power_law`` reads it)."""
    z = two_sided_z(optima[0].level)
    return np.maximum([(math.log(o.high) - math.log(o.low)) / (2 * z) for o in optima], 1e-6)


def _line_at(x: np.ndarray, y: np.ndarray, sigma: np.ndarray, at: float) -> tuple[float, float, float]:
    """The weighted least-squares line through ``(x, y)`` at ``at``, its standard error there
    (the proxies' own uncertainty propagated; two points: the line through them), its slope."""
    w = 1.0 / sigma**2
    mean_x = float(np.sum(w * x) / np.sum(w))
    mean_y = float(np.sum(w * y) / np.sum(w))
    sxx = float(np.sum(w * (x - mean_x) ** 2))
    slope = float(np.sum(w * (x - mean_x) * (y - mean_y))) / sxx
    value = mean_y + slope * (at - mean_x)
    return value, math.sqrt(1.0 / float(np.sum(w)) + (at - mean_x) ** 2 / sxx), slope


def self_check(scales: Sequence[float], optima: Sequence[Optimum], law: PowerLaw) -> SelfCheck:
    """Leave out the proxy nearest the target, fit the law on the others, predict it.

    The miss ``d = log measured - log predicted`` is compared with the two intervals together:
    the prediction's (the others' intervals propagated through the line) and the left-out
    proxy's own on the side facing the prediction, as independent normals at the law's level
    (``z * sqrt(sd_pred**2 + sd_measured**2)``). What lies beyond is ``excess``; the rest is
    noise the law's interval already carries. ``excess`` was found over ``span`` octaves of
    scale; the target lies ``distance`` octaves beyond the left-out proxy, so the law may be off
    there by ``excess / span * distance`` (``widening``) in the direction it missed.

    The rule, and why:

    - **Linear in the distance.** A miss measured over one span is read as a rate per octave
      of scale and carried at that rate. It is the least a bend can do: a curvature in log-log
      would grow faster than linearly, so this widening is a floor, not a bound, and the
      words say the law bent.
    - **The bigger of the two, not the sum in quadrature.** With three proxies, the scatter
      the law's fit widens its interval by (the Birge ratio, :func:`~lrlab.core.bracket.fit_power_law`)
      is the same statistic as this miss: a line through three points has one residual, and its
      chi-square is ``d**2`` over ``d``'s variance. The law's interval already grows with the miss,
      read as noise; this reads it as a bend. Two readings of one measurement are not two
      independent errors, so adding them in quadrature would count the miss twice: the interval
      is the wider of the two.
    - **On the side of the miss.** A miss beyond the intervals at their level is not a sign
      flipped by noise, and a bend carries on the way it turned: a quadratic in log scale that
      puts the largest proxy above the line of the two smaller ones also puts the target above
      the line of all three. The other side keeps the law's interval.
    - **Only beyond the intervals.** A miss the intervals explain widens nothing: the law's
      interval already holds that noise. No threshold is chosen: the intervals' own level is.
    """
    if len(scales) != len(optima) or len(scales) < 3:
        raise ValueError(f"a self-check needs three or more proxies with optima, got {len(scales)}")
    order = sorted(range(len(scales)), key=lambda i: scales[i])
    xs = [float(scales[i]) for i in order]
    ops = [optima[i] for i in order]
    above = law.target > xs[-1]
    out = len(xs) - 1 if above else 0
    kept = [i for i in range(len(xs)) if i != out]
    x = np.log([xs[i] for i in kept])
    y = np.log([ops[i].lr for i in kept])
    at = math.log(xs[out])
    value, sd_pred, slope = _line_at(x, y, _sigmas([ops[i] for i in kept]), at)
    measured = ops[out]
    d = math.log(measured.lr) - value
    z = two_sided_z(law.level)
    facing = math.log(measured.lr / measured.low) if d > 0 else math.log(measured.high / measured.lr)
    half = z * math.sqrt(sd_pred**2 + (max(facing, 1e-6) / z) ** 2)
    allowed = half / math.log(2)
    excess = max(0.0, abs(d) / math.log(2) - allowed)
    nearest = xs[kept[-1]] if above else xs[kept[0]]
    span = abs(math.log2(xs[out] / nearest))
    distance = abs(math.log2(law.target / xs[out]))
    side = None if excess <= 0 else "high" if d > 0 else "low"
    widening = excess / span * distance if span > 0 else 0.0
    law_interval = (float(law.low), float(law.high))
    check = SelfCheck(
        left_out=xs[out], fitted_on=tuple(xs[i] for i in kept), slope=slope, predicted=math.exp(value),
        predicted_low=math.exp(value - z * sd_pred), predicted_high=math.exp(value + z * sd_pred),
        measured=float(measured.lr), measured_low=float(measured.low), measured_high=float(measured.high),
        miss=d / math.log(2), allowed=allowed, excess=excess, span=span, distance=distance, widening=widening, side=side,
        target=float(law.target), law_lr=float(law.lr), law_interval=law_interval, interval=law_interval, level=float(law.level),
    )  # fmt: skip
    interval = check.widen(law.target, law.lr, *law_interval)
    return SelfCheck(**{**check.__dict__, "interval": (float(interval[0]), float(interval[1]))})


@dataclass(frozen=True)
class Stability:
    """Where the proxies diverged, against the predicted LR.

    ``edges[i]`` is the smallest LR at which a seed of proxy ``scales[i]`` diverged (None:
    none did); ``below`` the proxies whose edge is at or below ``lr``, the prediction.
    ``stable`` is the largest LR tried (by any proxy) below the lowest LR at which a proxy
    diverged (None when no proxy diverged or none was tried below it)."""

    scales: tuple[float, ...]
    edges: tuple[float | None, ...]
    lr: float
    below: tuple[float, ...]
    stable: float | None

    @property
    def passed(self) -> bool:
        return not self.below

    def sentence(self, axis: str) -> str:
        """The check in words."""
        edges = [(s, e) for s, e in zip(self.scales, self.edges, strict=True) if e is not None]
        if self.passed:
            if not edges:
                return "no proxy diverged at any LR tried"
            lowest = min(e for _, e in edges)
            return (
                f"the predicted LR {num(self.lr, 3)} lies below every LR at which a proxy diverged "
                f"(the lowest: {num(lowest, 3)})"
            )
        where = ", ".join(f"{axis} {num(s)} at {num(e, 3)}" for s, e in edges if s in self.below)
        who = "every proxy diverged" if len(self.below) == len(self.scales) else "a proxy diverged"
        safe = (
            f"; the largest LR tried below any proxy's divergence was {num(self.stable, 3)}"
            if self.stable is not None
            else ""
        )
        return (
            f"warning: {who} at or below the predicted LR {num(self.lr, 3)} ({where}): the law is carried past "
            f"where the proxies could train, and the target may diverge at it{safe}; the prediction is flagged, "
            "not capped: train one run at the target before using it"
        )

    def check(self, axis: str) -> Check:
        return Check("stability", self.passed, self.sentence(axis))


def _edge(optimum: Optimum) -> float | None:
    """The smallest LR at which a seed diverged (NaN or infinite loss), None when none did."""
    diverged = [lr for lr, row in zip(optimum.lrs, optimum.losses, strict=True)
                if not all(math.isfinite(v) for v in row)]  # fmt: skip
    return min(diverged) if diverged else None


def stability_check(scales: Sequence[float], optima: Sequence[Optimum], lr: float) -> Stability:
    """Whether any proxy diverged at an LR at or below ``lr``, the predicted one.

    Flagged, not capped: where the proxies' divergence begins moves with the scale itself
    (down as a model widens in the standard parametrization, up with the batch size), so a
    proxy's edge is not a measured bound at the target in either direction; replacing the
    prediction by it would hand the user another unmeasured number as if it were the
    prediction. The result says it, ``checks`` lists it failed, and the largest LR tried
    below every proxy's divergence is given beside it.
    """
    edges = tuple(_edge(o) for o in optima)
    below = tuple(float(s) for s, e in zip(scales, edges, strict=True) if e is not None and e <= lr)
    return Stability(tuple(float(s) for s in scales), edges, float(lr), below, _stable(optima, edges))


def _stable(optima: Sequence[Optimum], edges: Sequence[float | None]) -> float | None:
    """The largest LR tried below the lowest divergence edge (None when none was)."""
    if all(e is None for e in edges):
        return None
    limit = min(e for e in edges if e is not None)
    tried = [lr for o in optima for lr in o.lrs if lr < limit]
    return max(tried) if tried else None
