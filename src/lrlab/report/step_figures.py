"""The report's per-step figures: the learning rate and momentum every configuration used,
and the training loss and gradient norm of every run (the coloured ones smoothed over a
faint line of every step, the grey ones downsampled with their spikes kept).
"""

from __future__ import annotations

import numpy as np

from lrlab.core.grouping import is_diverged
from lrlab.core.records import StepSeries
from lrlab.core.smoothing import ema
from lrlab.plot.downsample import downsample_indices
from lrlab.plot.spec import FigureSpec, Panel, Trace
from lrlab.report.axes import fit_y, loss_label, spans_a_decade
from lrlab.report.data import ReportData, divergence_index
from lrlab.report.looks import COLOUR_WORDS, drawing_order, hover_texts, legend_once, legend_order

__all__ = ["LR_POINTS", "SMOOTH_FRACTION", "ema", "lr_figure", "steps_figure"]


# ---------------------------------------------------------------- LR and momentum


LR_POINTS = 300


def _subset(series: StepSeries, idx: np.ndarray) -> StepSeries:
    return StepSeries(series.run_id, series.step[idx], series.epoch[idx], series.lr[idx], series.lrs[idx],
                      series.momentum[idx], series.loss[idx], series.grad_norm[idx])  # fmt: skip


def lr_figure(data: ReportData) -> FigureSpec:
    lr_panel = Panel("Learning rate vs step", "optimizer step", "learning rate")
    mom_panel = Panel("Momentum vs step", "optimizer step", "momentum (beta1 for Adam)")
    peaks: list[float] = []
    look = data.looks
    shown: set[str] = set()
    for cfg in drawing_order(data):
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
                  show_legend=legend_once(lk, shown), hover=hover_texts(lk, "lr", len(x)))
        )  # fmt: skip
        for g in range(1, series.lrs.shape[1] if series.lrs.ndim == 2 else 1):
            lr_panel.traces.append(
                Trace(x, series.lrs[:, g], f"{lk.name} [group {g}]", lk.group, lk.color, dash="dot",
                      width=lk.width(), opacity=lk.opacity, show_legend=False,
                      hover=hover_texts(lk, f"lr of param group {g}", len(x)))
            )  # fmt: skip
        finite = series.lr[np.isfinite(series.lr) & (series.lr > 0)]
        if len(finite):
            peaks.append(float(finite.max()))
        if np.isfinite(series.momentum).any():
            mom_panel.traces.append(
                Trace(x, series.momentum, lk.name, lk.group, lk.color, width=lk.width(), opacity=lk.opacity,
                      show_legend=False, hover=hover_texts(lk, "momentum", len(x)))
            )  # fmt: skip
    # Log scale when peak LRs span more than 20x; the axis then shows 1000x below the
    # smallest peak, so a decay of the recommended ~100x is visible and a cosine to 0 is not
    # stretched over ten decades.
    if peaks and max(peaks) / min(peaks) > 20:
        lr_panel.ylog = True
        lr_panel.ylim = (min(peaks) / 1e3, max(peaks) * 2)
    panels = [lr_panel]
    highlighted_groups = {look[c.key].group for c in data.configs if look[c.key].highlighted}
    constant = constant_momenta(mom_panel.traces)
    if constant:  # flat lines say nothing a number does not: the values in the title instead
        lr_panel.title += f" (momentum constant: {', '.join(constant)})"
    elif mom_panel.traces:
        mom_panel.height = MOMENTUM_HEIGHT
        coloured = [t.y for t in mom_panel.traces if t.group in highlighted_groups]
        fit_y(mom_panel, coloured or [t.y for t in mom_panel.traces])  # a cycle of 0.85-0.95 visible
        panels.append(mom_panel)
    return legend_order(data, FigureSpec(
        "lr",
        "Learning rate and momentum vs step",
        "The LR each configuration actually used, as recorded at every optimizer step (first "
        "param group solid, other groups dotted), and the momentum when the optimizer has one "
        "(in the title when it never changed). "
        "The article's rule of thumb: by the end the LR should have decayed about 100x. "
        + COLOUR_WORDS,
        panels,
    ))


MOMENTUM_HEIGHT = 0.45  # the momentum panel's height, a share of the LR panel's


def constant_momenta(traces: list[Trace]) -> list[str]:
    """The momentum values, written, when every trace holds one value throughout; else []."""
    values: set[float] = set()
    for trace in traces:
        finite = np.asarray(trace.y, dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        if len(finite) and float(finite.max() - finite.min()) > 1e-9:
            return []
        values.update(float(v) for v in finite[:1])
    return [f"{v:g}" for v in sorted(values)]


# ---------------------------------------------------------------- steps: loss and gradient norm


SMOOTH_FRACTION = 1 / 40  # the span of the coloured runs' smoothed per-step lines, as a share of the run


def steps_figure(data: ReportData, log_y: bool = False) -> FigureSpec:
    loss_panel = Panel("Training loss vs step", "optimizer step", loss_label(data=data), ylog=log_y)
    grad_panel = Panel("Gradient norm vs step", "optimizer step", "gradient L2 norm", ylog=True)
    stuck = {rid for f in data.findings if f.kind == "stuck" for rid in f.run_ids}
    # A trial function that logs no loss (only its objective): no empty loss panel, the legend
    # goes to the gradient norm's.
    logged = _logs_a_loss(data)
    legend_panel = loss_panel if logged else grad_panel
    look = data.looks
    kept: dict[str, list[np.ndarray]] = {"loss": [], "grad": []}  # the runs that did not diverge
    best: list[np.ndarray] = []  # ... the losses of those drawn in colour: the loss axis is theirs
    shown: set[str] = set()
    for cfg in drawing_order(data):
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
            legend = legend_once(lk, shown)
            span = max(1.0, SMOOTH_FRACTION * len(x))
            for panel, col, what in ((loss_panel, series.loss, "training loss"), (grad_panel, series.grad_norm,
                                                                                "gradient norm")):
                if not lk.highlighted:
                    px, py = _own_points(x, col, divergence_index(series, run))
                    panel.traces.append(
                        Trace(px, py, lk.name, lk.group, lk.color, width=width, opacity=lk.opacity,
                              show_legend=legend and panel is legend_panel,
                              hover=hover_texts(lk, f"seed {run.seed}: {what}", len(px)))
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
                          width=width, opacity=lk.opacity, show_legend=legend and panel is legend_panel,
                          hover=hover_texts(lk, f"seed {run.seed}: {what}, smoothed over ~{span:.0f} steps", len(x)))
                )  # fmt: skip
            if not is_diverged(run):
                kept["loss"].append(series.loss)
                kept["grad"].append(series.grad_norm)
                if lk.highlighted:
                    best.append(series.loss)
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
    # As the loss vs epoch: the axis of the coloured (best) runs, logarithmic when their losses
    # span more than tenfold (on a linear axis up to a grey spike they lay flat at its bottom).
    focus = best or kept["loss"]
    loss_panel.ylog = log_y or spans_a_decade(focus)
    fit_y(loss_panel, focus, floor=0.0)
    fit_y(grad_panel, kept["grad"])
    if not logged:
        return legend_order(data, FigureSpec(
            "steps",
            "Gradient norm vs step",
            "Every run's gradient norm (its training function logs no loss); the coloured runs as a line "
            "smoothed over about a fortieth of the run over a faint line of every step. " + COLOUR_WORDS,
            [grad_panel],
        ))
    return legend_order(data, FigureSpec(
        "steps",
        "Training loss and gradient norm vs step",
        "Every run; the coloured ones as a line smoothed over about a fortieth of the run (an exponential "
        "moving average, of the logarithm for the gradient norm) over a faint line of every step, the grey "
        "ones downsampled with their spikes kept. A run whose loss has stopped falling while its "
        "gradient norm stays large is oscillating across a valley of the loss surface: its LR is "
        "too high for this stage of training (such runs are drawn thicker and listed in the "
        "diagnostics). Crosses mark divergence (on the top edge when off the chart: the axes cover "
        "the runs that did not diverge). " + COLOUR_WORDS,
        [loss_panel, grad_panel],
    ))


def _logs_a_loss(data: ReportData) -> bool:
    """Whether any run's steps hold a finite training loss (a trial function may log none)."""
    return any(bool(np.isfinite(series.loss).any()) for series in data.steps.values() if len(series))


def _own_points(x: np.ndarray, y: np.ndarray, keep: int | None) -> tuple[np.ndarray, np.ndarray]:
    """A grey run's line in one panel: the points chosen for this column alone. A stored
    series keeps the union of its columns' extremes (about twice the points each needs);
    a thin grey line among hundreds needs its own half, spikes and divergence included."""
    if len(y) <= 16:
        return x, y
    idx = downsample_indices(y, len(y) // 2, () if keep is None else (keep,))
    return x[idx], y[idx]
