"""The figure vocabulary: a figure as plain data (panels of traces, lines, spans, contours,
an animation), drawn alike by the two renderers, ``plot/static.py`` (matplotlib: PNG, SVG,
GIF) and ``plot/interactive.py`` (plotly: an offline page).

Building a spec is pure (arrays in, specs out), so every output shows the same curves. The
report's figures, the range test (``plot/range_test.py``), the schedule figure
(``plot/schedules.py``) and the surface figure (``surfaces/drawing.py``) are all specs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

# Qualitative palette (tab10 then its lighter partner colours): readable in print.
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
    "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)  # fmt: skip


def color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


# The palette without its greys: a highlighted configuration never looks like the grey rest.
_HIGHLIGHT = tuple(c for c in PALETTE if c not in ("#7f7f7f", "#c7c7c7"))


def highlight_color(index: int) -> str:
    return _HIGHLIGHT[index % len(_HIGHLIGHT)]


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
    legend_rank: int = 0  # legend entries in increasing rank, then in drawing order
    bundle: bool = False  # several lines in one trace, each ended by a NaN point (the grey runs)

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
    height: float = 1.0  # relative height of the panel's row (a row takes its tallest panel's)

    def mark_words(self) -> str:
        """The panel's lines and bands in words, for under its x label when several panels
        each have their own: ``dashed: range test: lr=0.3; band: cyclic bounds 0.1-0.4``."""
        words = [f"{'dashed' if v.dash == 'dash' else 'dotted' if v.dash == 'dot' else 'line'}: {v.label}"
                 for v in self.vlines if v.label]  # fmt: skip
        words += [f"band: {s.label}" for s in self.spans if s.label]
        return "; ".join(words)


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

    def legend_entries(self) -> list[str]:
        """The names the legend lists, in its order: one per trace shown in the legend."""
        ranks = legend_ranks(self)
        names = list(dict.fromkeys(t.name for p in self.panels for t in p.traces if t.show_legend))
        return sorted(names, key=lambda n: ranks[n])

    def is_empty(self) -> bool:
        return not any(p.traces or p.contour is not None for p in self.panels)

    def frame(self, step: int, *, titled: bool = True) -> FigureSpec:
        """The figure as it stands at ``step`` of its animation, the step in its title."""
        label = self.animation.label if self.animation else "step"
        panels = [dataclasses.replace(p, traces=[t.at_step(step) for t in p.traces]) for p in self.panels]
        title = f"{self.title} - {label} {step}" if titled else self.title
        return dataclasses.replace(self, title=title, panels=panels)


def legend_ranks(spec: FigureSpec) -> dict[str, int]:
    """Legend name -> its rank (the lowest of the traces of that name)."""
    ranks: dict[str, int] = {}
    for panel in spec.panels:
        for t in panel.traces:
            ranks[t.name] = min(ranks.get(t.name, t.legend_rank), t.legend_rank)
    return ranks


def error_bars(mean: Sequence[float], low: Sequence[float], high: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Distances from the mean down to the smallest seed and up to the largest (order
    statistics), never negative: the mean of tied seeds can land a rounding error outside
    ``[min, max]``.

    >>> error_bars([0.29999999999999993], [0.3], [0.3])[0].tolist()
    [0.0]
    """
    m, lo, hi = (np.asarray(v, dtype=np.float64) for v in (mean, low, high))
    return np.maximum(m - lo, 0.0), np.maximum(hi - m, 0.0)
