"""The report's figures over the learning rate: the U-curve (each configuration's final
score at the peak LR its schedule reaches, one column per optimizer, with that optimizer's
range-test suggestion) and the stored range tests themselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from lrlab.core.diagnostics import family_key
from lrlab.core.grouping import Configuration
from lrlab.core.ranking import Ranked, declared_objective, rank
from lrlab.formatting import num
from lrlab.plot.range_test import RangeTest, range_test_figure
from lrlab.plot.spec import FigureSpec, Panel, Span, Trace, VLine, error_bars, highlight_color
from lrlab.report.axes import loss_label
from lrlab.report.data import ReportData
from lrlab.report.looks import GREY, MAX_COLOURED, peak_of

__all__ = ["finder_figure", "ucurve_figure"]


# ---------------------------------------------------------------- U-curve


def ucurve_figure(data: ReportData) -> FigureSpec:
    """Final metric vs LR, one column per optimizer (each with its own range test), one row
    per metric (validation loss, and error for a classifier)."""
    metrics = [("val_loss", loss_label("final validation loss", data=data), 1.0)]
    if data.is_classification:
        metrics.append(("val_error", "final validation error (%)", 100.0))
    declared = declared_objective(data.runs)
    logged = any(e.val_loss is not None for recs in data.epochs.values() for e in recs)
    own = declared is not None and not logged
    if own:  # a trial function's runs: their declared objective, which way is better said
        better = "higher is better" if declared.higher_is_better else "lower is better"
        metrics = [(declared.metric, f"final {declared.metric} ({better})", 1.0)]
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
        "LR learns slowly, too large bounces or diverges (crosses on the top edge): the "
        + ("best end of the curve (its top where higher is better)" if own else "bottom of the U")
        + " is the LR to use. One column per optimizer: the dashed line is that optimizer's own "
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
    names = data.names
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
