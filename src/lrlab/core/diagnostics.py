"""Diagnostics in words, each with the numbers behind it: pure functions on records.

Every check returns :class:`Finding` values; nothing here reads the store, draws or
prints. The thresholds are parameters with the defaults documented in ``docs/report.md``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lrlab.core.grouping import (
    Configuration,
    config_axes,
    epoch_stats,
    format_value,
    is_diverged,
    schedule_shape,
)
from lrlab.core.ranking import Ranked, rank
from lrlab.core.records import EpochRecord, RunRecord, RunStatus, StepSeries
from lrlab.formatting import num
from lrlab.schedules import Constant
from lrlab.schedules.cyclic import Cyclic
from lrlab.schedules.summary import key_points

# The article: "near the end of training the learning rate should have decayed by about 100x or more".
DECAY_RULE = 100.0
DECAY_TOLERANCE = 0.9  # a decay within 10% of the rule counts as meeting it
# Schedules that do not decay by design (a constant LR, a cycle between two bounds): a note
# that they do not would only restate how the sweep was designed.
NON_DECAYING = (Constant, Cyclic)


@dataclass(frozen=True)
class Finding:
    """One diagnostic: ``kind`` (best, divergence, stuck, slow, unstable, overfitting, schedule_decay),
    ``severity`` (``info`` or ``warning``), a sentence, and the numbers it rests on."""

    kind: str
    severity: str
    message: str
    numbers: dict[str, Any] = field(default_factory=dict)
    labels: tuple[str, ...] = ()
    run_ids: tuple[str, ...] = ()


def _g(value: float | None) -> str:
    return num(value, missing="n/a")


_LR_FIELD = re.compile(r"\b(\w*lr\w*)=[-+0-9.eE]+")


def family_key(cfg: Configuration) -> str:
    """The configuration without seed and LR: the configurations of one family differ only in
    their learning rate. Every LR field of the schedule counts as the LR (a study scales a
    cycle's bounds, rounded, with its LR), its other knobs (steps, decay) do not."""
    items = []
    for k, v in config_axes(cfg.config).items():
        if k == "lr":
            continue
        if k == "schedule":
            text = _LR_FIELD.sub(r"\1=lr", schedule_shape(v))
        else:
            text = schedule_shape(v, cfg.lr) if k == "momentum" else format_value(v)
        items.append((k, text))
    return json.dumps(sorted(items))


# ---------------------------------------------------------------- the best configuration


def ranked_configurations(
    configs: Sequence[Configuration], epochs: Mapping[str, Sequence[EpochRecord]], metric: str | None = None
) -> list[tuple[Configuration, Ranked]]:
    """The configurations in the order of the one scorer (:func:`lrlab.core.ranking.rank`)."""
    by_key = {cfg.key: cfg for cfg in configs}
    runs = [r for cfg in configs for r in cfg.runs]
    return [(by_key[entry.key], entry) for entry in rank(runs, epochs, metric)]


def best_configuration(
    configs: Sequence[Configuration], epochs: Mapping[str, Sequence[EpochRecord]]
) -> Finding | None:
    """The best configuration by the one scorer and its margin over the runner-up.

    The margin is compared with the spread over seeds (max - min of either configuration):
    a margin inside that spread is reported as not separated from noise.
    """
    ranked = ranked_configurations(configs, epochs)
    if not ranked:
        ranked = ranked_configurations(configs, epochs, "train_loss")
    if not ranked:
        return None
    cfg, best = ranked[0]
    metric = best.metric
    what = metric.replace("_", " ")
    seeds = f" (mean of {best.seeds} seeds, range {_g(best.low)}-{_g(best.high)})" if best.seeds > 1 else ""
    numbers: dict[str, Any] = {"metric": metric, "best": best.mean, "best_seeds": best.seeds}
    message = f"Best configuration: {cfg.label} with final {what} {_g(best.mean)}{seeds}"
    labels = [cfg.label]
    if len(ranked) > 1:
        second_cfg, second = ranked[1]
        margin = second.mean - best.mean
        relative = margin / abs(second.mean) if second.mean else math.inf
        spread = max(best.high - best.low, second.high - second.low)
        numbers |= {
            "runner_up": second.mean,
            "margin": margin,
            "relative_margin": relative,
            "seed_spread": spread,
        }
        message += (
            f"; runner-up {second_cfg.label} at {_g(second.mean)}, "
            f"a margin of {_g(margin)} ({relative:.1%})"
        )
        if margin == 0 and best.val_loss is not None and second.val_loss is not None:
            message += f", a tie broken by the lower validation loss ({_g(best.val_loss)} vs {_g(second.val_loss)})"
        elif max(best.seeds, second.seeds) > 1:
            message += (
                f", {'larger' if margin > spread else 'not larger'} than the spread over seeds ({_g(spread)})"
            )
        labels.append(second_cfg.label)
    if metric == "val_error" and best.val_loss is not None:
        numbers["best_val_loss"] = best.val_loss
        message += f". Its validation loss is {_g(best.val_loss)}"
    return Finding("best", "info", message + ".", numbers, tuple(labels), best.run_ids)


# ---------------------------------------------------------------- divergence


def peak_lr(cfg: Configuration, planned_steps: Mapping[str, int] | None = None) -> float:
    """The largest LR a configuration's schedule reaches over its planned steps (its base LR
    when the steps are unknown): what a run that diverged was actually trained at."""
    planned_steps = planned_steps or {}
    for run in cfg.runs:
        steps = planned_steps.get(run.id) or _int(run.extras.get("total_steps"))
        if steps:
            return key_points(cfg.config.schedule, steps).peak
    return cfg.lr


def divergence(
    configs: Sequence[Configuration], planned_steps: Mapping[str, int] | None = None
) -> list[Finding]:
    """Diverged runs, and per family (same everything but LR) the LR where divergence starts:
    the smallest diverged peak LR (the largest LR its schedule reached), next to the largest
    peak LR below it that never diverged."""
    families: dict[str, list[Configuration]] = {}
    for cfg in configs:
        families.setdefault(family_key(cfg), []).append(cfg)
    findings = []
    for members in families.values():
        bad = [c for c in members if c.diverged]
        if not bad:
            continue
        runs = [r for c in bad for r in c.diverged]
        peak = {c.key: peak_lr(c, planned_steps) for c in members}
        lrs_bad = sorted(peak[c.key] for c in bad)
        start = lrs_bad[0] if lrs_bad else None
        stable = [peak[c.key] for c in members if not c.diverged and (start is None or peak[c.key] < start)]
        largest_stable = max(stable) if stable else None
        steps = [r.diverged_step for r in runs if r.diverged_step is not None]
        numbers: dict[str, Any] = {
            "diverged_runs": len(runs),
            "runs": sum(len(c.runs) for c in members),
            "divergence_lr": start,
            "largest_stable_lr": largest_stable,
            "diverged_lrs": lrs_bad,
            "first_diverged_step": min(steps) if steps else None,
        }
        where = _family_words(members)
        message = f"{len(runs)} of {numbers['runs']} runs{where} diverged"
        if start is not None:
            message += f"; divergence starts at lr={_g(start)}, the peak of its schedule"
            message += (
                f" (largest stable peak lr={_g(largest_stable)})"
                if largest_stable is not None
                else " (no smaller peak LR in this sweep was stable)"
            )
        if steps:
            message += f"; the earliest blew up at step {min(steps)}"
        findings.append(
            Finding(
                "divergence",
                "warning",
                message + ".",
                numbers,
                tuple(c.label for c in bad),
                tuple(r.id for r in runs),
            )
        )
    return findings


_LR_VALUE = re.compile(r"\b\w*lr=[-+0-9.eE]+(, )?")


def _family_words(members: Sequence[Configuration]) -> str:
    """What the family shares, from its first label with every LR value taken out (a
    cycle's bounds too): ``with schedule=cyclic(step_size=38), optimizer=adam``."""
    rest = _LR_VALUE.sub("", members[0].label).replace("()", "").replace(", )", ")").strip(", ")
    return f" with {rest}" if rest and rest != "all runs" else ""


# ---------------------------------------------------------------- stuck / oscillating


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
    candidates = [
        (cfg, run, steps[run.id])
        for cfg in configs
        for run in cfg.runs
        if run.id in steps and not is_diverged(run) and run.status != "failed"
    ]
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
        ok = np.isfinite(series.loss)
        start = float(np.median(series.loss[ok][: max(4, int(ok.sum()) // 20)]))
        progress = 1 - check.loss_level / start if start else 0.0
        best_lr = family_best.get(family_key(cfg))
        if best_lr is not None and cfg.lr is not None and cfg.lr != best_lr:
            slow = cfg.lr < best_lr
        else:
            slow = progress < 0.1
        flagged.setdefault((cfg.key, slow), []).append((cfg, run, check, progress))
    findings = []
    for (_key, slow), items in flagged.items():
        cfg = items[0][0]
        best_lr = family_best.get(family_key(cfg))
        findings.append(_stuck_finding(cfg, items, slow, best, best_lr))
    by_config: dict[Any, list[tuple[Configuration, RunRecord, StuckCheck]]] = {}
    for item in rising:
        by_config.setdefault(item[0].key, []).append(item)
    findings += [_rising_finding(items) for items in by_config.values()]
    return findings


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
        f"training loss rose by {rise:.0%} (to {_g(level)}) with the gradient norm at {ratio:.2f}x its early "
        "level, without diverging: the LR is too high for this stage of training; lower it or decay it sooner."
    )
    numbers = {"window_start_step": checks[0].window_start_step, "rise": rise, "loss_level": level,
               "grad_ratio": ratio}  # fmt: skip
    return Finding("unstable", "warning", message, numbers, (cfg.label,), tuple(run.id for _c, run, _k in items))


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
    where = f"sits at {_g(level)}" + (f" ({level / best:.1f}x the best run's {_g(best)})" if best else "")
    if slow:
        message = (
            f"{cfg.label}{seeds} learns too slowly: its training loss {where}, only {progress:.0%} "
            f"below where it started, and improved by {drop:.1%} over the last third of training"
            + (f"; lr={_g(best_lr)} did best in this family" if best_lr is not None else "")
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


# ---------------------------------------------------------------- overfitting


@dataclass(frozen=True)
class GapTrend:
    """Where the train-validation gap starts widening for good."""

    onset_epoch: int
    last_epoch: int
    gap_at_onset: float
    gap_at_end: float


def widening_gap(
    epochs: np.ndarray,
    gap: np.ndarray,
    *,
    min_epochs: int = 3,
    min_widening: float = 0.01,
    val_loss: np.ndarray | None = None,
    min_relative: float = 0.05,
) -> GapTrend | None:
    """The trailing stretch over which ``gap`` (val - train) rises epoch after epoch.

    Only the part of the stretch where the gap is positive counts: early in training the
    epoch-averaged training loss is above the validation loss measured after the epoch,
    and a gap climbing from negative towards zero is learning, not overfitting. Flagged
    when the positive gap rises at least ``min_epochs`` times in a row up to the last
    epoch, by ``min_widening`` in total (loss units), and (when ``val_loss`` is given)
    ends at ``min_relative`` or more of the final validation loss.

    >>> widening_gap(np.arange(1, 8), np.array([0.3, 0.1, 0.05, 0.08, 0.12, 0.2, 0.3]))
    GapTrend(onset_epoch=3, last_epoch=7, gap_at_onset=0.05, gap_at_end=0.3)
    >>> widening_gap(np.arange(1, 8), np.array([-0.6, -0.4, -0.2, -0.1, -0.05, 0.01, 0.02])) is None
    True
    """
    ok = np.isfinite(gap)
    epochs, gap = np.asarray(epochs)[ok], np.asarray(gap, dtype=np.float64)[ok]
    if len(gap) < min_epochs + 1:
        return None
    onset = len(gap) - 1
    while onset > 0 and gap[onset] > gap[onset - 1] and gap[onset - 1] > 0:
        onset -= 1
    rises = len(gap) - 1 - onset
    if rises < min_epochs or gap[-1] - gap[onset] < min_widening:
        return None
    if val_loss is not None:
        final_val = np.asarray(val_loss, dtype=np.float64)[ok][-1]
        if np.isfinite(final_val) and gap[-1] < min_relative * abs(final_val):
            return None
    return GapTrend(int(epochs[onset]), int(epochs[-1]), float(gap[onset]), float(gap[-1]))


def gap_series(
    cfg: Configuration, epochs: Mapping[str, Sequence[EpochRecord]], with_val: bool = False
) -> Any:
    """Mean validation loss minus mean training loss, per epoch, over the configuration's
    seeds: ``(epochs, gap)``, and the mean validation loss too when ``with_val``."""
    per_run = [epochs.get(r.id, ()) for r in cfg.runs]
    train, val = epoch_stats(per_run, "train_loss"), epoch_stats(per_run, "val_loss")
    common, ti, vi = np.intersect1d(train.epoch, val.epoch, return_indices=True)
    gap = val.mean[vi] - train.mean[ti]
    return (common, gap, val.mean[vi]) if with_val else (common, gap)


def overfitting(
    configs: Sequence[Configuration], epochs: Mapping[str, Sequence[EpochRecord]], **thresholds: float
) -> list[Finding]:
    """Configurations whose train-validation gap keeps widening to the end of training."""
    findings = []
    for cfg in configs:
        x, gap, val_mean = gap_series(cfg, epochs, with_val=True)
        trend = widening_gap(x, gap, val_loss=val_mean, **thresholds)  # type: ignore[arg-type]
        if trend is None:
            continue
        per_run = [epochs.get(r.id, ()) for r in cfg.runs]
        val = epoch_stats(per_run, "val_loss")
        best_i = int(np.argmin(val.mean))
        best_epoch = int(val.epoch[best_i])
        message = (
            f"{cfg.label} overfits: the gap between validation and training loss widens every epoch "
            f"from epoch {trend.onset_epoch} ({_g(trend.gap_at_onset)}) to epoch {trend.last_epoch} "
            f"({_g(trend.gap_at_end)}); "
        )
        if best_epoch < trend.last_epoch:
            message += (
                f"validation loss was lowest at epoch {best_epoch} ({_g(float(val.mean[best_i]))}). "
                "Regularise (dropout, weight decay) or stop earlier."
            )
        else:  # still improving at the end: stopping earlier would not help
            message += (
                f"validation loss still fell to its lowest in the last epoch ({best_epoch}, "
                f"{_g(float(val.mean[best_i]))}), so stopping earlier would not help; regularise "
                "(dropout, weight decay) before training longer."
            )
        numbers = {
            "onset_epoch": trend.onset_epoch,
            "last_epoch": trend.last_epoch,
            "gap_at_onset": trend.gap_at_onset,
            "gap_at_end": trend.gap_at_end,
            "best_val_epoch": best_epoch,
            "best_val_loss": float(val.mean[best_i]),
        }
        findings.append(
            Finding("overfitting", "warning", message, numbers, (cfg.label,), tuple(r.id for r in cfg.runs))
        )
    return findings


# ---------------------------------------------------------------- schedule decay


@dataclass(frozen=True)
class Decay:
    peak: float
    end: float
    source: str  # "recorded" LRs or the "schedule" spec

    @property
    def factor(self) -> float:
        if self.end <= 0:
            return math.inf if self.peak > 0 else 1.0
        return self.peak / self.end


def lr_decay(run: RunRecord, series: StepSeries | None, planned_steps: int | None = None) -> Decay | None:
    """Peak and final LR of a run: from its recorded LRs when it ran to the end, else from
    its schedule spec (``lrlab.schedules.parse`` + ``key_points``) over ``planned_steps``."""
    if series is not None and len(series) and not is_diverged(run) and run.status is RunStatus.DONE:
        # The param group with the highest peak: a frozen group (lr_mult 0) says nothing of the schedule.
        groups = series.lrs if series.lrs.ndim == 2 and series.lrs.shape[1] > 1 else series.lr[:, None]
        groups = groups[np.all(np.isfinite(groups), axis=1)]
        if len(groups):
            column = groups[:, int(np.argmax(groups.max(axis=0)))]
            if column.max() > 0:
                return Decay(float(column.max()), float(column[-1]), "recorded")
    planned_steps = planned_steps or _int(run.extras.get("total_steps"))
    if planned_steps:
        kp = key_points(run.config.schedule, planned_steps)
        return Decay(kp.peak, kp.end, "schedule")
    return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def schedule_decay(
    configs: Sequence[Configuration],
    steps: Mapping[str, StepSeries],
    planned_steps: Mapping[str, int] | None = None,
    rule: float = DECAY_RULE,
) -> list[Finding]:
    """Schedules whose LR falls less than ``rule`` times (100x) from its peak to the end.

    One finding per schedule (written relative to the LR), naming how many configurations
    use it and the smallest decay factor among them.
    """
    planned_steps = planned_steps or {}
    by_shape: dict[str, list[tuple[Configuration, Decay]]] = {}
    for cfg in configs:
        if isinstance(cfg.config.schedule, NON_DECAYING):  # baselines that do not decay by design
            continue
        decay = None
        for run in cfg.runs:
            decay = lr_decay(run, steps.get(run.id), planned_steps.get(run.id))
            if decay is not None:
                break
        # "About 100x": a designed 100x (step decay by 0.1 twice) is not flagged for rounding.
        if decay is None or decay.factor >= rule * DECAY_TOLERANCE:
            continue
        by_shape.setdefault(schedule_shape(cfg.config.schedule, cfg.lr), []).append((cfg, decay))
    findings = []
    for shape, items in by_shape.items():
        cfg, decay = min(items, key=lambda item: item[1].factor)
        count = f" in {len(items)} configurations" if len(items) > 1 else ""
        message = (
            f"Schedule {shape}{count}: the LR falls only {decay.factor:.3g}x from its peak "
            f"{_g(decay.peak)} to {_g(decay.end)} at the end of training ({decay.source}); the rule of "
            f"thumb is a decay of about {rule:g}x or more by the end, which lets the trained network "
            "settle instead of bouncing on noise."
        )
        numbers = {"peak": decay.peak, "end": decay.end, "factor": decay.factor, "rule": rule}
        findings.append(
            Finding(
                "schedule_decay",
                "warning",
                message,
                numbers,
                tuple(c.label for c, _d in items),
                tuple(r.id for c, _d in items for r in c.runs),
            )
        )
    return findings


# ---------------------------------------------------------------- one line per kind


def schedule_family(schedule: Any) -> str:
    """A schedule's family in words: ``cyclic``, ``one-cycle``, ``step-decay``, ``warmup-cosine``."""
    inner = getattr(schedule, "schedule", None)
    name = str(getattr(schedule, "name", "schedule")).replace("_", "-")
    return f"{name}-{str(inner.name).replace('_', '-')}" if name == "warmup" and inner is not None else name


def _plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


def _lr_words(low: float, high: float) -> str:
    return f"at peak lr {_g(low)}" if low == high else f"at peak lr {_g(low)}-{_g(high)}"


def _group_words(
    runs: Sequence[tuple[RunRecord, float]], concerned: set[str], one: str, many: str
) -> tuple[str, bool]:
    """``runs`` (each with its peak LR) in words as far as ``concerned`` covers them:
    ``every <one>``, ``every <one> at peak lr >= X`` (or ``<= X``) when the concerned runs are
    exactly those at one end of the LR range, else a count and the LR range. The flag says
    whether the words are an "every" (the group is described exactly)."""
    hit = [(r, lr) for r, lr in runs if r.id in concerned]
    low, high = min(lr for _r, lr in hit), max(lr for _r, lr in hit)
    rest = [lr for r, lr in runs if r.id not in concerned]
    if not rest:
        return f"every {one}", True
    if all(lr < low for lr in rest):
        return f"every {one} at peak lr >= {_g(low)}", True
    if all(lr > high for lr in rest):
        return f"every {one} at peak lr <= {_g(high)}", True
    return f"{_plural(len(hit), one, many)} {_lr_words(low, high)}", False


def describe_runs(
    run_ids: Sequence[str],
    configs: Sequence[Configuration],
    planned_steps: Mapping[str, int] | None = None,
    max_groups: int = 3,
) -> str:
    """The runs ``run_ids`` in a few words, by optimizer, schedule family and peak LR range.

    An optimizer whose concerned runs are all of its runs (or all at one end of its LR range)
    is named once (``every adam run at peak lr >= 0.03``); otherwise each of its schedule
    families is (``every cyclic run of sgd``, ``2 step-decay runs of adam at peak lr
    0.01-0.03``). At most ``max_groups`` groups are named, the largest first; the others are
    counted. Peak LR: the largest LR a run's schedule reaches (:func:`peak_lr`).
    """
    concerned = set(run_ids)
    peaks = {c.key: peak_lr(c, planned_steps) for c in configs}
    every = [(r, peaks[c.key]) for c in configs for r in c.runs]
    if every and all(r.id in concerned for r, _lr in every):
        return "every run"
    by_opt: dict[str, list[Configuration]] = {}
    for cfg in configs:
        by_opt.setdefault(str(cfg.config.optimizer), []).append(cfg)
    groups: list[tuple[int, str]] = []
    for opt, members in by_opt.items():
        runs = [(r, peaks[c.key]) for c in members for r in c.runs]
        count = sum(1 for r, _lr in runs if r.id in concerned)
        if not count:
            continue
        words, exact = _group_words(runs, concerned, f"{opt} run", f"{opt} runs")
        if exact:
            groups.append((count, words))
            continue
        families: dict[str, list[tuple[RunRecord, float]]] = {}
        for cfg in members:
            families.setdefault(schedule_family(cfg.config.schedule), []).extend((r, peaks[cfg.key]) for r in cfg.runs)
        for family, fruns in families.items():
            fcount = sum(1 for r, _lr in fruns if r.id in concerned)
            if fcount:
                words, _exact = _group_words(fruns, concerned, f"{family} run of {opt}", f"{family} runs of {opt}")
                groups.append((fcount, words))
    groups.sort(key=lambda g: -g[0])
    named = [words for _n, words in groups[:max_groups]]
    left = groups[max_groups:]
    if left:
        named.append(f"{_plural(sum(n for n, _w in left), 'more run')} in {_plural(len(left), 'other group')}")
    if len(named) > 1:
        return ", ".join(named[:-1]) + " and " + named[-1]
    return named[0] if named else "no run"


_KIND_SENTENCE = {
    "divergence": "{runs} diverged: {where}",
    "stuck": "{runs} look stuck, the loss flat well above the best run while the gradient stays large: {where}",
    "slow": "{runs} learn too slowly, at an LR below the best of their family: {where}",
    "unstable": "{runs} got worse late in training, the loss rising over the last third without diverging: {where}",
    "overfitting": "{runs} overfit, the validation-training gap widening to the end: {where}",
    "schedule_decay": "{runs} use a schedule whose LR falls less than {rule:g}x by the end: {where}",
    "failed": "{runs} failed: {where}",
}


def kind_summary(
    kind: str,
    findings: Sequence[Finding],
    configs: Sequence[Configuration],
    planned_steps: Mapping[str, int] | None = None,
) -> str:
    """One sentence for the findings of one ``kind``: how many runs they concern and which,
    in words (:func:`describe_runs`), with the number that matters most for the kind
    (divergence: the smallest peak LR that diverged; decay: the least decay)."""
    ids = list(dict.fromkeys(rid for f in findings for rid in f.run_ids))
    where = describe_runs(ids, configs, planned_steps)
    runs = _plural(len(ids), "run")
    rule = next((f.numbers.get("rule") for f in findings if f.numbers.get("rule")), DECAY_RULE)
    template = _KIND_SENTENCE.get(kind, "{runs} concerned: {where}")
    text = template.format(runs=runs, where=where, rule=rule)
    if kind == "divergence":
        lrs = [f.numbers["divergence_lr"] for f in findings if f.numbers.get("divergence_lr") is not None]
        if lrs:
            text += f"; the smallest peak lr that diverged is {_g(min(lrs))}"
    elif kind == "schedule_decay":
        factors = [f.numbers["factor"] for f in findings if "factor" in f.numbers]
        if factors:
            text += f"; the least decay is {min(factors):.3g}x"
    elif kind == "failed" and findings:
        text += "; " + findings[0].message.split("; ", 1)[-1]
    return text + "."


# ---------------------------------------------------------------- all together


def diagnose(
    configs: Sequence[Configuration],
    epochs: Mapping[str, Sequence[EpochRecord]],
    steps: Mapping[str, StepSeries],
    planned_steps: Mapping[str, int] | None = None,
) -> list[Finding]:
    """Every diagnostic, in reading order: best, divergence, stuck, overfitting, decay."""
    findings: list[Finding] = []
    best = best_configuration(configs, epochs)
    if best is not None:
        findings.append(best)
    findings += divergence(configs, planned_steps)
    findings += stuck_runs(configs, steps, epochs)
    findings += overfitting(configs, epochs)
    findings += schedule_decay(configs, steps, planned_steps)
    failed = [r for c in configs for r in c.runs if r.status is RunStatus.FAILED]
    if failed:
        first = failed[0]
        findings.append(
            Finding(
                "failed",
                "warning",
                f"{len(failed)} run(s) failed; the first ({first.id}) with: {(first.error or 'no message')[:200]}",
                {"failed_runs": len(failed)},
                (),
                tuple(r.id for r in failed),
            )
        )
    return findings
