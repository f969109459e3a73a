"""The two stories of the articles, as runnable scenarios with their claims checked.

1. ``ravine-story`` (the ravine / oscillation story): on an ill-conditioned quadratic,
   plain gradient descent at the edge of stability bounces from wall to wall and stalls
   while its gradient stays large; momentum overshoots but arrives sooner; Nesterov
   corrects the overshoot; adaptive methods take the direct line.
2. ``valley-story`` (AdaGrad/RMSProp on a long flat valley): once the path lies on the
   valley floor the across-valley squared-gradient average shrinks, the effective rate
   ``lr / sqrt(v)`` grows past the stability limit and RMSProp, like AdaGrad in the
   lecture's root-mean-square form (:class:`lrlab.optim.AdaGradMean`), takes sudden large
   sideways steps; a decaying learning-rate schedule removes them.

Every claim is a :class:`Finding` with the numbers behind it, so tests and docs assert
the behaviour, not just that a picture was drawn.

Example:
    >>> sorted(SCENARIOS)
    ['ravine-story', 'valley-story']
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lrlab.schedules import parse
from lrlab.surfaces.catalog import get_surface
from lrlab.surfaces.trajectory import Trajectory, run_trajectory

__all__ = [
    "SCENARIOS",
    "Finding",
    "Scenario",
    "ScenarioResult",
    "along_overshoot",
    "run_scenario",
    "sideways_bursts",
]


@dataclass(frozen=True)
class Scenario:
    """A surface, a list of ``(label, optimizer spec, schedule spec or None)`` and a step budget.

    A schedule drives its optimizer's learning rate exactly as written (not scaled).
    """

    name: str
    surface: str
    optimizers: tuple[tuple[str, str, str | None], ...]
    steps: int
    tol: float
    story: str


@dataclass(frozen=True)
class Finding:
    """One claim of a story, whether it holds in this run, and the numbers behind it."""

    claim: str
    holds: bool
    evidence: str


@dataclass(frozen=True)
class ScenarioResult:
    scenario: Scenario
    trajectories: list[Trajectory]
    findings: list[Finding]

    def by_label(self, label: str) -> Trajectory:
        for traj in self.trajectories:
            if traj.name == label:
                return traj
        raise KeyError(f"no trajectory {label!r} in scenario {self.scenario.name!r}")


SCENARIOS: dict[str, Scenario] = {
    "ravine-story": Scenario(
        name="ravine-story",
        surface="ravine",
        optimizers=(
            ("GD lr=0.25", "sgd(lr=0.25)", None),
            ("momentum 0.9 lr=0.05", "sgd(lr=0.05, momentum=0.9)", None),
            ("Nesterov 0.9 lr=0.05", "sgd(lr=0.05, momentum=0.9, nesterov=true)", None),
            ("RMSprop lr=0.1", "rmsprop(lr=0.1)", None),
            ("Adagrad lr=1", "adagrad(lr=1.0)", None),
            ("Adam lr=0.1", "adam(lr=0.1)", None),
        ),
        steps=300,
        tol=1e-3,
        story="On the ravine, plain GD oscillates across the valley and stalls while its gradient stays "
        "large; momentum overshoots but arrives sooner; Nesterov corrects the overshoot; adaptive "
        "methods take the direct line.",
    ),
    "valley-story": Scenario(
        name="valley-story",
        surface="valley",
        optimizers=(
            ("RMSprop lr=0.2", "rmsprop(lr=0.2)", None),
            ("RMSprop + cosine decay", "rmsprop(lr=0.2)", "cosine(lr=0.2, total_steps=300)"),
            ("RMSprop + exponential decay", "rmsprop(lr=0.2)", "exponential(lr=0.2, decay_rate=0.99)"),
            ("AdaGrad (lecture) lr=0.5", "adagradmean(lr=0.5)", None),
            (
                "AdaGrad (lecture) + exponential decay",
                "adagradmean(lr=0.5)",
                "exponential(lr=0.5, decay_rate=0.99)",
            ),
            ("Adagrad lr=2 (torch)", "adagrad(lr=2.0)", None),
        ),
        steps=300,
        tol=1e-3,
        story="On the long flat valley, RMSProp and AdaGrad (the lecture's root-mean-square form) take "
        "sudden large sideways steps once their accumulated squared gradients across the valley have "
        "shrunk; a decay schedule removes them.",
    ),
}


def run_scenario(name: str) -> ScenarioResult:
    """Run a built-in scenario and check its claims."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; valid scenarios: {', '.join(SCENARIOS)}")
    scenario = SCENARIOS[name]
    surface = get_surface(scenario.surface)
    trajectories = [
        run_trajectory(
            surface,
            optimizer,
            steps=scenario.steps,
            tol=scenario.tol,
            name=label,
            schedule=None if schedule is None else parse(schedule),
        )
        for label, optimizer, schedule in scenario.optimizers
    ]
    check = _ravine_findings if name == "ravine-story" else _valley_findings
    return ScenarioResult(scenario, trajectories, check(trajectories))


# ------------------------------------------------------------------ measures


def along_overshoot(traj: Trajectory) -> float:
    """How far the path went past the minimum along the valley (0 if it never passed it)."""
    along = 1 - traj.surface.across_axis
    target = traj.surface.minima[0][along]
    direction = math.copysign(1.0, target - traj.points[0, along])
    return float(max(0.0, np.max((traj.points[:, along] - target) * direction)))


def settled_step(traj: Trajectory, within: float | None = None) -> int | None:
    """First step at which the across coordinate is within ``within`` of the valley floor."""
    across = traj.surface.across_axis
    low, high = traj.surface.y_range if across == 1 else traj.surface.x_range
    within = 0.005 * (high - low) if within is None else within
    floor = traj.surface.minima[0][across]
    hits = np.flatnonzero(np.abs(traj.points[:, across] - floor) < within)
    return int(hits[0]) if hits.size else None


def sideways_bursts(traj: Trajectory, threshold: float | None = None) -> list[int]:
    """Steps, after the path first settled on the valley floor, that jump across by more than
    ``threshold`` (default 2.5% of the across plotting range)."""
    across = traj.surface.across_axis
    low, high = traj.surface.y_range if across == 1 else traj.surface.x_range
    threshold = 0.025 * (high - low) if threshold is None else threshold
    start = settled_step(traj)
    if start is None:
        return []
    jumps = traj.across_steps[start:]
    return [int(i) + start for i in np.flatnonzero(jumps > threshold)]


def late_max_across_step(traj: Trajectory) -> float:
    """Largest across-valley step after the path first settled on the valley floor."""
    start = settled_step(traj)
    if start is None or start >= traj.steps:
        return 0.0
    return float(traj.across_steps[start:].max())


# ------------------------------------------------------------------ claims


def _fmt_steps(value: int | None) -> str:
    return "never" if value is None else f"{value} steps"


def _ravine_findings(trajs: list[Trajectory]) -> list[Finding]:
    gd, mom, nag, *adaptive = trajs
    return [*_gd_findings(gd), *_momentum_findings(gd, mom, nag), _adaptive_finding(gd, mom, adaptive)]


def _gd_findings(gd: Trajectory) -> list[Finding]:
    """Plain GD on the ravine: it oscillates across, and stalls with a large gradient."""
    half = gd.steps // 2
    late_loss_drop = float(gd.losses[half] / gd.losses[-1])
    late_min_grad = float(gd.grad_norms[half:].min())
    gap = float(gd.gaps[-1]) if gd.gaps is not None else math.nan
    return [
        Finding(
            "plain GD oscillates across the valley",
            gd.oscillations >= 0.9 * gd.steps,
            f"{gd.oscillations} sign flips of the across step in {gd.steps} steps",
        ),
        Finding(
            "plain GD stalls while its gradient stays large",
            gd.steps_to_tol is None
            and late_loss_drop < 1.01
            and late_min_grad > 0.5 * gd.grad_norms[0]
            and gap > 1000 * gd.tol,
            f"loss {gd.losses[half]:.4g} at step {half} and {gd.losses[-1]:.4g} at step {gd.steps} "
            f"(gap to the minimum {gap:.3g}); gradient norm never below {late_min_grad:.3g} in the last "
            f"half (start {gd.grad_norms[0]:.3g})",
        ),
    ]


def _momentum_findings(gd: Trajectory, mom: Trajectory, nag: Trajectory) -> list[Finding]:
    """Momentum overshoots but arrives before GD; Nesterov overshoots less and arrives sooner."""
    return [
        Finding(
            "momentum overshoots but arrives sooner",
            along_overshoot(mom) > 0
            and mom.steps_to_tol is not None
            and (gd.steps_to_tol is None or mom.steps_to_tol < gd.steps_to_tol),
            f"momentum passes the minimum by {along_overshoot(mom):.3g} along the valley and reaches "
            f"tol {mom.tol:g} in {_fmt_steps(mom.steps_to_tol)} (GD: {_fmt_steps(gd.steps_to_tol)})",
        ),
        Finding(
            "Nesterov corrects the overshoot",
            along_overshoot(nag) < along_overshoot(mom)
            and nag.oscillations < mom.oscillations
            and nag.steps_to_tol is not None
            and mom.steps_to_tol is not None
            and nag.steps_to_tol < mom.steps_to_tol,
            f"overshoot {along_overshoot(nag):.3g} vs {along_overshoot(mom):.3g}, across flips "
            f"{nag.oscillations} vs {mom.oscillations}, arrival {_fmt_steps(nag.steps_to_tol)} vs "
            f"{_fmt_steps(mom.steps_to_tol)} (Nesterov vs momentum)",
        ),
    ]


def _adaptive_finding(gd: Trajectory, mom: Trajectory, adaptive: Sequence[Trajectory]) -> Finding:
    return Finding(
        "adaptive methods take the direct line",
        all(t.oscillations <= 3 and t.straightness >= 0.95 for t in adaptive)
        and all(t.straightness > max(gd.straightness, mom.straightness) for t in adaptive),
        "; ".join(f"{t.name}: {t.oscillations} flips, straightness {t.straightness:.3f}" for t in adaptive)
        + f" (GD {gd.straightness:.3f}, momentum {mom.straightness:.3f})",
    )


def _shrinking_average(traj: Trajectory, mean_of_sum: bool) -> tuple[float, float, float, float, int, int]:
    """Across-valley squared-gradient average before the first burst: its peak, its lowest
    value, the effective rate lr/sqrt(v) at both, the lowest step and the first burst."""
    across = traj.surface.across_axis
    moment = traj.second_moment[:, across]
    if mean_of_sum:  # AdaGradMean keeps the running sum; its denominator is the mean
        moment = moment / np.arange(1, len(moment) + 1)
    first = sideways_bursts(traj)[0]
    peak_step, low_step = int(np.argmax(moment[:first])), int(np.argmin(moment[:first]))
    peak, low = float(moment[peak_step]), float(moment[low_step])
    return (
        peak,
        low,
        float(traj.lrs[peak_step] / math.sqrt(peak)),
        float(traj.lrs[low_step] / math.sqrt(low)),
        low_step,
        first,
    )


def _valley_findings(trajs: list[Trajectory]) -> list[Finding]:
    by_label = {t.name: t for t in trajs}
    rms, lecture = by_label["RMSprop lr=0.2"], by_label["AdaGrad (lecture) lr=0.5"]
    decayed = [t for t in trajs if "decay" in t.name]
    torch_adagrad = by_label["Adagrad lr=2 (torch)"]
    findings = [
        Finding(
            "RMSprop and the lecture's AdaGrad take sudden large sideways steps on the valley floor",
            all(sideways_bursts(t) and late_max_across_step(t) >= 0.5 for t in (rms, lecture)),
            "; ".join(
                f"{t.name}: settled at step {settled_step(t)}, then {len(sideways_bursts(t))} steps jump "
                f"across by more than 0.1, the largest {late_max_across_step(t):.3g} (first at step "
                f"{sideways_bursts(t)[0] if sideways_bursts(t) else None})"
                for t in (rms, lecture)
            ),
        )
    ]
    if all(sideways_bursts(t) and t.second_moment is not None for t in (rms, lecture)):
        findings.append(_burst_cause(rms, lecture))
    findings.append(_decay_finding(decayed, rms, lecture))
    if torch_adagrad.second_moment is not None:
        sums = torch_adagrad.second_moment[:, torch_adagrad.surface.across_axis]
        findings.append(_torch_adagrad_finding(torch_adagrad, sums))
    return findings


def _burst_cause(rms: Trajectory, lecture: Trajectory) -> Finding:
    """The bursts follow a shrinking squared-gradient average: lr/sqrt(v) past the wall's limit."""
    curvature = 10.0  # a quadratic wall of curvature c is stable under the step lr/sqrt(v) only below 2/c
    parts, holds = [], True
    for traj, mean_of_sum in ((rms, False), (lecture, True)):
        peak, low, peak_rate, rate, low_step, first = _shrinking_average(traj, mean_of_sum)
        holds = holds and low < 0.5 * peak and peak_rate < 2.0 / curvature < rate
        parts.append(
            f"{traj.name}: the across squared-gradient average fell from {peak:.3g} to {low:.3g} "
            f"(step {low_step}) before the first burst at step {first}, so lr/sqrt(v) rose from "
            f"{peak_rate:.3g} to {rate:.3g}"
        )
    return Finding(
        "the bursts come when the accumulated squared gradients have shrunk",
        holds,
        "; ".join(parts) + f" - past the wall's stability limit 2/{curvature:g} = {2 / curvature:.3g}",
    )


def _decay_finding(decayed: Sequence[Trajectory], rms: Trajectory, lecture: Trajectory) -> Finding:
    return Finding(
        "a decay schedule removes the bursts",
        all(
            not sideways_bursts(t) and late_max_across_step(t) < 0.05 and t.steps_to_tol is not None
            for t in decayed
        ),
        "; ".join(
            f"{t.name}: {len(sideways_bursts(t))} bursts, largest late sideways step "
            f"{late_max_across_step(t):.3g}, arrives in {_fmt_steps(t.steps_to_tol)}"
            for t in decayed
        )
        + f" (constant lr: RMSprop arrives in {_fmt_steps(rms.steps_to_tol)}, "
        f"AdaGrad in {_fmt_steps(lecture.steps_to_tol)})",
    )


def _torch_adagrad_finding(torch_adagrad: Trajectory, sums: np.ndarray) -> Finding:
    """``sums``: torch's Adagrad's running sum of squared gradients across the valley."""
    return Finding(
        "torch's Adagrad divides by a running sum that never shrinks, so it does not burst",
        bool(np.all(np.diff(sums) >= 0)) and not sideways_bursts(torch_adagrad),
        f"{len(sideways_bursts(torch_adagrad))} bursts; its across sum only grows "
        f"({sums[0]:.3g} -> {sums[-1]:.3g})",
    )
