"""The report's figures as specs (``lrlab.plot.spec``): loss vs epoch, cross-entropy vs
error, the train-validation gap, LR curves, the U-curve, the range tests and the per-step
figures, built from a report's data and drawn by the two renderers of ``lrlab.plot``.
Building them is pure (ReportData in, specs out), so every output shows the same curves.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lrlab.core.diagnostics import family_key, gap_series, peak_lr, ranked_configurations, widening_gap
from lrlab.core.grouping import Configuration, epoch_stats, format_value, is_diverged, varying_axes
from lrlab.core.ranking import Ranked, declared_objective, rank
from lrlab.core.records import StepSeries, schedule_family
from lrlab.formatting import num
from lrlab.plot.downsample import downsample_indices
from lrlab.plot.range_test import RangeTest, range_test_figure
from lrlab.plot.spec import FigureSpec, Panel, Span, Trace, VLine, error_bars, highlight_color
from lrlab.report.data import ReportData, divergence_index
from lrlab.schedules import Schedule
from lrlab.schedules.cyclic import Cyclic

# ---------------------------------------------------------------- labels


LOSS_NAME = "cross-entropy"  # what the tasks' loss is
LOSS_UNIT = "nats"


def loss_label(
    what: str = "loss", *, loss: str = LOSS_NAME, unit: str | None = LOSS_UNIT, data: ReportData | None = None
) -> str:
    """The one way a loss is labelled on an axis: ``what`` with the loss and its unit.

    Every loss axis of the report takes its label from here, so that a task with another
    loss (a mean squared error, a custom metric) changes it in one place. With ``data``,
    the loss is the one the runs' tasks declared (``RunRecord.objective``); runs of tasks
    with different losses get the plain word.

    >>> loss_label("validation loss")
    'validation loss (cross-entropy, nats)'
    >>> loss_label("loss", loss="MSE", unit=None)
    'loss (MSE)'
    """
    if data is not None:
        declared = {(o.loss, o.unit) for o in (r.objective for r in data.runs) if o is not None}
        if len(declared) > 1:
            return what
        if declared:
            loss, unit = declared.pop()
    inside = f"{loss}, {unit}" if unit else loss
    return f"{what} ({inside})"


# ---------------------------------------------------------------- who is drawn in colour

GREY = "#b3b3b3"
OTHERS = "other configurations"
MAX_COLOURED = 10  # configurations drawn in colour; beyond, the best of each family and the rest grey
_MIN_HIGHLIGHTED = 5  # with one family only, its best few are drawn in colour


@dataclass(frozen=True)
class Look:
    """How one configuration is drawn in every figure of a report."""

    color: str
    name: str  # its legend entry: short (optimizer, schedule family, LR)
    group: str  # legend group: its label when in colour, OTHERS when grey
    hover: str  # the full configuration
    highlighted: bool
    rank: int  # legend order (the scorer's order; grey last)

    def width(self, base: float = 1.8) -> float:
        return base if self.highlighted else 0.7

    @property
    def opacity(self) -> float:
        return 1.0 if self.highlighted else 0.55


def schedule_name(schedule: Schedule) -> str:
    """A schedule's family, told apart where one family takes several forms: ``cosine``,
    ``warmup+cosine``, ``cyclic``, ``cyclic triangular2``, ``cyclic sine``."""
    name = schedule_family(schedule)
    if isinstance(schedule, Cyclic):
        extras = [schedule.mode] if schedule.mode != "triangular" else []
        extras += [schedule.shape] if schedule.shape != "triangle" else []
        name = " ".join([name, *extras])
    return name


def _optimizer_name(spec: str) -> str:
    """A long ``name(key=value, ...)`` spec shortened to ``name(...)``; anything else as it is."""
    name, bracket, _rest = spec.partition("(")
    return f"{name}(...)" if len(spec) > 24 and bracket and name.isidentifier() else spec


@dataclass(frozen=True)
class _Names:
    """What the legend names are made of, found once per report: each configuration's
    schedule name, and the schedule families and optimizers of the report."""

    schedule: dict[str, str]  # configuration key -> schedule_name
    families: frozenset[str]
    optimizers: frozenset[str]
    varying: tuple[str, ...]  # the configuration axes that vary in the report


def _names(data: ReportData) -> _Names:
    cached = _NAMES.get(id(data))
    if cached is not None and cached[0] is data:
        return cached[1]
    by_key = {c.key: schedule_name(c.config.schedule) for c in data.configs}
    optimizers = frozenset(c.config.optimizer for c in data.configs)
    out = _Names(by_key, frozenset(by_key.values()), optimizers, tuple(varying_axes([c.axes for c in data.configs])))
    _NAMES.clear()
    _NAMES[id(data)] = (data, out)
    return out


_NAMES: dict[int, tuple[ReportData, _Names]] = {}


def peak_of(data: ReportData, cfg: Configuration) -> float:
    """The largest LR of the configuration's schedule over its planned steps."""
    return peak_lr(cfg, data.planned_steps)


def short_label(data: ReportData, cfg: Configuration) -> str:
    """A legend entry: the optimizer and schedule family when they vary in the report,
    the other varying axes, and the LR (the schedule's peak when that is not its ``lr``).
    The full configuration is the hover text and the run table's first column."""
    names = _names(data)
    parts = []
    if len(names.optimizers) > 1:
        parts.append(_optimizer_name(cfg.config.optimizer))
    if len(names.families) > 1:
        parts.append(names.schedule[cfg.key])
    for axis in names.varying:
        if axis not in ("lr", "schedule", "optimizer", "momentum"):
            parts.append(f"{axis}={format_value(cfg.axes.get(axis))}")
    peak = peak_of(data, cfg)
    same = cfg.lr is not None and math.isclose(peak, cfg.lr, rel_tol=1e-9)
    parts.append(f"lr={num(peak)}" if same else f"peak lr={num(peak)}")
    return ", ".join(parts)


def _family_of(data: ReportData) -> Callable[[Configuration], tuple[str, ...]]:
    """What a highlighted configuration stands for: its schedule family, and its optimizer
    too when the schedule families alone are fewer than three."""
    names = _names(data)
    with_optimizer = len(names.optimizers) > 1 and len(names.families) < 3

    def family(cfg: Configuration) -> tuple[str, ...]:
        key = (names.schedule[cfg.key],) if len(names.families) > 1 else ()
        return key + ((cfg.config.optimizer,) if with_optimizer or not key else ())

    return family


def highlighted(data: ReportData) -> list[Configuration]:
    """The configurations drawn in colour, best first by the one scorer: all of them up to
    ``MAX_COLOURED``; beyond, the best of each schedule family (or optimizer), at most
    ``MAX_COLOURED`` families, topped up to a few when there is a single family."""
    ranked = [cfg for cfg, _entry in ranked_configurations(data.configs, data.epochs)]
    if len(data.configs) <= MAX_COLOURED:
        return ranked + [c for c in data.configs if c not in ranked]
    family = _family_of(data)
    picks: list[Configuration] = []
    seen: set[tuple[str, ...]] = set()
    for cfg in ranked:
        if family(cfg) not in seen:
            seen.add(family(cfg))
            picks.append(cfg)
    picks = picks[:MAX_COLOURED]
    for cfg in ranked:
        if len(picks) >= min(_MIN_HIGHLIGHTED, len(ranked)):
            break
        if cfg not in picks:
            picks.append(cfg)
    return sorted(picks, key=ranked.index)


def looks(data: ReportData) -> dict[str, Look]:
    """Configuration key -> how it is drawn: the highlighted ones in colour, in the scorer's
    order, with short unique legend names; every other one thin and grey under one legend
    entry (``OTHERS``), its full configuration in its hover text."""
    cached = _LOOKS.get(id(data))
    if cached is not None and cached[0] is data:
        return cached[1]
    chosen = highlighted(data)
    out: dict[str, Look] = {}
    used: dict[str, int] = {}
    for position, cfg in enumerate(chosen):
        name = short_label(data, cfg)
        used[name] = used.get(name, 0) + 1
        if used[name] > 1:
            name = f"{name} ({used[name]})"
        out[cfg.key] = Look(highlight_color(position), name, cfg.label, cfg.label, True, position)
    grey = len(data.configs) - len(chosen)
    for cfg in data.configs:
        if cfg.key not in out:
            out[cfg.key] = Look(GREY, f"{OTHERS} ({grey})", OTHERS, cfg.label, False, 10_000)
    _LOOKS.clear()
    _LOOKS[id(data)] = (data, out)
    return out


_LOOKS: dict[int, tuple[ReportData, dict[str, Look]]] = {}


def _drawing_order(data: ReportData) -> list[Configuration]:
    """Grey configurations first (underneath), the coloured ones over them, best on top."""
    look = looks(data)
    return sorted(data.configs, key=lambda c: (look[c.key].highlighted, -look[c.key].rank))


# ---------------------------------------------------------------- axes robust to divergence


def fit_y(panel: Panel, kept: Sequence[np.ndarray], *, pad: float = 0.05, floor: float | None = None) -> None:
    """Clip the panel's y axis to the range of ``kept`` (the curves of runs that did not
    diverge) when some other trace leaves it, and put every divergence marker (``x``) that
    would be off the chart or non-finite on its top edge. ``floor`` is a lowest bottom (0
    for a loss) used when the kept curves stay above it; a log axis pads by factors."""
    values = [np.asarray(k, dtype=np.float64) for k in kept]
    finite = [v[np.isfinite(v) & ((v > 0) if panel.ylog else True)] for v in values]
    finite = [v for v in finite if len(v)]
    if not finite:
        _markers_to_edge(panel, None)
        return
    low = min(float(v.min()) for v in finite)
    high = max(float(v.max()) for v in finite)
    if panel.ylog:
        bottom, top = low / 1.5, high * 1.5
    else:
        span = (high - low) or abs(high) or 1.0
        bottom, top = low - pad * span, high + pad * span
        if floor is not None and low >= floor:
            bottom = max(bottom, floor)
    every = [t.y[np.isfinite(t.y)] for t in panel.traces if t.marker != "x"]
    outside = any(len(v) and (v.max() > top or v.min() < bottom) for v in every)
    if outside:
        panel.ylim = (bottom, top)
    _markers_to_edge(panel, (bottom, top) if outside else None)


def _markers_to_edge(panel: Panel, ylim: tuple[float, float] | None) -> None:
    lines = [t.y[np.isfinite(t.y)] for t in panel.traces if t.marker != "x"]
    lines = [v for v in lines if len(v)]
    if ylim is None:
        top = max((float(v.max()) for v in lines), default=1.0)
        edge = top
    else:
        top = ylim[1]
        edge = top / 1.08 if panel.ylog else top - 0.03 * (top - ylim[0])
    for t in panel.traces:
        if t.marker == "x":
            y = np.asarray(t.y, dtype=np.float64)
            ok = np.isfinite(y) & (y <= top) & ((y > 0) if panel.ylog else True)
            t.y = np.where(ok, y, edge)


def _kept(data: ReportData, cfg: Configuration) -> bool:
    """A configuration whose curves set the axes: none of its seeds diverged."""
    return not cfg.diverged


def _divergence_point(data: ReportData, run_id: str) -> tuple[float, int, float] | None:
    """(epoch as a fraction, step, loss there) where a diverged run blew up."""
    run = next(r for r in data.runs if r.id == run_id)
    series = data.steps.get(run_id)
    step = run.diverged_step
    loss = math.nan
    if series is not None and len(series):
        i = divergence_index(series, run)
        if i is not None:
            step = int(series.step[i]) if step is None else step
            loss = float(series.loss[i])
            if not math.isfinite(loss):
                before = series.loss[: i + 1][np.isfinite(series.loss[: i + 1])]
                loss = float(before[-1]) if len(before) else math.nan
    recs = data.epochs.get(run_id, [])
    spe = data.steps_per_epoch.get(run_id)
    if step is None:
        if not recs:
            return None
        return (float(recs[-1].epoch), recs[-1].step, loss)
    if spe:
        return ((step + 1) / spe, step, loss)
    return (float(recs[-1].epoch) + 0.5 if recs else 0.5, step, loss)


def _own_points(x: np.ndarray, y: np.ndarray, keep: int | None) -> tuple[np.ndarray, np.ndarray]:
    """A grey run's line in one panel: the points chosen for this column alone. A stored
    series keeps the union of its columns' extremes (about twice the points each needs);
    a thin grey line among hundreds needs its own half, spikes and divergence included."""
    if len(y) <= 16:
        return x, y
    idx = downsample_indices(y, len(y) // 2, () if keep is None else (keep,))
    return x[idx], y[idx]


def _legend_once(look: Look, shown: set[str]) -> bool:
    """Whether this trace carries its group's legend entry (the first trace of the group)."""
    if look.group in shown:
        return False
    shown.add(look.group)
    return True


def _hover(look: Look, text: str, n: int) -> list[str]:
    return [f"{look.hover} | {text}"] * n


# ---------------------------------------------------------------- loss vs epoch


def loss_figure(data: ReportData, log_y: bool = False) -> FigureSpec:
    panel = Panel("Loss vs epoch (solid: training, dashed: validation)", "epoch", loss_label(data=data), ylog=log_y)
    look = looks(data)
    kept: list[np.ndarray] = []
    shown: set[str] = set()
    for cfg in _drawing_order(data):
        lk = look[cfg.key]
        per_run = [data.epochs.get(r.id, []) for r in cfg.runs]
        for metric, dash, word in (("train_loss", "solid", "training"), ("val_loss", "dash", "validation")):
            stats = epoch_stats(per_run, metric)
            if not len(stats.epoch):
                continue
            x, y = stats.epoch.astype(np.float64), stats.mean
            if metric == "train_loss":
                x, y = _extend_to_divergence(data, cfg, x, y)
            band = (stats.low, stats.high) if lk.highlighted and stats.count.max() > 1 else None
            if band is not None and len(x) != len(stats.low):
                band = None
            panel.traces.append(
                Trace(
                    x, y, lk.name, lk.group, lk.color, dash=dash,
                    mode="lines+markers" if lk.highlighted else "lines", marker="circle", marker_size=4,
                    width=lk.width(), opacity=lk.opacity, show_legend=_legend_once(lk, shown), band=band,
                    hover=[f"{lk.hover} | {word} loss {num(v)} at epoch {e:g}" for e, v in zip(x, y)],
                )
            )  # fmt: skip
            if _kept(data, cfg):
                kept.append(y)
        _add_divergence_markers(data, cfg, panel, lk, shown)
    if not log_y:
        fit_y(panel, kept or [t.y for t in panel.traces if t.marker != "x"], floor=0.0)
    return _legend_order(data, FigureSpec(
        "loss",
        "Loss vs epoch",
        "Training loss solid, validation loss dashed; with several seeds the line is their mean and "
        "the band their range. " + _COLOUR_WORDS + " A cross marks where a run diverged (its loss "
        "became non-finite or exploded); the y axis covers the runs that did not diverge, so a "
        "cross off the chart sits on its top edge. Use the log-y button to compare small losses.",
        [panel],
    ))


_COLOUR_WORDS = (
    "Up to ten configurations each have a colour; with more, the best of each schedule family "
    "(or optimizer) is in colour, ordered by the final score, and the rest are thin grey lines "
    "(hover names each one where the points are few; the run table at the end lists them all)."
)


def _extend_to_divergence(
    data: ReportData, cfg: Configuration, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """If every seed diverged, draw the line on to the divergence point."""
    if len(cfg.diverged) != len(cfg.runs):
        return x, y
    point = _divergence_point(data, cfg.runs[0].id)
    if point is None or not math.isfinite(point[2]) or (len(x) and point[0] <= x[-1]):
        return x, y
    return np.append(x, point[0]), np.append(y, point[2])


def _add_divergence_markers(data: ReportData, cfg: Configuration, panel: Panel, lk: Look, shown: set[str]) -> None:
    """A cross per diverged seed; it carries the legend entry of a configuration without a line."""
    xs, ys, texts = [], [], []
    for run in cfg.diverged:
        point = _divergence_point(data, run.id)
        if point is None:
            continue
        epoch, step, loss = point
        xs.append(epoch)
        ys.append(loss)
        texts.append(f"{lk.hover} (seed {run.seed}) diverged at step {step}, epoch {epoch:.2f}, loss {num(loss)}")
    if xs:
        panel.traces.append(
            Trace(
                np.asarray(xs), np.asarray(ys, dtype=np.float64), lk.name + " (diverged)", lk.group,
                lk.color, mode="markers", marker="x", marker_size=11 if lk.highlighted else 8,
                show_legend=_legend_once(lk, shown), hover=texts,
            )
        )  # fmt: skip


# ---------------------------------------------------------------- validation loss vs error


def _second_metric(data: ReportData) -> tuple[str, float] | None:
    """The metric drawn beside the validation loss: the classification error when the runs
    report one, else the first named metric their task declared (``val_mae``, ...)."""
    for recs in data.epochs.values():
        if any(e.val_error is not None for e in recs):
            return "val_error", 100.0
    declared = declared_objective(data.runs)
    if declared is not None:
        for name in (declared.metric, *declared.metrics):
            if name not in ("val_loss", "val_error", "val_accuracy"):
                return name, 1.0
    return None


def metrics_figure(data: ReportData) -> FigureSpec:
    left = Panel("Validation loss", "epoch", loss_label("validation loss", data=data))
    second = _second_metric(data)
    if second is None or second[0] == "val_error":
        right = Panel("Validation classification error", "epoch", "error (%)")
        metric2, scale2 = "val_error", 100.0
    else:
        metric2, scale2 = second
        right = Panel(f"Validation {metric2[4:] if metric2.startswith('val_') else metric2}", "epoch", metric2)
    look = looks(data)
    kept: dict[int, list[np.ndarray]] = {0: [], 1: []}
    shown: set[str] = set()
    for cfg in _drawing_order(data):
        lk = look[cfg.key]
        per_run = [data.epochs.get(r.id, []) for r in cfg.runs]
        for side, (panel, metric, scale) in enumerate(((left, "val_loss", 1.0), (right, metric2, scale2))):
            stats = epoch_stats(per_run, metric)
            if not len(stats.epoch):
                continue
            multi = lk.highlighted and stats.count.max() > 1
            y = stats.mean * scale
            panel.traces.append(
                Trace(
                    stats.epoch.astype(np.float64), y, lk.name, lk.group, lk.color,
                    mode="lines+markers" if lk.highlighted else "lines", marker="circle", marker_size=4,
                    width=lk.width(), opacity=lk.opacity, show_legend=side == 0 and _legend_once(lk, shown),
                    band=(stats.low * scale, stats.high * scale) if multi else None,
                    hover=_hover(lk, f"validation {metric[4:]}", len(y)),
                )
            )  # fmt: skip
            if _kept(data, cfg):
                kept[side].append(y)
    fit_y(left, kept[0], floor=0.0)
    fit_y(right, kept[1], floor=0.0)
    if not right.traces:
        right.note = "no classification error recorded (not a classification task)"
    if metric2 != "val_error":
        title = f"Validation loss vs {metric2}"
        caption = (f"The same runs scored two ways: the validation loss the task trains on and its "
                   f"{metric2}. " + _COLOUR_WORDS)  # fmt: skip
    else:
        title = "Validation loss vs classification error"
        caption = (f"The same runs scored two ways. The {LOSS_NAME} is fine-grained (it rewards confident "
                   "correct predictions); the error rate is coarse and can stay flat while the loss still "
                   "improves, or rise while it overfits. " + _COLOUR_WORDS)  # fmt: skip
    return _legend_order(data, FigureSpec(
        "metrics",
        title,
        caption,
        [left, right],
        columns=2,
    ))


# ---------------------------------------------------------------- train-val gap


def gap_figure(data: ReportData) -> FigureSpec:
    panel = Panel("Validation minus training loss", "epoch", loss_label("gap", data=data), hline=0.0)
    look = looks(data)
    kept: list[np.ndarray] = []
    shown: set[str] = set()
    for cfg in _drawing_order(data):
        lk = look[cfg.key]
        x, gap, val_mean = gap_series(cfg, data.epochs, with_val=True)
        if not len(x):
            continue
        x = x.astype(np.float64)
        panel.traces.append(
            Trace(x, gap, lk.name, lk.group, lk.color, mode="lines+markers" if lk.highlighted else "lines",
                  marker="circle", marker_size=4, width=lk.width(), opacity=lk.opacity,
                  show_legend=_legend_once(lk, shown), hover=_hover(lk, "gap", len(x)))
        )  # fmt: skip
        if _kept(data, cfg):
            kept.append(gap)
        else:  # where its last epoch ended (the edge when off the chart)
            panel.traces.append(
                Trace(x[-1:], gap[-1:], lk.name + " (diverged)", lk.group, lk.color, mode="markers", marker="x",
                      marker_size=10 if lk.highlighted else 8, show_legend=False,
                      hover=[f"{lk.hover} diverged; gap {num(float(gap[-1]))} at epoch {x[-1]:g}"])
            )  # fmt: skip
        trend = widening_gap(x, gap, val_loss=val_mean)
        if trend is not None:
            sel = x >= trend.onset_epoch
            panel.traces.append(
                Trace(
                    x[sel], gap[sel], lk.name + " (overfitting)", lk.group, lk.color,
                    mode="markers", marker="triangle-up", marker_size=10 if lk.highlighted else 7,
                    show_legend=False,
                    hover=[f"{lk.hover}: gap widening since epoch {trend.onset_epoch}"] * int(sel.sum()),
                )
            )  # fmt: skip
    fit_y(panel, kept)
    return _legend_order(data, FigureSpec(
        "gap",
        "Train-validation gap",
        "Validation loss minus training loss per epoch (seed means). Near zero: the network "
        "generalises. Triangles flag overfitting: the gap widening epoch after epoch to the end "
        "(3 or more rises in a row). The y axis covers the runs that did not diverge; a cross marks "
        "a diverged run's last epoch (on the edge when off the chart).",
        [panel],
    ))


# ---------------------------------------------------------------- LR and momentum


LR_POINTS = 300


def _subset(series: StepSeries, idx: np.ndarray) -> StepSeries:
    return StepSeries(series.run_id, series.step[idx], series.epoch[idx], series.lr[idx], series.lrs[idx],
                      series.momentum[idx], series.loss[idx], series.grad_norm[idx])  # fmt: skip


def lr_figure(data: ReportData) -> FigureSpec:
    lr_panel = Panel("Learning rate vs step", "optimizer step", "learning rate")
    mom_panel = Panel("Momentum vs step", "optimizer step", "momentum (beta1 for Adam)")
    peaks: list[float] = []
    look = looks(data)
    shown: set[str] = set()
    for cfg in _drawing_order(data):
        lk = look[cfg.key]
        series = data.steps.get(cfg.runs[0].id)
        if series is None or not len(series):
            continue
        # The LR is smooth (or piecewise): 300 min/max points per column draw it exactly enough.
        keep = np.unique(
            np.concatenate([downsample_indices(col, LR_POINTS) for col in (series.lr, series.momentum)])
        )
        series = _subset(series, keep)
        x = series.step.astype(np.float64)
        lr_panel.traces.append(
            Trace(x, series.lr, lk.name, lk.group, lk.color, width=lk.width(), opacity=lk.opacity,
                  show_legend=_legend_once(lk, shown), hover=_hover(lk, "lr", len(x)))
        )  # fmt: skip
        for g in range(1, series.lrs.shape[1] if series.lrs.ndim == 2 else 1):
            lr_panel.traces.append(
                Trace(x, series.lrs[:, g], f"{lk.name} [group {g}]", lk.group, lk.color, dash="dot",
                      width=lk.width(), opacity=lk.opacity, show_legend=False,
                      hover=_hover(lk, f"lr of param group {g}", len(x)))
            )  # fmt: skip
        finite = series.lr[np.isfinite(series.lr) & (series.lr > 0)]
        if len(finite):
            peaks.append(float(finite.max()))
        if np.isfinite(series.momentum).any():
            mom_panel.traces.append(
                Trace(x, series.momentum, lk.name, lk.group, lk.color, width=lk.width(), opacity=lk.opacity,
                      show_legend=False, hover=_hover(lk, "momentum", len(x)))
            )  # fmt: skip
    # Log scale when peak LRs span more than 20x; the axis then shows 1000x below the
    # smallest peak, so a decay of the recommended ~100x is visible and a cosine to 0 is not
    # stretched over ten decades.
    if peaks and max(peaks) / min(peaks) > 20:
        lr_panel.ylog = True
        lr_panel.ylim = (min(peaks) / 1e3, max(peaks) * 2)
    panels = [lr_panel]
    if mom_panel.traces:
        panels.append(mom_panel)
    return _legend_order(data, FigureSpec(
        "lr",
        "Learning rate and momentum vs step",
        "The LR each configuration actually used, as recorded at every optimizer step (first "
        "param group solid, other groups dotted), and the momentum when the optimizer has one. "
        "The article's rule of thumb: by the end the LR should have decayed about 100x. "
        + _COLOUR_WORDS,
        panels,
    ))


# ---------------------------------------------------------------- U-curve


def ucurve_figure(data: ReportData) -> FigureSpec:
    """Final metric vs LR, one column per optimizer (each with its own range test), one row
    per metric (validation loss, and error for a classifier)."""
    metrics = [("val_loss", loss_label("final validation loss", data=data), 1.0)]
    if data.is_classification:
        metrics.append(("val_error", "final validation error (%)", 100.0))
    optimizers = list(dict.fromkeys(c.config.optimizer for c in data.configs))
    panels = []
    shown: set[str] = set()
    for metric, ylabel, scale in metrics:
        scores = {s.key: s for s in rank(data.runs, data.epochs, metric)}
        for optimizer in optimizers:
            what = metric.replace("_", " ")
            title = f"Final {what} vs learning rate" + (f": {optimizer}" if len(optimizers) > 1 else "")
            panel = Panel(title, "peak learning rate", ylabel, xlog=True)
            members = [c for c in data.configs if c.config.optimizer == optimizer]
            _ucurve_traces(data, members, panel, scores, scale, shown)
            panel.vlines, panel.spans = _finder_marks(data, optimizer)
            panels.append(panel)
    return FigureSpec(
        "ucurve",
        "Final metric vs learning rate",
        "Each point is a configuration's final value (mean over seeds, bars: range) at the peak LR its "
        "schedule reaches; a line joins configurations that differ only in their LR, one colour per "
        "schedule family. Too small an "
        "LR learns slowly, too large bounces or diverges (crosses on the top edge): the bottom of "
        "the U is the LR to use. One column per optimizer: the dashed line is that optimizer's own "
        "range test suggestion and the shaded band its cyclic-LR bounds.",
        panels,
        columns=len(optimizers),
        size=(max(7.0, 4.6 * len(optimizers)) + 3.2, 4.0 * len(metrics) + 0.8) if len(optimizers) > 1 else None,
    )


def _ucurve_traces(
    data: ReportData,
    members: Sequence[Configuration],
    panel: Panel,
    scores: Mapping[str, Ranked],
    scale: float,
    shown: set[str],
) -> None:
    families: dict[str, list[Configuration]] = {}
    for cfg in members:
        families.setdefault(family_key(cfg), []).append(cfg)
    colours = _ucurve_colours(data)
    finite_top = max((s.high * scale for k, s in scores.items() if any(c.key == k for c in members)), default=1.0)
    for group in families.values():
        group = sorted(group, key=lambda c: peak_of(data, c))
        name = _ucurve_name(data, group[0])
        c = colours.get(name, GREY)
        pts = [(cfg, scores[cfg.key]) for cfg in group if cfg.key in scores]
        if pts:
            x = np.asarray([peak_of(data, cfg) for cfg, _ in pts], dtype=np.float64)
            y = np.asarray([s.mean for _, s in pts]) * scale
            lo, hi = error_bars([s.mean for _, s in pts], [s.low for _, s in pts], [s.high for _, s in pts])
            panel.traces.append(
                Trace(x, y, name, name, c, mode="lines+markers", marker="circle", error=(lo * scale, hi * scale),
                      show_legend=name not in shown,
                      hover=[f"{cfg.label}: {num(w)} ({s.seeds} seeds)" for w, (cfg, s) in zip(y, pts)])
            )  # fmt: skip
            shown.add(name)
        bad = [cfg for cfg in group if cfg.diverged and cfg.key not in scores]
        if bad:
            panel.traces.append(
                Trace(
                    np.asarray([peak_of(data, b) for b in bad], dtype=np.float64), np.full(len(bad), finite_top * 1.05),
                    name + " (diverged)", name, c, mode="markers", marker="x", marker_size=11,
                    show_legend=name not in shown, hover=[f"{b.label} diverged" for b in bad],
                )
            )  # fmt: skip
            shown.add(name)


def _ucurve_name(data: ReportData, cfg: Configuration) -> str:
    """A U-curve line's legend entry: its schedule family when those vary, else the family's
    label (the configuration without its LR)."""
    names = _names(data)
    if len(names.families) > 1:
        return names.schedule[cfg.key]
    return _family_label(cfg)


def _ucurve_colours(data: ReportData) -> dict[str, str]:
    names = list(dict.fromkeys(_ucurve_name(data, c) for c in data.configs))
    return {n: highlight_color(i) for i, n in enumerate(names[:MAX_COLOURED])}


def _family_label(cfg: Configuration) -> str:
    parts = [p for p in cfg.label.split(", ") if not p.startswith("lr=")]
    return ", ".join(parts) if parts and parts != ["all runs"] else "all runs"


def _finder_marks(data: ReportData, optimizer: str | None = None) -> tuple[list[VLine], list[Span]]:
    """The suggestion and cyclic bounds of the most recent range test of ``optimizer`` (any
    optimizer of the runs when there is none of it)."""
    if not data.finders:
        return [], []
    if optimizer is not None:
        matching = [f for f in data.finders if f.optimizer == optimizer]
    else:
        optimizers = {r.config.optimizer for r in data.runs}
        matching = [f for f in data.finders if f.optimizer in optimizers] or list(data.finders)
    if not matching:
        return [], []
    rec = matching[-1]
    vlines = [VLine(rec.lr, f"range test: lr={rec.lr:.3g}", "#d62728")]
    spans = []
    if rec.base_lr and rec.max_lr:
        spans.append(Span(rec.base_lr, rec.max_lr, f"cyclic bounds {rec.base_lr:.3g}-{rec.max_lr:.3g}"))
    return vlines, spans


# ---------------------------------------------------------------- range test

def finder_figure(data: ReportData) -> FigureSpec:
    """The stored range tests of the report, drawn by :func:`range_test_figure`."""
    tests = [
        RangeTest(
            rec.lrs,
            rec.losses,
            rec.smoothed,
            rec.suggestions,
            lr=rec.lr,
            rule=rec.config.get("rule"),
            bounds=(rec.base_lr, rec.max_lr) if rec.base_lr and rec.max_lr else None,
            name=f"{rec.task}, {rec.optimizer}",
        )
        for rec in data.finders
    ]
    return range_test_figure(
        tests, title="Learning-rate range test", panel_title="Range test: loss vs learning rate"
    )


# ---------------------------------------------------------------- steps: loss and gradient norm


SMOOTH_FRACTION = 1 / 40  # the span of the coloured runs' smoothed per-step lines, as a share of the run


def ema(values: np.ndarray, span: float, *, log: bool = False) -> np.ndarray:
    """The bias-corrected exponential moving average of ``values`` with weight ``2 / (span +
    1)`` on the newest point (``span`` >= 1; less counts as 1), over the finite points only (a NaN or infinite point stays as
    it is and is not averaged in); ``log=True`` averages ``log(values)`` (a geometric mean,
    for a log axis; values <= 0 count as not finite).

    >>> ema(np.array([1.0, 3.0, np.nan, 3.0]), 1.0).tolist()
    [1.0, 3.0, nan, 3.0]
    >>> ema(np.array([1.0, 3.0]), 3.0).round(3).tolist()
    [1.0, 2.333]
    """
    y = np.asarray(values, dtype=np.float64)
    work = np.log(np.where(y > 0, y, np.nan)) if log else y
    alpha = 2.0 / (max(1.0, float(span)) + 1.0)  # a span under one step is no smoothing
    out = np.full(len(y), np.nan)
    average, weight = 0.0, 0.0
    for i, v in enumerate(work):
        if not np.isfinite(v):
            out[i] = y[i]
            continue
        average = (1 - alpha) * average + alpha * v
        weight = (1 - alpha) * weight + alpha
        out[i] = np.exp(average / weight) if log else average / weight
    return out


def steps_figure(data: ReportData, log_y: bool = False) -> FigureSpec:
    loss_panel = Panel("Training loss vs step", "optimizer step", loss_label(data=data), ylog=log_y)
    grad_panel = Panel("Gradient norm vs step", "optimizer step", "gradient L2 norm", ylog=True)
    stuck = {rid for f in data.findings if f.kind == "stuck" for rid in f.run_ids}
    look = looks(data)
    kept: dict[str, list[np.ndarray]] = {"loss": [], "grad": []}
    shown: set[str] = set()
    for cfg in _drawing_order(data):
        lk = look[cfg.key]
        for run in cfg.runs:
            series = data.steps.get(run.id)
            if series is None or not len(series):
                continue
            x = series.step.astype(np.float64)
            # The legend entry stands for every seed of the configuration (they toggle together).
            seed = f" (seed {run.seed})" if len(cfg.runs) > 1 else ""
            base = 1.0 if len(data.runs) > 12 else 1.4
            width = lk.width(base) * (1.8 if run.id in stuck and lk.highlighted else 1.0)
            legend = _legend_once(lk, shown)
            span = max(1.0, SMOOTH_FRACTION * len(x))
            for panel, col, what in ((loss_panel, series.loss, "training loss"), (grad_panel, series.grad_norm,
                                                                                "gradient norm")):
                if not lk.highlighted:
                    px, py = _own_points(x, col, divergence_index(series, run))
                    panel.traces.append(
                        Trace(px, py, lk.name, lk.group, lk.color, width=width, opacity=lk.opacity,
                              show_legend=legend and panel is loss_panel,
                              hover=_hover(lk, f"seed {run.seed}: {what}", len(px)))
                    )  # fmt: skip
                    continue
                # Every step, faint, under a line smoothed over 1/40 of the run: raw per-step
                # gradient norms of a few seeds of ten configurations are a thicket otherwise.
                panel.traces.append(
                    Trace(x, col, lk.name + " (every step)", lk.group, lk.color, width=max(0.6, 0.5 * width),
                          opacity=0.25 * lk.opacity, show_legend=False)  # its hover: the smoothed line's
                )  # fmt: skip
                panel.traces.append(
                    Trace(x, ema(col, span, log=panel is grad_panel or log_y), lk.name, lk.group, lk.color,
                          width=width, opacity=lk.opacity, show_legend=legend and panel is loss_panel,
                          hover=_hover(lk, f"seed {run.seed}: {what}, smoothed over ~{span:.0f} steps", len(x)))
                )  # fmt: skip
            if not is_diverged(run):
                kept["loss"].append(series.loss)
                kept["grad"].append(series.grad_norm)
                continue
            i = divergence_index(series, run)
            if i is None:
                continue
            step = run.diverged_step if run.diverged_step is not None else int(series.step[i])
            for panel, col in ((loss_panel, series.loss), (grad_panel, series.grad_norm)):
                panel.traces.append(
                    Trace(np.asarray([float(step)]), np.asarray([float(col[i])]), lk.name + " (diverged)",
                          lk.group, lk.color, mode="markers", marker="x", marker_size=11 if lk.highlighted else 8,
                          show_legend=False, hover=[f"{lk.hover}{seed} diverged at step {step}"])
                )  # fmt: skip
    fit_y(loss_panel, kept["loss"], floor=0.0)
    fit_y(grad_panel, kept["grad"])
    return _legend_order(data, FigureSpec(
        "steps",
        "Training loss and gradient norm vs step",
        "Every run; the coloured ones as a line smoothed over about a fortieth of the run (an exponential "
        "moving average, of the logarithm for the gradient norm) over a faint line of every step, the grey "
        "ones downsampled with their spikes kept. A run whose loss has stopped falling while its "
        "gradient norm stays large is oscillating across a valley of the loss surface: its LR is "
        "too high for this stage of training (such runs are drawn thicker and listed in the "
        "diagnostics). Crosses mark divergence (on the top edge when off the chart: the axes cover "
        "the runs that did not diverge). " + _COLOUR_WORDS,
        [loss_panel, grad_panel],
    ))


# ---------------------------------------------------------------- all


def build_figures(data: ReportData, log_y: bool = False) -> list[FigureSpec]:
    """Every figure that has something to draw, in reading order."""
    figures = [loss_figure(data, log_y), metrics_figure(data), gap_figure(data), lr_figure(data)]
    figures.append(ucurve_figure(data))
    if data.finders:
        figures.append(finder_figure(data))
    figures.append(steps_figure(data, log_y))
    return [f for f in figures if not f.is_empty()]


def _legend_order(data: ReportData, spec: FigureSpec) -> FigureSpec:
    """Legend entries in the scorer's order, the grey configurations' entry last (the
    traces are drawn the other way round: grey underneath, the best on top); the grey
    lines of each panel bundled into one trace per kind of line (:func:`bundle_grey`)."""
    ranks = {lk.group: lk.rank + 1 for lk in looks(data).values()}
    for panel in spec.panels:
        for trace in panel.traces:
            trace.legend_rank = ranks.get(trace.group, 0)
        bundle_grey(panel)
    return spec


# A bundled grey trace keeps a hover text per point up to this many points (the epoch
# figures); beyond (every step of hundreds of runs) one text is written for the whole bundle.
HOVER_POINTS = 5000


def bundle_grey(panel: Panel) -> None:
    """Replace the grey traces (group ``OTHERS``) of ``panel`` by one trace per kind (line
    style, marker, width): their points concatenated, a NaN point ending each line, so that
    500 grey runs cost the renderers one trace, not 500. The bundle takes the place of the
    first trace of its kind (grey is drawn first, underneath)."""
    kinds: dict[tuple, list[Trace]] = {}
    for t in panel.traces:
        if t.group == OTHERS and t.band is None and t.error is None and t.animate is None:
            kinds.setdefault(_kind(t), []).append(t)
    if not any(len(ts) > 1 for ts in kinds.values()):
        return
    bundles = {id(ts[0]): _bundle(ts) for ts in kinds.values() if len(ts) > 1}
    merged = {id(t) for ts in kinds.values() if len(ts) > 1 for t in ts}
    panel.traces = [bundles.get(id(t), t) for t in panel.traces if id(t) in bundles or id(t) not in merged]


def _kind(t: Trace) -> tuple:
    return (t.name, t.color, t.dash, t.mode, t.marker, t.marker_size, t.width, t.opacity, t.marker_edge)


def _bundle(traces: Sequence[Trace]) -> Trace:
    lines = traces[0].mode != "markers"
    gap = np.asarray([np.nan]) if lines else np.empty(0)
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for t in traces:
        xs += [np.asarray(t.x, dtype=np.float64), gap]
        ys += [np.asarray(t.y, dtype=np.float64), gap]
    x, y = np.concatenate(xs), np.concatenate(ys)
    hover = None
    if all(t.hover is not None for t in traces):
        if len(x) <= HOVER_POINTS:
            hover = [h for t in traces for h in [*t.hover, *([""] if lines else [])]]
        else:
            hover = [f"{OTHERS}: a grey line (the run table at the end names each one)"] * len(x)
    return dataclasses.replace(
        traces[0], x=x, y=y, hover=hover, show_legend=any(t.show_legend for t in traces), bundle=lines
    )
