"""The loss-vs-LR figure of a range test (log x, suggestions marked): PNG/SVG or HTML.

Works on plain arrays so that a stored ``FinderRecord`` draws the same as a fresh result.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

FIGURE_SUFFIXES = (".png", ".svg", ".html")

_COLORS = {
    "steepest": "#d62728",
    "valley": "#2ca02c",
    "minimum/10": "#9467bd",
    "minimum/3": "#e377c2",
    "minimum/30": "#17becf",
    "halving": "#ff7f0e",
}


def _y_limits(losses: np.ndarray, smoothed: np.ndarray) -> tuple[float, float] | None:
    """Keep the divergence from flattening the interesting part of the curve."""
    finite = smoothed[np.isfinite(smoothed)]
    if finite.size == 0:
        return None
    low = float(np.nanmin(np.where(np.isfinite(losses), losses, np.nan), initial=finite.min()))
    high = float(max(finite[: max(1, finite.size // 10)].max(), finite.min()) * 1.25)
    low = min(low, float(finite.min()))
    pad = 0.05 * (high - low) if high > low else 0.1 * abs(high) + 1e-3
    return low - pad, high + pad


def _title(title: str | None, recommended: str | None, lr: float | None) -> str:
    if title is not None:
        return title
    if recommended and lr is not None and np.isfinite(lr):
        return f"LR range test: {recommended} suggests {lr:.3g}"
    return "LR range test"


def finder_figure(
    lrs: np.ndarray,
    losses: np.ndarray,
    smoothed: np.ndarray,
    suggestions: Mapping[str, float],
    *,
    recommended: str | None = None,
    bounds: tuple[float, float] | None = None,
    title: str | None = None,
) -> Any:
    """A matplotlib Figure: raw and smoothed loss against LR, each suggestion marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lrs, losses, smoothed = (np.asarray(a, dtype=np.float64) for a in (lrs, losses, smoothed))
    fig, ax = plt.subplots(figsize=(8, 4.8), layout="constrained")
    ax.plot(lrs, losses, color="#1f77b4", alpha=0.3, linewidth=1.0, label="loss")
    ax.plot(lrs, smoothed, color="#1f77b4", linewidth=2.0, label="smoothed loss")
    if bounds is not None:
        ax.axvspan(bounds[0], bounds[1], color="#7f7f7f", alpha=0.12, label="cyclic bounds")
    for name, lr in suggestions.items():
        if not np.isfinite(lr) or lr <= 0:
            continue
        marker_y = float(np.interp(np.log(lr), np.log(lrs), smoothed)) if lrs.size > 1 else float(smoothed[0])
        star = " (recommended)" if name == recommended else ""
        color = _COLORS.get(name, "#8c564b")
        ax.axvline(lr, color=color, linestyle="--", linewidth=1.0, alpha=0.8)
        ax.plot(
            [lr],
            [marker_y],
            marker="*" if star else "o",
            markersize=14 if star else 8,
            color=color,
            linestyle="none",
            label=f"{name}: {lr:.3g}{star}",
        )
    ax.set_xscale("log")
    limits = _y_limits(losses, smoothed)
    if limits is not None:
        ax.set_ylim(*limits)
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    ax.set_title(_title(title, recommended, suggestions.get(recommended or "")))
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="upper left")
    return fig


def finder_plotly(
    lrs: np.ndarray,
    losses: np.ndarray,
    smoothed: np.ndarray,
    suggestions: Mapping[str, float],
    *,
    recommended: str | None = None,
    bounds: tuple[float, float] | None = None,
    title: str | None = None,
) -> Any:
    """The same figure, interactive (plotly)."""
    import plotly.graph_objects as go

    lrs, losses, smoothed = (np.asarray(a, dtype=np.float64) for a in (lrs, losses, smoothed))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=lrs, y=losses, mode="lines", name="loss", opacity=0.35))
    fig.add_trace(go.Scatter(x=lrs, y=smoothed, mode="lines", name="smoothed loss", line={"width": 3}))
    if bounds is not None:
        fig.add_vrect(x0=bounds[0], x1=bounds[1], fillcolor="gray", opacity=0.12, line_width=0)
    for name, lr in suggestions.items():
        if not np.isfinite(lr) or lr <= 0:
            continue
        y = float(np.interp(np.log(lr), np.log(lrs), smoothed)) if lrs.size > 1 else float(smoothed[0])
        star = " (recommended)" if name == recommended else ""
        fig.add_trace(
            go.Scatter(
                x=[lr],
                y=[y],
                mode="markers",
                name=f"{name}: {lr:.3g}{star}",
                marker={
                    "size": 16 if star else 10,
                    "symbol": "star" if star else "circle",
                    "color": _COLORS.get(name, "#8c564b"),
                },
            )
        )
    limits = _y_limits(losses, smoothed)
    fig.update_layout(
        title=_title(title, recommended, suggestions.get(recommended or "")),
        xaxis={"type": "log", "title": "learning rate (log scale)"},
        yaxis={"title": "training loss", **({"range": list(limits)} if limits else {})},
        template="plotly_white",
    )
    return fig


def write_finder_figure(out: str | Path, *args: Any, **kwargs: Any) -> Path:
    """Write the figure to ``out``: ``.png``/``.svg`` (matplotlib) or ``.html`` (plotly, offline)."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in FIGURE_SUFFIXES:
        raise ValueError(f"path must end in one of {', '.join(FIGURE_SUFFIXES)}, got {out.name!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".html":
        finder_plotly(*args, **kwargs).write_html(out, include_plotlyjs=True, full_html=True)
    else:
        import matplotlib.pyplot as plt

        fig = finder_figure(*args, **kwargs)
        fig.savefig(out, dpi=130)
        plt.close(fig)
    return out
