"""The figure of schedules: LR vs step, one line per spec, as a FigureSpec drawn by the
report's renderers (PNG/SVG with matplotlib, HTML with plotly)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lrlab.plot import save_figure
from lrlab.plot.spec import FigureSpec, Panel, Trace, color
from lrlab.schedules import Schedule

FIGURE_SUFFIXES = (".png", ".svg", ".html")
# More points than a figure can show; longer curves are drawn by their min/max envelope.
MAX_POINTS = 4000


def schedule_curves(schedules: Sequence[Schedule], total_steps: int) -> tuple[np.ndarray, list[np.ndarray]]:
    steps = np.arange(total_steps, dtype=np.float64)
    return steps, [s(steps) for s in schedules]


def envelope(
    steps: np.ndarray, values: np.ndarray, max_points: int = MAX_POINTS
) -> tuple[np.ndarray, np.ndarray]:
    """At most about ``max_points`` points that draw like the full curve: the minimum and
    the maximum of each of ``max_points // 2`` buckets, in step order, and both ends.

    >>> x = np.arange(10.0)
    >>> envelope(x, (x % 3 == 0) * 1.0, max_points=4)[1].tolist()
    [1.0, 0.0, 0.0, 1.0, 1.0]
    """
    if len(steps) <= max_points:
        return steps, values
    buckets = max(1, max_points // 2)
    edges = np.linspace(0, len(values), buckets + 1).astype(np.int64)
    lows = np.minimum.reduceat(values, edges[:-1])
    highs = np.maximum.reduceat(values, edges[:-1])
    low_at = np.empty(buckets, dtype=np.int64)
    high_at = np.empty(buckets, dtype=np.int64)
    for i, (start, stop) in enumerate(itertools.pairwise(edges)):
        chunk = values[start:stop]
        low_at[i] = start + int(np.argmax(chunk == lows[i]))
        high_at[i] = start + int(np.argmax(chunk == highs[i]))
    keep = np.unique(np.concatenate([[0, len(values) - 1], low_at, high_at]))
    return steps[keep], values[keep]


def schedule_figure(
    schedules: Sequence[Schedule],
    total_steps: int,
    *,
    log_y: bool = False,
    labels: Sequence[str] | None = None,
    title: str = "Learning rate schedule",
) -> FigureSpec:
    """Every schedule over ``total_steps`` steps, one line each (long curves by their
    envelope), labelled by its spec string unless ``labels`` are given."""
    names = list(labels) if labels is not None else [str(s) for s in schedules]
    steps, curves = schedule_curves(schedules, total_steps)
    panel = Panel("", "optimizer step", "learning rate", ylog=log_y)
    for i, (curve, name) in enumerate(zip(curves, names)):
        x, y = envelope(steps, curve)
        panel.traces.append(Trace(x, y, name, f"schedule {i}: {name}", color(i), width=1.6))
    return FigureSpec(
        "schedule",
        title,
        "The learning rate each schedule gives at every optimizer step (0-based), computed "
        "exactly; a curve longer than the figure can show is drawn by its min/max envelope.",
        [panel],
        legend="below",
        size=(8.0, 4.5),
    )


def write_schedule_figure(
    schedules: Sequence[Schedule],
    total_steps: int,
    out: Path,
    *,
    log_y: bool = False,
    labels: Sequence[str] | None = None,
    title: str = "Learning rate schedule",
) -> Path:
    """Draw every schedule over ``total_steps`` steps into ``out`` (.png, .svg or .html)."""
    suffix = out.suffix.lower()
    if suffix not in FIGURE_SUFFIXES:
        raise ValueError(f"output must end in one of {', '.join(FIGURE_SUFFIXES)}, got {out.name!r}")
    spec = schedule_figure(schedules, total_steps, log_y=log_y, labels=labels, title=title)
    return save_figure(spec, out, dpi=120)
