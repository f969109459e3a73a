"""Figures as PNG or SVG with matplotlib (Agg), sized and labelled to read in print."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from lrlab.report.figures import FigureSpec, Panel, Trace

IMAGE_SUFFIXES = (".png", ".svg")
_DASH = {"solid": "-", "dash": "--", "dot": ":"}
_MARKER = {
    "circle": "o",
    "x": "x",
    "triangle-up": "^",
    "diamond": "D",
    "star": "*",
    "square": "s",
    None: None,
}
_MAX_LEGEND = 24  # legend entries beyond this are summarised


def plain(text: str) -> str:
    """Text for matplotlib: ``$`` would start mathtext and a leading ``_`` hides a legend entry."""
    text = text.replace("$", r"\$")
    return "\u200b" + text if text.startswith("_") else text


def write_figure(spec: FigureSpec, out: Path, dpi: int = 150) -> Path:
    """Draw ``spec`` into ``out`` (.png or .svg)."""
    suffix = out.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ValueError(f"out must end in .png or .svg, got {out.name!r}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = spec.columns
    rows = (len(spec.panels) + columns - 1) // columns
    width = 7.0 * columns + 3.2
    height = 4.2 * rows + 0.6
    with plt.rc_context({"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 8}):
        fig, axes = plt.subplots(rows, columns, figsize=(width, height), squeeze=False, layout="constrained")
        handles: dict[str, object] = {}
        for ax, panel in zip(axes.flat, spec.panels):
            _draw_panel(ax, panel, handles)
        for ax in list(axes.flat)[len(spec.panels) :]:
            ax.set_visible(False)
        fig.suptitle(plain(spec.title), fontsize=13)
        if handles:
            labels = list(handles)
            shown = labels[:_MAX_LEGEND]
            extra = len(labels) - len(shown)
            legend = fig.legend(
                [handles[k] for k in shown], [_wrap(plain(k)) for k in shown], loc="outside right upper",
                title=f"+{extra} more (see the HTML report)" if extra else None,
            )  # fmt: skip
            legend.get_frame().set_alpha(0.9)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=dpi)
        plt.close(fig)
    return out


def _wrap(text: str, width: int = 38) -> str:
    return "\n".join(textwrap.wrap(text, width, break_long_words=True, subsequent_indent="  ")) or text


def _draw_panel(ax, panel: Panel, handles: dict[str, object]) -> None:  # type: ignore[no-untyped-def]
    for span in panel.spans:
        ax.axvspan(span.x0, span.x1, color=span.color, alpha=0.12, label=None)
    for trace in panel.traces:
        _draw_trace(ax, trace, handles)
    for vline in panel.vlines:
        ax.axvline(vline.x, color=vline.color, linestyle=_DASH.get(vline.dash, "--"), linewidth=1.2)
        ax.annotate(
            plain(vline.label), (vline.x, 1.0), xycoords=("data", "axes fraction"), rotation=90, fontsize=7,
            ha="right", va="top", color=vline.color,
        )  # fmt: skip
    for index, span in enumerate(panel.spans):  # one row each, so that overlapping bands stay legible
        ax.annotate(
            plain(span.label),
            (np.sqrt(span.x0 * span.x1) if panel.xlog else (span.x0 + span.x1) / 2, 0.02 + 0.04 * index),
            xycoords=("data", "axes fraction"), fontsize=7, ha="center", color=span.color,
        )  # fmt: skip
    if panel.hline is not None:
        ax.axhline(panel.hline, color="#888888", linewidth=0.8)
    if panel.xlog:
        ax.set_xscale("log")
    if panel.ylog:
        ax.set_yscale("log")
    if panel.ylim is not None:
        ax.set_ylim(*panel.ylim)
    ax.set_title(plain(panel.title))
    ax.set_xlabel(plain(panel.xlabel))
    ax.set_ylabel(plain(panel.ylabel))
    ax.grid(True, alpha=0.3, which="both" if panel.ylog or panel.xlog else "major")
    if not panel.traces and panel.note:
        ax.text(
            0.5, 0.5, plain(panel.note), transform=ax.transAxes, ha="center", va="center", color="#666666"
        )


def _draw_trace(ax, t: Trace, handles: dict[str, object]) -> None:  # type: ignore[no-untyped-def]
    x = np.asarray(t.x, dtype=np.float64)
    y = np.asarray(t.y, dtype=np.float64)
    y = np.where(np.isfinite(y), y, np.nan)
    if t.band is not None:
        ax.fill_between(x, t.band[0], t.band[1], color=t.color, alpha=0.18, linewidth=0)
    marker = _MARKER.get(t.marker)
    if t.error is not None:
        artist = ax.errorbar(
            x, y, yerr=[t.error[0], t.error[1]], color=t.color, marker=marker, linestyle=_DASH[t.dash],
            linewidth=t.width, markersize=t.marker_size * 0.8, capsize=3, alpha=t.opacity,
        )  # fmt: skip
    elif t.mode == "markers":
        (artist,) = ax.plot(
            x, y, linestyle="none", marker=marker, color=t.color, markersize=t.marker_size * 0.9,
            markeredgewidth=2 if t.marker == "x" else 1, alpha=t.opacity,
        )  # fmt: skip
    else:
        (artist,) = ax.plot(
            x, y, linestyle=_DASH[t.dash], color=t.color, linewidth=t.width, alpha=t.opacity,
            marker=marker if t.mode == "lines+markers" and len(x) <= 60 else None,
            markersize=t.marker_size * 0.7,
        )  # fmt: skip
    if t.show_legend and t.name not in handles:
        handles[t.name] = artist
