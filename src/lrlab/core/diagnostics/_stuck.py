"""Runs stuck on a plateau with a large gradient (oscillating across a valley), too slow
for their budget, or getting worse late in training."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lrlab.core.diagnostics._common import Finding, display, family_key, ranked_configurations
from lrlab.core.grouping import Configuration, is_diverged
from lrlab.core.records import EpochRecord, RunRecord, StepSeries


@dataclass(frozen=True)
class StuckCheck:
    """Numbers behind the stuck test of one run (see :func:`stuck_check`)."""

    stuck: bool
    window_start_step: int
    relative_drop: float  # loss improvement across the last window, relative
    loss_level: float  # median loss in the last part of the window
    grad_ratio: float  # median grad norm in the window / median in the first 10% of steps
    loss_cv: float  # std / mean of the loss in the window: how much it bounces
    rising: bool = False  # the loss rose over the window by more than the plateau threshold


def stuck_check(
    series: StepSeries,
    *,
    window: float = 1 / 3,
    plateau: float = 0.05,
    grad_ratio: float = 0.5,
    best_level: float | None = None,
    above_best: float = 1.5,
) -> StuckCheck | None:
    """Is the run stuck with a large gradient (oscillating across a valley)?

    Over the last ``window`` of the steps: the loss improves by less than ``plateau``
    (relative, median of the window's first quarter vs its last quarter), while the median
    gradient norm is still at least ``grad_ratio`` times its median over the first 10% of
    training (a run that settles into a minimum sees its gradient shrink). When
    ``best_level`` (the best run's loss level) is given, the run must also sit at least
    ``above_best`` times above it: a plateau at the best loss is convergence, not stuck.
    None when the series is too short (< 40 finite steps).
    """
    ok = np.isfinite(series.loss) & np.isfinite(series.grad_norm)
    loss, grad, step = series.loss[ok], series.grad_norm[ok], series.step[ok]
    n = len(loss)
    if n < 40:
        return None
    start = int(n * (1 - window))
    win_loss, win_grad = loss[start:], grad[start:]
    quarter = max(1, len(win_loss) // 4)
    first, last = float(np.median(win_loss[:quarter])), float(np.median(win_loss[-quarter:]))
    drop = (first - last) / abs(first) if first else 0.0
    early_grad = float(np.median(grad[: max(4, n // 10)]))
    ratio = float(np.median(win_grad)) / early_grad if early_grad > 0 else math.inf
    mean = float(np.mean(win_loss))
    cv = float(np.std(win_loss)) / abs(mean) if mean else 0.0
    # Flat, not rising: a loss that climbs over the window is unstable, not stalled.
    stuck = -plateau <= drop < plateau and ratio >= grad_ratio
    if best_level is not None:
        stuck = stuck and last >= above_best * best_level
    return StuckCheck(stuck, int(step[start]), drop, last, ratio, cv, drop < -plateau)


def stuck_runs(
    configs: Sequence[Configuration],
    steps: Mapping[str, StepSeries],
    epochs: Mapping[str, Sequence[EpochRecord]] | None = None,
    **thresholds: float,
) -> list[Finding]:
    """Runs whose loss has plateaued well above the best run while the gradient norm stays
    large. Diverged runs are reported by :func:`divergence` instead.

    Which side of the U-curve the run sits on decides the words: above the best LR of its
    family (same config but LR) it is ``stuck`` oscillating across a valley (the article's
    diagnosis: lower the LR or decay it); below it the run is ``slow`` (the LR is too small
    to get anywhere in this budget). Without a family to compare with, a run that first
    made progress (loss 10% or more below its start) and then stalled is ``stuck``.
    """
    candidates = _candidates(configs, steps)
    first_pass = [(cfg, run, stuck_check(s)) for cfg, run, s in candidates]
    levels = [c.loss_level for _cfg, _run, c in first_pass if c is not None]
    best = min(levels) if len(levels) > 1 else None
    family_best = _family_best_lr(configs, epochs or {}, first_pass)
    flagged: dict[tuple[Any, bool], list[tuple[Configuration, RunRecord, StuckCheck, float]]] = {}
    rising: list[tuple[Configuration, RunRecord, StuckCheck]] = []
    for cfg, run, series in candidates:
        check = stuck_check(series, best_level=best, **thresholds)
        if check is not None and check.rising:
            rising.append((cfg, run, check))
        if check is None or not check.stuck:
            continue
        progress = _progress(series, check)
        slow = _is_slow(cfg, family_best.get(family_key(cfg)), progress)
        flagged.setdefault((cfg.key, slow), []).append((cfg, run, check, progress))
    findings = [
        _stuck_finding(items[0][0], items, slow, best, family_best.get(family_key(items[0][0])))
        for (_key, slow), items in flagged.items()
    ]
    return findings + _rising_findings(rising)


def _rising_findings(rising: Sequence[tuple[Configuration, RunRecord, StuckCheck]]) -> list[Finding]:
    """One "unstable" finding per configuration with rising runs."""
    by_config: dict[Any, list[tuple[Configuration, RunRecord, StuckCheck]]] = {}
    for item in rising:
        by_config.setdefault(item[0].key, []).append(item)
    return [_rising_finding(items) for items in by_config.values()]


def _candidates(
    configs: Sequence[Configuration], steps: Mapping[str, StepSeries]
) -> list[tuple[Configuration, RunRecord, StepSeries]]:
    """The runs with recorded steps that neither diverged nor failed."""
    return [
        (cfg, run, steps[run.id])
        for cfg in configs
        for run in cfg.runs
        if run.id in steps and not is_diverged(run) and run.status != "failed"
    ]


def _progress(series: StepSeries, check: StuckCheck) -> float:
    """How far below its start (the median of its first 5% of finite steps) the loss sits."""
    ok = np.isfinite(series.loss)
    start = float(np.median(series.loss[ok][: max(4, int(ok.sum()) // 20)]))
    return 1 - check.loss_level / start if start else 0.0


def _is_slow(cfg: Configuration, best_lr: float | None, progress: float) -> bool:
    """Below its family's best LR (or, with no other LR to compare, with under 10% progress)."""
    if best_lr is not None and cfg.lr is not None and cfg.lr != best_lr:
        return cfg.lr < best_lr
    return progress < 0.1


def _rising_finding(items: list[tuple[Configuration, RunRecord, StuckCheck]]) -> Finding:
    """A run whose training loss climbed over the last third without diverging."""
    cfg = items[0][0]
    checks = [c for _cfg, _run, c in items]
    rise = -float(np.mean([c.relative_drop for c in checks]))
    level = float(np.mean([c.loss_level for c in checks]))
    ratio = float(np.mean([c.grad_ratio for c in checks]))
    seeds = f" ({len(items)} of {len(cfg.runs)} seeds)" if len(cfg.runs) > 1 else ""
    message = (
        f"{cfg.label}{seeds} got worse late in training: from step {checks[0].window_start_step} on its "
        f"training loss rose by {rise:.0%} (to {display(level)}) with the gradient norm at {ratio:.2f}x its early "
        "level, without diverging: the LR is too high for this stage of training; lower it or decay it sooner."
    )
    numbers = {"window_start_step": checks[0].window_start_step, "rise": rise, "loss_level": level,
               "grad_ratio": ratio}  # fmt: skip
    return Finding(
        "unstable", "warning", message, numbers, (cfg.label,), tuple(run.id for _c, run, _k in items)
    )


def _stuck_finding(
    cfg: Configuration,
    items: list[tuple[Configuration, RunRecord, StuckCheck, float]],
    slow: bool,
    best: float | None,
    best_lr: float | None,
) -> Finding:
    """One finding per configuration: the numbers are means over its flagged seeds."""
    checks = [c for _cfg, _run, c, _p in items]
    level = float(np.mean([c.loss_level for c in checks]))
    drop = float(np.mean([c.relative_drop for c in checks]))
    ratio = float(np.mean([c.grad_ratio for c in checks]))
    cv = float(np.mean([c.loss_cv for c in checks]))
    progress = float(np.mean([p for *_rest, p in items]))
    seeds = ""
    if len(cfg.runs) > 1:
        seeds = f" ({len(items)} of {len(cfg.runs)} seeds)"
    where = f"sits at {display(level)}" + (
        f" ({level / best:.1f}x the best run's {display(best)})" if best else ""
    )
    if slow:
        message = (
            f"{cfg.label}{seeds} learns too slowly: its training loss {where}, only {progress:.0%} "
            f"below where it started, and improved by {drop:.1%} over the last third of training"
            + (f"; lr={display(best_lr)} did best in this family" if best_lr is not None else "")
            + ": the LR is too small for this budget."
        )
    else:
        message = (
            f"{cfg.label}{seeds} looks stuck: from step {checks[0].window_start_step} on the training "
            f"loss improves by only {drop:.1%} and {where}, while the gradient norm stays at "
            f"{ratio:.2f}x its early level (loss bounces by {cv:.1%}): the parameters oscillate "
            "across a valley; a lower LR or a decaying schedule should help."
        )
    numbers = {
        "window_start_step": checks[0].window_start_step,
        "relative_drop": drop,
        "loss_level": level,
        "best_level": best,
        "grad_ratio": ratio,
        "loss_cv": cv,
        "progress": progress,
        "family_best_lr": best_lr,
    }
    kind = "slow" if slow else "stuck"
    return Finding(
        kind, "warning", message, numbers, (cfg.label,), tuple(run.id for _c, run, _k, _p in items)
    )


def _family_best_lr(
    configs: Sequence[Configuration],
    epochs: Mapping[str, Sequence[EpochRecord]],
    checks: Sequence[tuple[Configuration, RunRecord, StuckCheck | None]],
) -> dict[str, float]:
    """Per family, the LR of the best configuration (the one scorer, else step loss level)."""
    score: dict[str, float] = {}
    for position, (cfg, _entry) in enumerate(ranked_configurations(configs, epochs)):
        score.setdefault(cfg.key, float(position))
    if not score:
        for cfg, _run, check in checks:
            if check is not None:
                score[cfg.key] = min(score.get(cfg.key, math.inf), check.loss_level)
    best: dict[str, tuple[float, float]] = {}
    for cfg in configs:
        if cfg.key in score:
            fam = family_key(cfg)
            if fam not in best or score[cfg.key] < best[fam][0]:
                best[fam] = (score[cfg.key], cfg.lr)
    return {fam: lr for fam, (_s, lr) in best.items()}
