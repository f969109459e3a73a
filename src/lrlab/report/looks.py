"""Who is drawn in colour, and how: each configuration's :class:`Look` (colour, legend
name, group, hover text), its legend names, the drawing and legend order, and the grey
configurations bundled into one trace per panel. Computed once per report
(``ReportData.names`` and ``ReportData.looks``) and shared by every figure.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from lrlab.core.diagnostics import peak_lr
from lrlab.core.grouping import Configuration, format_value, varying_axes
from lrlab.core.records import schedule_family
from lrlab.formatting import num
from lrlab.plot.spec import FigureSpec, Panel, Trace, highlight_color
from lrlab.schedules import Schedule
from lrlab.schedules.cyclic import Cyclic

if TYPE_CHECKING:
    from lrlab.report.data import ReportData

__all__ = [
    "COLOUR_WORDS",
    "GREY",
    "MAX_COLOURED",
    "OTHERS",
    "LegendNames",
    "Look",
    "bundle_grey",
    "compute_looks",
    "drawing_order",
    "highlighted",
    "hover_texts",
    "legend_names",
    "legend_once",
    "legend_order",
    "peak_of",
    "schedule_name",
    "short_label",
]

# ---------------------------------------------------------------- who is drawn in colour

GREY = "#b3b3b3"
OTHERS = "other configurations"
MAX_COLOURED = 10  # configurations drawn in colour; beyond, the best of each family and the rest grey
_MIN_HIGHLIGHTED = 5  # with one family only, its best few are drawn in colour


@dataclass(frozen=True)
class Look:
    """How one configuration is drawn in every figure of a report."""

    color: str
    name: str  # its legend entry: short (optimizer, schedule family, LR)
    group: str  # legend group: its label when in colour, OTHERS when grey
    hover: str  # the full configuration
    highlighted: bool
    rank: int  # legend order (the scorer's order; grey last)

    def width(self, base: float = 1.8) -> float:
        return base if self.highlighted else 0.7

    @property
    def opacity(self) -> float:
        return 1.0 if self.highlighted else 0.55


def schedule_name(schedule: Schedule) -> str:
    """A schedule's family, told apart where one family takes several forms: ``cosine``,
    ``warmup+cosine``, ``cyclic``, ``cyclic triangular2``, ``cyclic sine``."""
    name = schedule_family(schedule)
    if isinstance(schedule, Cyclic):
        extras = [schedule.mode] if schedule.mode != "triangular" else []
        extras += [schedule.shape] if schedule.shape != "triangle" else []
        name = " ".join([name, *extras])
    return name


def _optimizer_name(spec: str) -> str:
    """A long ``name(key=value, ...)`` spec shortened to ``name(...)``; anything else as it is."""
    name, bracket, _rest = spec.partition("(")
    return f"{name}(...)" if len(spec) > 24 and bracket and name.isidentifier() else spec


@dataclass(frozen=True)
class LegendNames:
    """What the legend names are made of, found once per report (``ReportData.names``): each
    configuration's schedule name, and the schedule families and optimizers of the report."""

    schedule: dict[str, str]  # configuration key -> schedule_name
    families: frozenset[str]
    optimizers: frozenset[str]
    varying: tuple[str, ...]  # the configuration axes that vary in the report


def legend_names(configs: Sequence[Configuration]) -> LegendNames:
    """The legend names of a report's configurations."""
    by_key = {c.key: schedule_name(c.config.schedule) for c in configs}
    optimizers = frozenset(c.config.optimizer for c in configs)
    return LegendNames(by_key, frozenset(by_key.values()), optimizers, tuple(varying_axes([c.axes for c in configs])))


def peak_of(data: ReportData, cfg: Configuration) -> float:
    """The largest LR of the configuration's schedule over its planned steps."""
    return peak_lr(cfg, data.planned_steps)


def short_label(data: ReportData, cfg: Configuration) -> str:
    """A legend entry: the optimizer and schedule family when they vary in the report,
    the other varying axes, and the LR (the schedule's peak when that is not its ``lr``).
    The full configuration is the hover text and the run table's first column."""
    names = data.names
    parts = []
    if len(names.optimizers) > 1:
        parts.append(_optimizer_name(cfg.config.optimizer))
    if len(names.families) > 1:
        parts.append(names.schedule[cfg.key])
    for axis in names.varying:
        if axis not in ("lr", "schedule", "optimizer", "momentum"):
            parts.append(f"{axis}={format_value(cfg.axes.get(axis))}")
    peak = peak_of(data, cfg)
    same = cfg.lr is not None and math.isclose(peak, cfg.lr, rel_tol=1e-9)
    parts.append(f"lr={num(peak)}" if same else f"peak lr={num(peak)}")
    return ", ".join(parts)


def _family_of(data: ReportData) -> Callable[[Configuration], tuple[str, ...]]:
    """What a highlighted configuration stands for: its schedule family, and its optimizer
    too when the schedule families alone are fewer than three."""
    names = data.names
    with_optimizer = len(names.optimizers) > 1 and len(names.families) < 3

    def family(cfg: Configuration) -> tuple[str, ...]:
        key = (names.schedule[cfg.key],) if len(names.families) > 1 else ()
        return key + ((cfg.config.optimizer,) if with_optimizer or not key else ())

    return family


def highlighted(data: ReportData) -> list[Configuration]:
    """The configurations drawn in colour, best first by the one scorer: all of them up to
    ``MAX_COLOURED``; beyond, the best of each schedule family (or optimizer), at most
    ``MAX_COLOURED`` families, topped up to a few when there is a single family."""
    ranked = [cfg for cfg, _entry in data.ranking]
    if len(data.configs) <= MAX_COLOURED:
        return ranked + [c for c in data.configs if c not in ranked]
    family = _family_of(data)
    picks: list[Configuration] = []
    seen: set[tuple[str, ...]] = set()
    for cfg in ranked:
        if family(cfg) not in seen:
            seen.add(family(cfg))
            picks.append(cfg)
    picks = picks[:MAX_COLOURED]
    for cfg in ranked:
        if len(picks) >= min(_MIN_HIGHLIGHTED, len(ranked)):
            break
        if cfg not in picks:
            picks.append(cfg)
    return sorted(picks, key=ranked.index)


def compute_looks(data: ReportData) -> dict[str, Look]:
    """Configuration key -> how it is drawn (``ReportData.looks`` keeps it): the highlighted
    ones in colour, in the scorer's order, with short unique legend names; every other one
    thin and grey under one legend entry (``OTHERS``), its full configuration in its hover text."""
    chosen = highlighted(data)
    out: dict[str, Look] = {}
    used: dict[str, int] = {}
    for position, cfg in enumerate(chosen):
        name = short_label(data, cfg)
        used[name] = used.get(name, 0) + 1
        if used[name] > 1:
            name = f"{name} ({used[name]})"
        out[cfg.key] = Look(highlight_color(position), name, cfg.label, cfg.label, True, position)
    grey = len(data.configs) - len(chosen)
    for cfg in data.configs:
        if cfg.key not in out:
            out[cfg.key] = Look(GREY, f"{OTHERS} ({grey})", OTHERS, cfg.label, False, 10_000)
    return out


def drawing_order(data: ReportData) -> list[Configuration]:
    """Grey configurations first (underneath), the coloured ones over them, best on top."""
    look = data.looks
    return sorted(data.configs, key=lambda c: (look[c.key].highlighted, -look[c.key].rank))


COLOUR_WORDS = (
    "Up to ten configurations each have a colour; with more, the best of each schedule family "
    "(or optimizer) is in colour, ordered by the final score, and the rest are thin grey lines "
    "(hover names each one where the points are few; the run table at the end lists them all)."
)
"""The captions' sentence on colours."""


def legend_once(look: Look, shown: set[str]) -> bool:
    """Whether this trace carries its group's legend entry (the first trace of the group)."""
    if look.group in shown:
        return False
    shown.add(look.group)
    return True


def hover_texts(look: Look, text: str, n: int) -> list[str]:
    return [f"{look.hover} | {text}"] * n


# ---------------------------------------------------------------- legend order and the grey bundle

def legend_order(data: ReportData, spec: FigureSpec) -> FigureSpec:
    """Legend entries in the scorer's order, the grey configurations' entry last (the
    traces are drawn the other way round: grey underneath, the best on top); the grey
    lines of each panel bundled into one trace per kind of line (:func:`bundle_grey`)."""
    ranks = {lk.group: lk.rank + 1 for lk in data.looks.values()}
    for panel in spec.panels:
        for trace in panel.traces:
            trace.legend_rank = ranks.get(trace.group, 0)
        bundle_grey(panel)
    return spec


# A bundled grey trace keeps a hover text per point up to this many points (the epoch
# figures); beyond (every step of hundreds of runs) one text is written for the whole bundle.
HOVER_POINTS = 5000


def bundle_grey(panel: Panel) -> None:
    """Replace the grey traces (group ``OTHERS``) of ``panel`` by one trace per kind (line
    style, marker, width): their points concatenated, a NaN point ending each line, so that
    500 grey runs cost the renderers one trace, not 500. The bundle takes the place of the
    first trace of its kind (grey is drawn first, underneath)."""
    kinds: dict[tuple, list[Trace]] = {}
    for t in panel.traces:
        if t.group == OTHERS and t.band is None and t.error is None and t.animate is None:
            kinds.setdefault(_kind(t), []).append(t)
    if not any(len(ts) > 1 for ts in kinds.values()):
        return
    bundles = {id(ts[0]): _bundle(ts) for ts in kinds.values() if len(ts) > 1}
    merged = {id(t) for ts in kinds.values() if len(ts) > 1 for t in ts}
    panel.traces = [bundles.get(id(t), t) for t in panel.traces if id(t) in bundles or id(t) not in merged]


def _kind(t: Trace) -> tuple:
    return (t.name, t.color, t.dash, t.mode, t.marker, t.marker_size, t.width, t.opacity, t.marker_edge)


def _bundle(traces: Sequence[Trace]) -> Trace:
    lines = traces[0].mode != "markers"
    gap = np.asarray([np.nan]) if lines else np.empty(0)
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for t in traces:
        xs += [np.asarray(t.x, dtype=np.float64), gap]
        ys += [np.asarray(t.y, dtype=np.float64), gap]
    x, y = np.concatenate(xs), np.concatenate(ys)
    hover = None
    if all(t.hover is not None for t in traces):
        if len(x) <= HOVER_POINTS:
            hover = [h for t in traces for h in [*t.hover, *([""] if lines else [])]]
        else:
            hover = [f"{OTHERS}: a grey line (the run table at the end names each one)"] * len(x)
    return dataclasses.replace(
        traces[0], x=x, y=y, hover=hover, show_legend=any(t.show_legend for t in traces), bundle=lines
    )
