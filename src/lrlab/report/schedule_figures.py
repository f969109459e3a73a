"""Figures of schedules: LR vs step, one line per spec (matplotlib and plotly)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np

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
    names = list(labels) if labels is not None else [str(s) for s in schedules]
    steps, curves = schedule_curves(schedules, total_steps)
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".html":
        _write_html(steps, curves, names, out, log_y=log_y, title=title)
    else:
        _write_static(steps, curves, names, out, log_y=log_y, title=title)
    return out


def _write_static(
    steps: np.ndarray, curves: list[np.ndarray], names: list[str], out: Path, *, log_y: bool, title: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    for curve, name in zip(curves, names):
        ax.plot(*envelope(steps, curve), label=_wrap(name), linewidth=1.6)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.set_title(title)
    if log_y:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.savefig(out, dpi=120)
    plt.close(fig)


def _write_html(
    steps: np.ndarray, curves: list[np.ndarray], names: list[str], out: Path, *, log_y: bool, title: str
) -> None:
    import plotly.graph_objects as go

    fig = go.Figure()
    for curve, name in zip(curves, names):
        x, y = envelope(steps, curve)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=name))
    fig.update_layout(
        title=title,
        xaxis_title="optimizer step",
        yaxis_title="learning rate",
        yaxis_type="log" if log_y else "linear",
        template="plotly_white",
    )
    fig.write_html(out, include_plotlyjs=True, full_html=True)


def _wrap(text: str, width: int = 70) -> str:
    if len(text) <= width:
        return text
    cut = text.rfind(", ", 0, width)
    cut = width if cut < 0 else cut + 1
    return text[:cut] + "\n  " + _wrap(text[cut:].lstrip(), width)
