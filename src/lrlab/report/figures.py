"""lrlab's figures as plain data (panels of traces), drawn by two renderers.

A :class:`FigureSpec` says what to draw; ``report/static.py`` draws it with matplotlib
(PNG/SVG, and a GIF of an animated spec) and ``report/html.py`` with plotly (interactive
page). Building the specs is pure (ReportData or arrays in, specs out), so every output
shows exactly the same curves. Not only the report's figures are specs: the range test
(:func:`range_test_figure`, shared by the report and ``FinderResult.plot``), the schedule
figure (``report/schedule_figures.py``) and the surface figure (``surfaces/drawing.py``)
are built here or from these pieces and drawn by the same two renderers.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from lrlab.formatting import num
from lrlab.report.data import ReportData, divergence_index
from lrlab.report.diagnostics import family_key, gap_series, widening_gap
from lrlab.report.downsample import downsample_indices
from lrlab.report.grouping import Configuration, epoch_stats, is_diverged
from lrlab.report.ranking import rank
from lrlab.store.records import StepSeries

# Qualitative palette (tab10 then its lighter partner colours): readable in print.
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
    "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)  # fmt: skip


def color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


@dataclass
class Trace:
    """One line or set of markers. ``group`` ties traces toggled together in the legend."""

    x: np.ndarray
    y: np.ndarray
    name: str
    group: str
    color: str
    dash: str = "solid"  # solid | dash | dot
    mode: str = "lines"  # lines | markers | lines+markers
    marker: str | None = None  # circle | x | triangle-up | diamond | star
    marker_size: float = 7.0
    width: float = 1.8
    show_legend: bool = True
    band: tuple[np.ndarray, np.ndarray] | None = None  # low, high (filled)
    error: tuple[np.ndarray, np.ndarray] | None = None  # minus, plus (error bars)
    hover: list[str] | None = None  # one text per point, plain text
    opacity: float = 1.0
    marker_edge: str | None = None  # outline colour of the markers (None: their own colour)
    animate: str | None = None  # None | grow | head: what a frame of the Animation shows

    def at_step(self, step: int) -> Trace:
        """This trace in the frame for ``step``: unchanged when not animated; "grow": its
        first ``step + 1`` points; "head": only point ``step`` (the last one past the end)."""
        if self.animate is None:
            return self
        if self.animate == "grow":
            window = slice(0, step + 1)
        else:
            last = min(step, len(self.x) - 1)
            window = slice(last, last + 1) if last >= 0 else slice(0, 0)

        def cut(pair: tuple[np.ndarray, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray] | None:
            return None if pair is None else (pair[0][window], pair[1][window])

        return dataclasses.replace(
            self, x=self.x[window], y=self.y[window], band=cut(self.band), error=cut(self.error),
            hover=None if self.hover is None else self.hover[window],
        )  # fmt: skip


@dataclass
class VLine:
    x: float
    label: str
    color: str = "#444444"
    dash: str = "dash"


@dataclass
class Span:
    x0: float
    x1: float
    label: str
    color: str = "#2ca02c"


@dataclass
class Contour:
    """A filled contour map of ``z`` over a grid, drawn under a panel's traces (a 2-D loss
    surface). ``z[i, j]`` is the value at ``(x[j], y[i])``; ``levels`` increase, and are
    geometric when ``log`` (then the colours follow log10 of the value)."""

    x: np.ndarray  # (nx,)
    y: np.ndarray  # (ny,)
    z: np.ndarray  # (ny, nx)
    levels: np.ndarray
    log: bool = False
    label: str = ""  # what the colours measure (the colour bar's title)


@dataclass
class Panel:
    title: str
    xlabel: str
    ylabel: str
    traces: list[Trace] = field(default_factory=list)
    xlog: bool = False
    ylog: bool = False
    ylim: tuple[float, float] | None = None
    hline: float | None = None
    vlines: list[VLine] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    note: str | None = None  # shown when the panel has nothing to draw
    xlim: tuple[float, float] | None = None
    contour: Contour | None = None
    width: float = 1.0  # relative width of the panel's column


@dataclass
class Animation:
    """Frames of the figure, one per step in ``steps``: in the frame for step ``s`` a "grow"
    trace shows its first ``s + 1`` points (an optimizer's path so far) and a "head" trace
    its point ``s`` (where the optimizer is). The figure as first shown is the last frame."""

    steps: list[int]
    label: str = "step"


@dataclass
class FigureSpec:
    key: str  # file stem: report_<key>.png
    title: str
    caption: str  # what the figure shows and how to read it
    panels: list[Panel]
    columns: int = 1
    log_toggle: bool = True
    legend: str = "right"  # right | below (for long names): where the legend goes
    size: tuple[float, float] | None = None  # inches of a PNG/SVG; None: from the panel count
    animation: Animation | None = None

    def is_empty(self) -> bool:
        return not any(p.traces or p.contour is not None for p in self.panels)

    def frame(self, step: int, *, titled: bool = True) -> FigureSpec:
        """The figure as it stands at ``step`` of its animation, the step in its title."""
        label = self.animation.label if self.animation else "step"
        panels = [dataclasses.replace(p, traces=[t.at_step(step) for t in p.traces]) for p in self.panels]
        title = f"{self.title} - {label} {step}" if titled else self.title
        return dataclasses.replace(self, title=title, panels=panels)


# ---------------------------------------------------------------- helpers


def _cap(values: Sequence[np.ndarray], factor: float = 1.5) -> float | None:
    """An upper limit for a loss axis: ``factor`` times the largest early value, so that a
    run blowing up to 1e9 does not flatten every other curve."""
    early = [float(v[np.isfinite(v)][0]) for v in values if np.isfinite(v).any()]
    if not early:
        return None
    return factor * max(early)


def _ylim(values: Sequence[np.ndarray], cap: float | None) -> tuple[float, float] | None:
    finite = [v[np.isfinite(v)] for v in values]
    finite = [v for v in finite if len(v)]
    if cap is None or not finite:
        return None
    top = max(float(v.max()) for v in finite)
    if top <= cap:
        return None
    low = min(float(v.min()) for v in finite)
    return (min(0.0, low), cap)


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




# ---------------------------------------------------------------- loss vs epoch


def loss_figure(data: ReportData, log_y: bool = False) -> FigureSpec:
    panel = Panel(
        "Loss vs epoch (solid: training, dashed: validation)",
        "epoch",
        "loss (cross-entropy, nats)",
        ylog=log_y,
    )
    every = []
    for cfg in data.configs:
        per_run = [data.epochs.get(r.id, []) for r in cfg.runs]
        c = color(cfg.index)
        shown = False
        for metric, dash, word in (("train_loss", "solid", "training"), ("val_loss", "dash", "validation")):
            stats = epoch_stats(per_run, metric)
            if not len(stats.epoch):
                continue
            x, y = stats.epoch.astype(np.float64), stats.mean
            if metric == "train_loss":
                x, y = _extend_to_divergence(data, cfg, x, y)
            band = (stats.low, stats.high) if stats.count.max() > 1 and metric else None
            if band is not None and len(x) != len(stats.low):
                band = None
            panel.traces.append(
                Trace(
                    x, y, cfg.label, cfg.label, c, dash=dash, mode="lines+markers", marker="circle",
                    marker_size=4, show_legend=not shown, band=band,
                    hover=[f"{cfg.label} | {word} loss {num(v)} at epoch {e:g}" for e, v in zip(x, y)],
                )
            )  # fmt: skip
            shown = True
            every.append(y)
        _add_divergence_markers(data, cfg, panel, shown)
    cap = _cap(every, 2.0)
    panel.ylim = None if log_y else _ylim(every, cap)
    _clip_markers(panel)
    return FigureSpec(
        "loss",
        "Loss vs epoch",
        "One colour per configuration. Training loss solid, validation loss dashed; with several "
        "seeds the line is their mean and the band their range. A cross marks where a run diverged "
        "(its loss became non-finite or exploded). Use the log-y button to compare small losses.",
        [panel],
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


def _add_divergence_markers(data: ReportData, cfg: Configuration, panel: Panel, shown: bool) -> None:
    xs, ys, texts = [], [], []
    for run in cfg.diverged:
        point = _divergence_point(data, run.id)
        if point is None:
            continue
        epoch, step, loss = point
        xs.append(epoch)
        ys.append(loss)
        texts.append(
            f"{cfg.label} (seed {run.seed}) diverged at step {step}, epoch {epoch:.2f}, loss {num(loss)}"
        )
    if xs:
        panel.traces.append(
            Trace(
                np.asarray(xs), np.asarray(ys, dtype=np.float64), cfg.label + " (diverged)", cfg.label,
                color(cfg.index), mode="markers", marker="x", marker_size=11, show_legend=not shown,
                hover=texts,
            )
        )  # fmt: skip


def _clip_markers(panel: Panel) -> None:
    """Divergence markers sit at the top edge when their loss is off the chart or non-finite."""
    top = panel.ylim[1] if panel.ylim else None
    finite_tops = [
        float(np.nanmax(t.y)) for t in panel.traces if t.mode != "markers" and np.isfinite(t.y).any()
    ]
    fallback = max(finite_tops) if finite_tops else 1.0
    for t in panel.traces:
        if t.marker == "x":
            limit = top * 0.97 if top else fallback
            t.y = np.where(np.isfinite(t.y), np.minimum(t.y, limit), limit)


# ---------------------------------------------------------------- cross-entropy vs error


def metrics_figure(data: ReportData) -> FigureSpec:
    left = Panel("Validation cross-entropy", "epoch", "cross-entropy (nats)")
    right = Panel("Validation classification error", "epoch", "error (%)")
    for cfg in data.configs:
        per_run = [data.epochs.get(r.id, []) for r in cfg.runs]
        for panel, metric, scale in ((left, "val_loss", 1.0), (right, "val_error", 100.0)):
            stats = epoch_stats(per_run, metric)
            if not len(stats.epoch):
                continue
            multi = stats.count.max() > 1
            panel.traces.append(
                Trace(
                    stats.epoch.astype(np.float64), stats.mean * scale, cfg.label, cfg.label, color(cfg.index),
                    mode="lines+markers", marker="circle", marker_size=4, show_legend=panel is left,
                    band=(stats.low * scale, stats.high * scale) if multi else None,
                )
            )  # fmt: skip
    left.ylim = _ylim([t.y for t in left.traces], _cap([t.y for t in left.traces]))
    if not right.traces:
        right.note = "no classification error recorded (not a classification task)"
    return FigureSpec(
        "metrics",
        "Cross-entropy vs classification error",
        "The same runs scored two ways. Cross-entropy is fine-grained (it rewards confident "
        "correct predictions); the error rate is coarse and can stay flat while cross-entropy "
        "still improves, or rise while it overfits.",
        [left, right],
        columns=2,
    )


# ---------------------------------------------------------------- train-val gap


def gap_figure(data: ReportData) -> FigureSpec:
    panel = Panel("Validation minus training loss", "epoch", "gap (nats)", hline=0.0)
    for cfg in data.configs:
        x, gap, val_mean = gap_series(cfg, data.epochs, with_val=True)
        if not len(x):
            continue
        c = color(cfg.index)
        panel.traces.append(
            Trace(x.astype(np.float64), gap, cfg.label, cfg.label, c, mode="lines+markers", marker="circle",
                  marker_size=4)
        )  # fmt: skip
        trend = widening_gap(x, gap, val_loss=val_mean)
        if trend is not None:
            sel = x >= trend.onset_epoch
            panel.traces.append(
                Trace(
                    x[sel].astype(np.float64), gap[sel], cfg.label + " (overfitting)", cfg.label, c,
                    mode="markers", marker="triangle-up", marker_size=10, show_legend=False,
                    hover=[f"{cfg.label}: gap widening since epoch {trend.onset_epoch}" for _ in range(int(sel.sum()))],
                )
            )  # fmt: skip
    return FigureSpec(
        "gap",
        "Train-validation gap",
        "Validation loss minus training loss per epoch (seed means). Near zero: the network "
        "generalises. Triangles flag overfitting: the gap widening epoch after epoch to the end "
        "(3 or more rises in a row).",
        [panel],
    )


# ---------------------------------------------------------------- LR and momentum


LR_POINTS = 300


def _subset(series: StepSeries, idx: np.ndarray) -> StepSeries:
    return StepSeries(series.run_id, series.step[idx], series.epoch[idx], series.lr[idx], series.lrs[idx],
                      series.momentum[idx], series.loss[idx], series.grad_norm[idx])  # fmt: skip


def lr_figure(data: ReportData) -> FigureSpec:
    lr_panel = Panel("Learning rate vs step", "optimizer step", "learning rate")
    mom_panel = Panel("Momentum vs step", "optimizer step", "momentum (beta1 for Adam)")
    peaks: list[float] = []
    for cfg in data.configs:
        series = data.steps.get(cfg.runs[0].id)
        if series is None or not len(series):
            continue
        c = color(cfg.index)
        # The LR is smooth (or piecewise): 300 min/max points per column draw it exactly enough.
        keep = np.unique(
            np.concatenate([downsample_indices(col, LR_POINTS) for col in (series.lr, series.momentum)])
        )
        series = _subset(series, keep)
        x = series.step.astype(np.float64)
        lr_panel.traces.append(Trace(x, series.lr, cfg.label, cfg.label, c))
        for g in range(1, series.lrs.shape[1] if series.lrs.ndim == 2 else 1):
            lr_panel.traces.append(
                Trace(
                    x,
                    series.lrs[:, g],
                    f"{cfg.label} [group {g}]",
                    cfg.label,
                    c,
                    dash="dot",
                    show_legend=False,
                )
            )
        finite = series.lr[np.isfinite(series.lr) & (series.lr > 0)]
        if len(finite):
            peaks.append(float(finite.max()))
        if np.isfinite(series.momentum).any():
            mom_panel.traces.append(Trace(x, series.momentum, cfg.label, cfg.label, c, show_legend=False))
    # Log scale when peak LRs span more than 20x; the axis then shows 1000x below the
    # smallest peak, so a decay of the recommended ~100x is visible and a cosine to 0 is not
    # stretched over ten decades.
    if peaks and max(peaks) / min(peaks) > 20:
        lr_panel.ylog = True
        lr_panel.ylim = (min(peaks) / 1e3, max(peaks) * 2)
    panels = [lr_panel]
    if mom_panel.traces:
        panels.append(mom_panel)
    return FigureSpec(
        "lr",
        "Learning rate and momentum vs step",
        "The LR each configuration actually used, as recorded at every optimizer step (first "
        "param group solid, other groups dotted), and the momentum when the optimizer has one. "
        "The article's rule of thumb: by the end the LR should have decayed about 100x.",
        panels,
    )


# ---------------------------------------------------------------- U-curve


def ucurve_figure(data: ReportData) -> FigureSpec:
    metrics = [("val_loss", "final validation loss (nats)", 1.0)]
    if data.is_classification:
        metrics.append(("val_error", "final validation error (%)", 100.0))
    panels = []
    for metric, ylabel, scale in metrics:
        panel = Panel(
            f"Final {metric.replace('_', ' ')} vs learning rate", "learning rate", ylabel, xlog=True
        )
        _ucurve_traces(data, panel, metric, scale)
        panels.append(panel)
    finder = _finder_marks(data)
    for panel in panels:
        panel.vlines += finder[0]
        panel.spans += finder[1]
    return FigureSpec(
        "ucurve",
        "Final metric vs learning rate",
        "Each point is a configuration's final value (mean over seeds, bars: range); a line joins "
        "configurations that differ only in their LR. Too small an LR learns slowly, too large "
        "bounces or diverges (crosses on the top edge): the bottom of the U is the LR to use. "
        "The dashed line is the range test's suggestion and the shaded band its cyclic-LR bounds.",
        panels,
        columns=len(panels),
    )


def _ucurve_traces(data: ReportData, panel: Panel, metric: str, scale: float) -> None:
    scores = {s.key: s for s in rank(data.runs, data.epochs, metric)}
    families: dict[str, list[Configuration]] = {}
    for cfg in data.configs:
        families.setdefault(family_key(cfg), []).append(cfg)
    finite_top = max((s.high * scale for s in scores.values()), default=1.0)
    for members in families.values():
        members = sorted(members, key=lambda c: c.lr or 0.0)
        name = _family_label(members[0])
        c = color(members[0].index)
        pts = [(cfg.lr, scores[cfg.key]) for cfg in members if cfg.key in scores]
        if pts:
            x = np.asarray([p[0] for p in pts], dtype=np.float64)
            y = np.asarray([p[1].mean for p in pts]) * scale
            lo, hi = error_bars([p[1].mean for p in pts], [p[1].low for p in pts], [p[1].high for p in pts])
            lo, hi = lo * scale, hi * scale
            panel.traces.append(
                Trace(x, y, name, name, c, mode="lines+markers", marker="circle", error=(lo, hi),
                      hover=[f"{name} | lr={v:g}: {num(w)} ({s.seeds} seeds)" for v, w, (_, s) in zip(x, y, pts)])
            )  # fmt: skip
        bad = [cfg for cfg in members if cfg.diverged and cfg.key not in scores]
        if bad:
            panel.traces.append(
                Trace(
                    np.asarray([b.lr for b in bad], dtype=np.float64), np.full(len(bad), finite_top * 1.05),
                    name + " (diverged)", name, c, mode="markers", marker="x", marker_size=11,
                    show_legend=not pts, hover=[f"{name} | lr={b.lr:g} diverged" for b in bad],
                )
            )  # fmt: skip


def error_bars(mean: Sequence[float], low: Sequence[float], high: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Distances from the mean down to the smallest seed and up to the largest (order
    statistics), never negative: the mean of tied seeds can land a rounding error outside
    ``[min, max]``.

    >>> error_bars([0.29999999999999993], [0.3], [0.3])[0].tolist()
    [0.0]
    """
    m, lo, hi = (np.asarray(v, dtype=np.float64) for v in (mean, low, high))
    return np.maximum(m - lo, 0.0), np.maximum(hi - m, 0.0)


def _family_label(cfg: Configuration) -> str:
    parts = [p for p in cfg.label.split(", ") if not p.startswith("lr=")]
    return ", ".join(parts) if parts and parts != ["all runs"] else "all runs"


def _finder_marks(data: ReportData) -> tuple[list[VLine], list[Span]]:
    if not data.finders:
        return [], []
    # The most recent range test for these tasks, preferring one with an optimizer of the runs.
    optimizers = {r.config.optimizer for r in data.runs}
    matching = [f for f in data.finders if f.optimizer in optimizers]
    rec = (matching or data.finders)[-1]
    vlines = [VLine(rec.lr, f"range test: lr={rec.lr:.3g}", "#d62728")]
    spans = []
    if rec.base_lr and rec.max_lr:
        spans.append(Span(rec.base_lr, rec.max_lr, f"cyclic bounds {rec.base_lr:.3g}-{rec.max_lr:.3g}"))
    return vlines, spans


# ---------------------------------------------------------------- range test

# Colours of the suggestion rules when one range test is drawn (several tests: one colour each).
RULE_COLORS = {
    "steepest": "#d62728",
    "valley": "#2ca02c",
    "minimum/10": "#9467bd",
    "minimum/3": "#e377c2",
    "minimum/30": "#17becf",
    "halving": "#ff7f0e",
}
_RULE_MARKERS = ("circle", "diamond", "triangle-up", "square")  # the star marks the chosen rule
FINDER_CAPTION = (
    "The LR grows exponentially over a short run while the loss is recorded (thin: raw, thick: "
    "smoothed). The loss falls fastest well before it blows up; markers show each rule's "
    "suggestion (a star the chosen one), the vertical line the chosen LR and the band the "
    "suggested cyclic bounds."
)


@dataclass(frozen=True)
class RangeTest:
    """One range test to draw, as plain arrays: a fresh ``FinderResult`` and a stored
    ``FinderRecord`` become the same value and so draw alike."""

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggestions: Mapping[str, float]
    lr: float | None = None  # the chosen LR (None or NaN: no rule could decide)
    rule: str | None = None  # the rule that chose it (found from the suggestions when None)
    bounds: tuple[float, float] | None = None  # cyclic (base_lr, max_lr)
    name: str = "loss (thick: smoothed, thin: raw)"


def range_test_figure(
    tests: Sequence[RangeTest],
    *,
    title: str | None = None,
    panel_title: str = "",
    key: str = "finder",
    caption: str = FINDER_CAPTION,
) -> FigureSpec:
    """Loss against LR (log x) of each range test: raw and smoothed curves, a marker per
    suggestion rule, the chosen LR as a vertical line and the cyclic bounds shaded.

    With one test each rule has its own colour; with several each test has one colour and
    the rules are told apart by their marker. Without ``title``: "LR range test: <rule>
    suggests <lr>" for one test that has a decision, else "LR range test".
    """
    panel = Panel(panel_title, "learning rate", "training loss", xlog=True)
    for i, test in enumerate(tests):
        _range_test_layers(panel, test, color(i), by_rule=len(tests) == 1, group=f"finder {i}: {test.name}")
    panel.ylim = _finder_ylim([t.y for t in panel.traces if t.mode == "lines"])
    return FigureSpec(key, title or _range_test_title(tests), caption, [panel])


def _chosen_rule(test: RangeTest) -> str | None:
    if test.rule is not None or test.lr is None:
        return test.rule
    return next(
        (k for k, v in test.suggestions.items() if v and math.isclose(v, test.lr, rel_tol=1e-6)), None
    )


def _range_test_title(tests: Sequence[RangeTest]) -> str:
    if len(tests) == 1:
        rule, lr = _chosen_rule(tests[0]), tests[0].lr
        if rule and lr is not None and math.isfinite(lr):
            return f"LR range test: {rule} suggests {lr:.3g}"
    return "LR range test"


def _range_test_layers(panel: Panel, test: RangeTest, c: str, *, by_rule: bool, group: str) -> None:
    lrs, losses, smoothed = (np.asarray(a, dtype=np.float64) for a in (test.lrs, test.losses, test.smoothed))
    panel.traces.append(Trace(lrs, losses, test.name + " (raw)", group, c, width=0.8, opacity=0.35,
                              show_legend=False))  # fmt: skip
    panel.traces.append(Trace(lrs, smoothed, test.name, group, c, width=2.0))
    chosen = _chosen_rule(test)
    can_place = len(lrs) > 0 and bool(np.isfinite(smoothed).any())
    for j, (rule, lr) in enumerate(sorted(test.suggestions.items())):
        if not (lr and math.isfinite(lr) and lr > 0 and can_place):
            continue
        picked = rule == chosen
        y = float(np.interp(math.log(lr), np.log(lrs), smoothed)) if len(lrs) > 1 else float(smoothed[0])
        label = f"{rule}: {lr:.3g}" + (" (recommended)" if picked else "")
        panel.traces.append(
            Trace(np.asarray([lr]), np.asarray([y]), label, f"{group}: {rule}",
                  RULE_COLORS.get(rule, "#8c564b") if by_rule else c, mode="markers",
                  marker="star" if picked else _RULE_MARKERS[j % len(_RULE_MARKERS)],
                  marker_size=16 if picked else 10, hover=[f"{test.name} | {rule} suggests lr={lr:.3g}"])
        )  # fmt: skip
    if test.lr is not None and math.isfinite(test.lr) and test.lr > 0:
        label = f"chosen lr={test.lr:.3g}" + (f" ({chosen})" if chosen else "")
        panel.vlines.append(VLine(test.lr, label, RULE_COLORS.get(chosen or "", c) if by_rule else c))
    if test.bounds is not None:
        low, high = test.bounds
        panel.spans.append(Span(low, high, f"cyclic bounds {low:.3g}-{high:.3g}", c))


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


def _finder_ylim(curves: Sequence[np.ndarray]) -> tuple[float, float] | None:
    finite = [c[np.isfinite(c)] for c in curves]
    finite = [c for c in finite if len(c)]
    if not finite:
        return None
    low = min(float(c.min()) for c in finite)
    start = max(float(c[0]) for c in finite)
    top = max(float(c.max()) for c in finite)
    if top <= 1.5 * start:
        return None
    return (low - 0.05 * abs(low), 1.5 * start)


# ---------------------------------------------------------------- steps: loss and gradient norm


def steps_figure(data: ReportData, log_y: bool = False) -> FigureSpec:
    loss_panel = Panel("Training loss vs step", "optimizer step", "loss (nats)", ylog=log_y)
    grad_panel = Panel("Gradient norm vs step", "optimizer step", "gradient L2 norm", ylog=True)
    stuck = {rid for f in data.findings if f.kind == "stuck" for rid in f.run_ids}
    for cfg in data.configs:
        c = color(cfg.index)
        first = True
        for run in cfg.runs:
            series = data.steps.get(run.id)
            if series is None or not len(series):
                continue
            x = series.step.astype(np.float64)
            # The legend entry stands for every seed of the configuration (they toggle together).
            name = cfg.label if first or len(cfg.runs) == 1 else f"{cfg.label} (seed {run.seed})"
            width = 1.0 if len(data.runs) > 12 else 1.4
            width = width * 1.8 if run.id in stuck else width
            loss_panel.traces.append(
                Trace(x, series.loss, name, cfg.label, c, width=width, show_legend=first)
            )
            grad_panel.traces.append(
                Trace(x, series.grad_norm, name, cfg.label, c, width=width, show_legend=False)
            )
            first = False
            if is_diverged(run):
                i = divergence_index(series, run)
                if i is not None:
                    step = run.diverged_step if run.diverged_step is not None else int(series.step[i])
                    for panel, col in ((loss_panel, series.loss), (grad_panel, series.grad_norm)):
                        panel.traces.append(
                            Trace(np.asarray([float(step)]), np.asarray([float(col[i])]), name + " (diverged)",
                                  cfg.label, c, mode="markers", marker="x", marker_size=11, show_legend=False,
                                  hover=[f"{name} diverged at step {step}"])
                        )  # fmt: skip
    loss_curves = [t.y for t in loss_panel.traces if t.mode == "lines"]
    loss_panel.ylim = None if log_y else _ylim(loss_curves, _cap(loss_curves, 1.3))
    _clip_markers(loss_panel)
    grad_curves = [t.y for t in grad_panel.traces if t.mode == "lines"]
    _clip_markers_to(grad_panel, grad_curves)
    return FigureSpec(
        "steps",
        "Training loss and gradient norm vs step",
        "Every run (downsampled with spikes kept). A run whose loss has stopped falling while its "
        "gradient norm stays large is oscillating across a valley of the loss surface: its LR is "
        "too high for this stage of training (such runs are drawn thicker and listed in the "
        "diagnostics). Crosses mark divergence.",
        [loss_panel, grad_panel],
    )


def _clip_markers_to(panel: Panel, curves: Sequence[np.ndarray]) -> None:
    finite = [c[np.isfinite(c) & (c > 0)] for c in curves]
    finite = [c for c in finite if len(c)]
    top = max((float(c.max()) for c in finite), default=1.0)
    for t in panel.traces:
        if t.marker == "x":
            t.y = np.where(np.isfinite(t.y) & (t.y > 0), t.y, top)


# ---------------------------------------------------------------- all


def build_figures(data: ReportData, log_y: bool = False) -> list[FigureSpec]:
    """Every figure that has something to draw, in reading order."""
    figures = [loss_figure(data, log_y), metrics_figure(data), gap_figure(data), lr_figure(data)]
    figures.append(ucurve_figure(data))
    if data.finders:
        figures.append(finder_figure(data))
    figures.append(steps_figure(data, log_y))
    return [f for f in figures if not f.is_empty()]
