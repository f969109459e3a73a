"""The report's figures as specs (``lrlab.plot.spec``), built from a report's data and drawn
by the two renderers of ``lrlab.plot``. Building them is pure (ReportData in, specs out),
so every output shows the same curves.

This module holds the epoch figures (loss vs epoch, validation loss vs error, the
train-validation gap) and :func:`build_figures`, which lists every figure in reading
order; the per-step figures are in ``step_figures``, the figures over the learning rate
(U-curve, range tests) in ``lr_figures``, and who is drawn in colour in ``looks``.
"""

from __future__ import annotations

import math

import numpy as np

from lrlab.core.diagnostics import gap_series, widening_gap
from lrlab.core.grouping import Configuration, epoch_stats
from lrlab.core.ranking import declared_objective
from lrlab.formatting import num
from lrlab.plot.spec import FigureSpec, Panel, Trace
from lrlab.report.axes import LOSS_NAME, fit_y, loss_label, spans_a_decade
from lrlab.report.data import ReportData, divergence_index
from lrlab.report.instruments import instruments_figure
from lrlab.report.looks import COLOUR_WORDS, Look, drawing_order, hover_texts, legend_once, legend_order
from lrlab.report.lr_figures import finder_figure, ucurve_figure
from lrlab.report.step_figures import SMOOTH_FRACTION, ema, lr_figure, steps_figure

__all__ = [
    "SMOOTH_FRACTION",
    "build_figures",
    "ema",
    "finder_figure",
    "gap_figure",
    "loss_figure",
    "loss_label",
    "lr_figure",
    "metrics_figure",
    "objective_figure",
    "steps_figure",
    "ucurve_figure",
]


# ---------------------------------------------------------------- all


def build_figures(data: ReportData, log_y: bool = False) -> list[FigureSpec]:
    """Every figure that has something to draw, in reading order."""
    figures = [loss_figure(data, log_y), metrics_figure(data), gap_figure(data), lr_figure(data)]
    figures.append(ucurve_figure(data))
    if data.finders:
        figures.append(finder_figure(data))
    figures.append(steps_figure(data, log_y))
    figures.append(instruments_figure(data))
    return [f for f in figures if not f.is_empty()]


# ---------------------------------------------------------------- loss vs epoch


def loss_figure(data: ReportData, log_y: bool = False) -> FigureSpec:
    panel = Panel("Loss vs epoch (solid: training, dashed: validation)", "epoch", loss_label(data=data), ylog=log_y)
    look = data.looks
    kept: list[np.ndarray] = []  # the curves of configurations that did not diverge
    best: list[np.ndarray] = []  # ... of those drawn in colour: the axis is theirs
    shown: set[str] = set()
    for cfg in drawing_order(data):
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
                    width=lk.width(), opacity=lk.opacity, show_legend=legend_once(lk, shown), band=band,
                    hover=[f"{lk.hover} | {word} loss {num(v)} at epoch {e:g}" for e, v in zip(x, y)],
                )
            )  # fmt: skip
            if not cfg.diverged:  # its curves set the axes
                kept.append(y)
                if lk.highlighted:
                    best.append(y)
        _add_divergence_markers(data, cfg, panel, lk, shown)
    focus = best or kept or [t.y for t in panel.traces if t.marker != "x"]
    panel.ylog = log_y or spans_a_decade(focus)
    fit_y(panel, focus, floor=0.0)
    return legend_order(data, FigureSpec(
        "loss",
        "Loss vs epoch",
        "Training loss solid, validation loss dashed; with several seeds the line is their mean and "
        "the band their range. " + COLOUR_WORDS + " A cross marks where a run diverged (its loss "
        "became non-finite or exploded). The y axis covers the configurations drawn in colour, on a "
        "log scale when their losses span more than tenfold: grey curves that leave it are cut at "
        "its edge, and a cross off the chart sits on its top edge.",
        [panel],
    ))


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
                show_legend=legend_once(lk, shown), hover=texts,
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


def _has_val_loss(data: ReportData) -> bool:
    return any(e.val_loss is not None for recs in data.epochs.values() for e in recs)


def metrics_figure(data: ReportData) -> FigureSpec:
    """Validation loss beside the classification error (or the task's declared metric); for
    runs without a validation loss (a trial function's), their declared objective alone."""
    declared = declared_objective(data.runs)
    if declared is not None and not _has_val_loss(data):
        return objective_figure(data, declared.metric, declared.higher_is_better)
    left = Panel("Validation loss", "epoch", loss_label("validation loss", data=data))
    second = _second_metric(data)
    if second is None or second[0] == "val_error":
        right = Panel("Validation classification error", "epoch", "error (%)")
        metric2, scale2 = "val_error", 100.0
    else:
        metric2, scale2 = second
        right = Panel(f"Validation {metric2[4:] if metric2.startswith('val_') else metric2}", "epoch", metric2)
    look = data.looks
    kept: dict[int, list[np.ndarray]] = {0: [], 1: []}
    shown: set[str] = set()
    for cfg in drawing_order(data):
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
                    width=lk.width(), opacity=lk.opacity, show_legend=side == 0 and legend_once(lk, shown),
                    band=(stats.low * scale, stats.high * scale) if multi else None,
                    hover=hover_texts(lk, f"validation {metric[4:]}", len(y)),
                )
            )  # fmt: skip
            if not cfg.diverged:  # its curves set the axes
                kept[side].append(y)
    fit_y(left, kept[0], floor=0.0)
    fit_y(right, kept[1], floor=0.0)
    if not right.traces:
        right.note = "no classification error recorded (not a classification task)"
    if metric2 != "val_error":
        title = f"Validation loss vs {metric2}"
        caption = (f"The same runs scored two ways: the validation loss the task trains on and its "
                   f"{metric2}. " + COLOUR_WORDS)  # fmt: skip
    else:
        title = "Validation loss vs classification error"
        caption = (f"The same runs scored two ways. The {LOSS_NAME} is fine-grained (it rewards confident "
                   "correct predictions); the error rate is coarse and can stay flat while the loss still "
                   "improves, or rise while it overfits. " + COLOUR_WORDS)  # fmt: skip
    return legend_order(data, FigureSpec(
        "metrics",
        title,
        caption,
        [left, right],
        columns=2,
    ))


def objective_figure(data: ReportData, metric: str, higher_is_better: bool) -> FigureSpec:
    """The runs' declared objective against the epoch, which way is better in its labels:
    what a trial function reports (``mean_return``, a score) in place of a validation loss."""
    better = "higher is better" if higher_is_better else "lower is better"
    panel = Panel(f"{metric} ({better})", "epoch", f"{metric} ({better})")
    look = data.looks
    kept: list[np.ndarray] = []
    shown: set[str] = set()
    for cfg in drawing_order(data):
        lk = look[cfg.key]
        stats = epoch_stats([data.epochs.get(r.id, []) for r in cfg.runs], metric)
        if not len(stats.epoch):
            continue
        multi = lk.highlighted and stats.count.max() > 1
        panel.traces.append(
            Trace(
                stats.epoch.astype(np.float64), stats.mean, lk.name, lk.group, lk.color,
                mode="lines+markers" if lk.highlighted else "lines", marker="circle", marker_size=4,
                width=lk.width(), opacity=lk.opacity, show_legend=legend_once(lk, shown),
                band=(stats.low, stats.high) if multi else None, hover=hover_texts(lk, metric, len(stats.mean)),
            )
        )  # fmt: skip
        if not cfg.diverged:
            kept.append(stats.mean)
    fit_y(panel, kept)
    return legend_order(data, FigureSpec(
        "metrics",
        f"{metric} vs epoch ({better})",
        f"The objective the training function declared and reports each epoch ({metric}, {better}); the runs "
        "log no validation loss. With several seeds the line is their mean and the band their range. "
        + COLOUR_WORDS,
        [panel],
    ))  # fmt: skip


# ---------------------------------------------------------------- train-val gap


def gap_figure(data: ReportData) -> FigureSpec:
    panel = Panel("Validation minus training loss", "epoch", loss_label("gap", data=data), hline=0.0)
    look = data.looks
    kept: list[np.ndarray] = []
    shown: set[str] = set()
    for cfg in drawing_order(data):
        lk = look[cfg.key]
        x, gap, val_mean = gap_series(cfg, data.epochs, with_val=True)
        if not len(x):
            continue
        x = x.astype(np.float64)
        panel.traces.append(
            Trace(x, gap, lk.name, lk.group, lk.color, mode="lines+markers" if lk.highlighted else "lines",
                  marker="circle", marker_size=4, width=lk.width(), opacity=lk.opacity,
                  show_legend=legend_once(lk, shown), hover=hover_texts(lk, "gap", len(x)))
        )  # fmt: skip
        if not cfg.diverged:  # its curves set the axes
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
    return legend_order(data, FigureSpec(
        "gap",
        "Train-validation gap",
        "Validation loss minus training loss per epoch (seed means). Near zero: the network "
        "generalises. Triangles flag overfitting: the gap widening epoch after epoch to the end "
        "(3 or more rises in a row). The y axis covers the runs that did not diverge; a cross marks "
        "a diverged run's last epoch (on the edge when off the chart).",
        [panel],
    ))


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
