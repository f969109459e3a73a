"""Figures as PNG or SVG with matplotlib (Agg), sized and labelled to read in print; an
animated spec as a GIF whose every frame is drawn by the same code."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from lrlab.files import atomic_path
from lrlab.plot.spec import Contour, FigureSpec, Panel, Trace, legend_ranks

IMAGE_SUFFIXES = (".png", ".svg")
_DASH = {"solid": "-", "dash": "--", "dot": ":"}
_MARKER = {
    "circle": "o",
    "x": "x",
    "triangle-up": "^",
    "diamond": "D",
    "star": "*",
    "square": "s",
    "triangle-down": "v",
    "triangle-left": "<",
    "triangle-right": ">",
    "pentagon": "p",
    "hexagon": "h",
    "cross": "P",
    None: None,
}
_RC = {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 8}


def plain(text: str) -> str:
    """Text for matplotlib: ``$`` would start mathtext and a leading ``_`` hides a legend entry."""
    text = text.replace("$", r"\$")
    return "\u200b" + text if text.startswith("_") else text


def draw_figure(spec: FigureSpec) -> Any:
    """``spec`` as a matplotlib ``Figure``. It is not registered with pyplot (no backend is
    switched, nothing to close): save it with ``fig.savefig`` or show it in a notebook."""
    from matplotlib.figure import Figure

    columns = spec.columns
    heights = _row_heights(spec)
    rows = len(heights)
    size = spec.size or (7.0 * columns + 3.2, 4.2 * sum(heights) + 0.6)
    widths = [p.width for p in spec.panels[:columns]]
    grid: dict[str, list[float]] = {}
    if len(widths) == columns and set(widths) != {1.0}:
        grid["width_ratios"] = widths
    if set(heights) != {1.0}:  # a panel of a few flat lines takes less room than the one it serves
        grid["height_ratios"] = heights
    with _rc():
        fig = Figure(figsize=size, layout="constrained")
        axes = fig.subplots(rows, columns, squeeze=False, gridspec_kw=grid or None)
        handles: dict[str, object] = {}
        marks: dict[str, object] = {}  # the vertical lines and bands, named off the curves (see _name_marks)
        for ax, panel in zip(axes.flat, spec.panels):
            _draw_panel(ax, panel, handles, marks if len(spec.panels) == 1 else None)
        ranks = legend_ranks(spec)
        handles = dict(sorted(handles.items(), key=lambda item: ranks.get(item[0], 0)))
        handles.update((k, v) for k, v in marks.items() if k not in handles)
        for ax in list(axes.flat)[len(spec.panels) :]:
            ax.set_visible(False)
        fig.suptitle(plain(spec.title), fontsize=13)
        if handles:
            _legend(fig, spec, handles)
    return fig


def write_figure(spec: FigureSpec, out: Path, dpi: int = 150) -> Path:
    """Draw ``spec`` into ``out`` (.png or .svg)."""
    suffix = out.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ValueError(f"out must end in .png or .svg, got {out.name!r}")
    fig = draw_figure(spec)
    with _rc(), atomic_path(out) as tmp:  # the old file or the new one, never half of one
        fig.savefig(tmp, dpi=dpi, format=suffix[1:])
    return out


def write_gif(spec: FigureSpec, out: Path, dpi: int = 80, fps: int = 12) -> Path:
    """An animated GIF of ``spec``: one frame per step of its animation (the figure alone
    when it has none), each drawn by :func:`draw_figure`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    steps = spec.animation.steps if spec.animation else []
    frames = []
    for frame in [spec.frame(step) for step in steps] or [spec]:
        canvas = FigureCanvasAgg(draw_figure(frame))
        canvas.figure.set_dpi(dpi)
        canvas.draw()
        width, height = canvas.get_width_height()
        frames.append(Image.frombuffer("RGBA", (width, height), canvas.buffer_rgba(), "raw", "RGBA", 0, 1))
    with atomic_path(out) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
    return out


def _row_heights(spec: FigureSpec) -> list[float]:
    """The relative height of each row of panels: its tallest panel's."""
    columns = spec.columns
    rows = (len(spec.panels) + columns - 1) // columns
    return [max(p.height for p in spec.panels[r * columns : (r + 1) * columns]) for r in range(rows)]


def _rc():  # type: ignore[no-untyped-def]
    import matplotlib

    return matplotlib.rc_context(_RC)


def _legend(fig, spec: FigureSpec, handles: dict[str, object]) -> None:  # type: ignore[no-untyped-def]
    """Every legend entry of the spec, none left out: at the right while they fit beside the
    panels, else below the figure in as many columns as the longest name allows."""
    labels = list(handles)
    rows = 4.2 * sum(_row_heights(spec)) / 0.19  # entries that fit at the right
    longest = max(len(k) for k in labels)
    if spec.legend == "below" or len(labels) > rows:
        width = 90 if longest > 45 else 45
        texts = [_wrap(plain(k), width) for k in labels]
        columns = max(1, min(len(labels), int(140 // (min(longest, width) + 6))))
        legend = fig.legend([handles[k] for k in labels], texts, loc="outside lower center", ncols=columns)
    else:
        legend = fig.legend(
            [handles[k] for k in labels], [_wrap(plain(k)) for k in labels], loc="outside right upper"
        )
    legend.get_frame().set_alpha(0.9)


def _wrap(text: str, width: int = 38) -> str:
    return "\n".join(textwrap.wrap(text, width, break_long_words=True, subsequent_indent="  ")) or text


def _draw_contour(ax, contour: Contour) -> None:  # type: ignore[no-untyped-def]
    from matplotlib.colors import LogNorm

    levels = np.asarray(contour.levels, dtype=np.float64)
    norm = LogNorm(vmin=levels[0], vmax=levels[-1]) if contour.log else None
    z = np.asarray(contour.z, dtype=np.float64)
    ax.contourf(contour.x, contour.y, np.maximum(z, levels[0]), levels=levels, cmap="viridis_r", norm=norm,
                alpha=0.55, extend="both")  # fmt: skip
    ax.contour(contour.x, contour.y, z, levels=levels, colors="k", linewidths=0.3, alpha=0.35)


def _draw_panel(ax, panel: Panel, handles: dict[str, object], marks: dict[str, object] | None) -> None:  # type: ignore[no-untyped-def]
    """One panel; its vertical lines and bands are named in ``marks`` (the figure's legend) or,
    with ``marks`` None (several panels, each with lines of its own), under its x label."""
    if panel.contour is not None:
        _draw_contour(ax, panel.contour)
    named: dict[str, object] = {}  # a label written inside the axes would sit on the curves
    for span in panel.spans:
        band = ax.axvspan(span.x0, span.x1, color=span.color, alpha=0.12, label=None)
        if span.label:
            named.setdefault(span.label, band)
    bars = _ErrorBars()
    for trace in panel.traces:
        _draw_trace(ax, trace, handles, bars)
    bars.draw(ax)
    for vline in panel.vlines:
        line = ax.axvline(vline.x, color=vline.color, linestyle=_DASH.get(vline.dash, "--"), linewidth=1.2)
        if vline.label:
            named.setdefault(vline.label, line)
    xlabel = plain(panel.xlabel)
    if marks is not None:
        marks.update((k, v) for k, v in named.items() if k not in marks)
    elif named:
        xlabel += "\n" + _wrap(_mark_words(panel), 90)
    if panel.hline is not None:
        ax.axhline(panel.hline, color="#888888", linewidth=0.8)
    if panel.xlog:
        ax.set_xscale("log")
    if panel.ylog:
        ax.set_yscale("log")
    if panel.ylim is not None:
        ax.set_ylim(*panel.ylim)
    if panel.xlim is not None:
        ax.set_xlim(*panel.xlim)
    if panel.xlog:
        _log_ticks(ax.xaxis, ax.get_xlim())
    if panel.ylog:
        _log_ticks(ax.yaxis, ax.get_ylim())
    ax.set_title(plain(panel.title))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(plain(panel.ylabel))
    if panel.contour is None:  # the contour lines are the map's grid
        ax.grid(True, alpha=0.3, which="both" if panel.ylog or panel.xlog else "major")
    if not panel.traces and panel.note:
        ax.text(
            0.5, 0.5, plain(panel.note), transform=ax.transAxes, ha="center", va="center", color="#666666"
        )


def _mark_words(panel: Panel) -> str:
    """The panel's lines and bands in words (:meth:`Panel.mark_words`), as matplotlib text."""
    return plain(panel.mark_words())


def _log_ticks(axis, limits: tuple[float, float]) -> None:  # type: ignore[no-untyped-def]
    """Labels at 1, 2 and 5 of each decade (only at the decades when the axis spans more
    than four), none on the minor ticks: on an axis spanning less than a decade matplotlib
    would label every minor tick, on top of each other."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    low, high = sorted(abs(v) for v in limits)
    decades = np.log10(high / low) if low > 0 and np.isfinite(high / low) else 1.0
    subs = (1.0, 2.0, 5.0) if decades <= 4 else (1.0,)
    axis.set_major_locator(LogLocator(base=10, subs=subs, numticks=12))
    axis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def _draw_trace(ax, t: Trace, handles: dict[str, object], bars: _ErrorBars) -> None:  # type: ignore[no-untyped-def]
    x = np.asarray(t.x, dtype=np.float64)
    y = np.asarray(t.y, dtype=np.float64)
    y = np.where(np.isfinite(y), y, np.nan)
    if t.band is not None:
        ax.fill_between(x, t.band[0], t.band[1], color=t.color, alpha=0.18, linewidth=0)
    marker = _MARKER.get(t.marker)
    if t.error is not None:
        (artist,) = ax.plot(
            x, y, color=t.color, marker=marker, linestyle=_DASH[t.dash] if "lines" in t.mode else "none",
            linewidth=t.width, markersize=t.marker_size * 0.8, alpha=t.opacity,
        )  # fmt: skip
        bars.add(x, y - np.asarray(t.error[0]), y + np.asarray(t.error[1]), t)
    elif t.mode == "markers":
        (artist,) = ax.plot(
            x, y, linestyle="none", marker=marker, color=t.color, markersize=t.marker_size * 0.9,
            markeredgewidth=2 if t.marker == "x" else 1, alpha=t.opacity,
            markeredgecolor=t.marker_edge or t.color,
        )  # fmt: skip
    elif t.bundle:
        artist = _draw_bundle(ax, x, y, t)
    else:
        (artist,) = ax.plot(
            x, y, linestyle=_DASH[t.dash], color=t.color, linewidth=t.width, alpha=t.opacity,
            marker=marker if t.mode == "lines+markers" and len(x) <= 60 else None,
            markersize=t.marker_size * 0.7, markeredgecolor=t.marker_edge or t.color,
        )  # fmt: skip
    if t.show_legend and t.name not in handles:
        handles[t.name] = artist


def _draw_bundle(ax, x: np.ndarray, y: np.ndarray, t: Trace):  # type: ignore[no-untyped-def]
    """The lines of a bundled trace (each ended by a NaN point) as one LineCollection."""
    from matplotlib.collections import LineCollection

    ends = np.flatnonzero(np.isnan(x))
    starts = np.concatenate(([0], ends + 1))
    stops = np.concatenate((ends, [len(x)]))
    segments = [np.column_stack((x[a:b], y[a:b])) for a, b in zip(starts, stops) if b > a]
    lines = LineCollection(segments, colors=t.color, linewidths=t.width, linestyles=_DASH[t.dash], alpha=t.opacity)
    ax.add_collection(lines, autolim=False)
    finite = np.isfinite(x) & np.isfinite(y)
    if finite.any():  # the axes' data limits from the finite points, as a plain line would set them
        ax.update_datalim(np.column_stack((x[finite], y[finite])))
        ax.autoscale_view()
    return lines


class _ErrorBars:
    """The error bars of a panel's traces, drawn at the end as one LineCollection (the bars)
    and one scatter (their caps): a matplotlib ``errorbar`` per trace costs several artists
    each, and a U-curve panel of a study has dozens of traces."""

    def __init__(self) -> None:
        self.x: list[np.ndarray] = []
        self.low: list[np.ndarray] = []
        self.high: list[np.ndarray] = []
        self.colors: list[tuple[float, float, float, float]] = []
        self.width = 1.0

    def add(self, x: np.ndarray, low: np.ndarray, high: np.ndarray, t: Trace) -> None:
        from matplotlib.colors import to_rgba

        ok = np.isfinite(x) & np.isfinite(low) & np.isfinite(high)
        self.x.append(x[ok])
        self.low.append(low[ok])
        self.high.append(high[ok])
        self.colors += [to_rgba(t.color, t.opacity)] * int(ok.sum())
        self.width = max(self.width, t.width)

    def draw(self, ax) -> None:  # type: ignore[no-untyped-def]
        from matplotlib.collections import LineCollection

        if not self.colors:
            return
        x, low, high = (np.concatenate(v) for v in (self.x, self.low, self.high))
        segments = np.stack([np.column_stack((x, low)), np.column_stack((x, high))], axis=1)
        ax.add_collection(LineCollection(segments, colors=self.colors, linewidths=self.width))
        caps = np.concatenate([x, x]), np.concatenate([low, high])
        ax.scatter(*caps, marker="_", s=36, c=self.colors * 2, linewidths=self.width)
