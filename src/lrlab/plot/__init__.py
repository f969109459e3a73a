"""Figures as plain data and their two renderers, below everything that draws.

``spec`` holds the vocabulary (``Trace``, ``Panel``, ``FigureSpec``, ...); ``static`` draws a
spec with matplotlib (PNG, SVG, GIF), ``interactive`` with plotly (an offline page);
``range_test`` and ``schedules`` build the range-test and schedule figures; ``downsample``
thins long series for drawing. No torch.
"""

from __future__ import annotations

from pathlib import Path

from lrlab.plot.interactive import write_figure_page
from lrlab.plot.spec import Animation, Contour, FigureSpec, Panel, Span, Trace, VLine, color
from lrlab.plot.static import draw_figure, write_figure, write_gif

FIGURE_SUFFIXES = (".png", ".svg", ".html", ".gif")

__all__ = [
    "FIGURE_SUFFIXES",
    "Animation",
    "Contour",
    "FigureSpec",
    "Panel",
    "Span",
    "Trace",
    "VLine",
    "color",
    "draw_figure",
    "save_figure",
    "write_figure",
]


def save_figure(spec: FigureSpec, out: Path | str, *, dpi: int | None = None) -> Path:
    """Write one figure: ``.png``/``.svg`` (matplotlib), ``.html`` (an offline plotly page)
    or ``.gif`` (matplotlib, a frame per step of the spec's animation)."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in FIGURE_SUFFIXES:
        raise ValueError(f"out must end in one of {', '.join(FIGURE_SUFFIXES)}, got {out.name!r}")
    if suffix == ".html":
        return write_figure_page(spec, out)
    if suffix == ".gif":
        return write_gif(spec, out, **({} if dpi is None else {"dpi": dpi}))
    return write_figure(spec, out, **({} if dpi is None else {"dpi": dpi}))
