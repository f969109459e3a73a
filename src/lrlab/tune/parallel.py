"""The tune's parallel coordinates, as a PNG and as the page's interactive figure: one row of
axes per schedule family, each line a completed trial coloured by its score.

Optuna's own figure puts every knob of every family on one set of axes, so a trial that did
not draw a knob (a cosine trial has no cycle length) shows as "None" at the bottom of that
axis, and the tick labels of neighbouring axes run into each other. Here a family's row has
only the knobs its trials drew, a log-scaled knob is drawn on a log axis, each axis has at
most three numeric ticks (its lowest, middle and highest drawn value) or its categories, and
the labels are kept short and on one side of their axis. A knob some trial of the family
left undrawn breaks that trial's line there instead of inventing a value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lrlab.formatting import num

__all__ = ["Axis", "FamilyRows", "family_rows", "knob_units", "parallel_figure", "parallel_plotly"]

FAMILY = "family"
LABEL_CHARS = 18  # longer category labels end in an ellipsis
SCORE = "score"


@dataclass(frozen=True)
class Axis:
    """One vertical axis: the position (0..1) of each trial on it (NaN: not drawn) and its ticks."""

    name: str
    positions: np.ndarray
    ticks: tuple[tuple[float, str], ...]


@dataclass(frozen=True)
class FamilyRows:
    """The axes of one family's row and the scores of its trials (their line colours)."""

    family: str
    axes: tuple[Axis, ...]
    scores: np.ndarray


def _short(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "\u2026"


def _numeric_axis(name: str, values: list[float | None], log: bool) -> Axis:
    drawn = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    finite = drawn[np.isfinite(drawn)]
    log = log and bool(len(finite)) and bool((finite > 0).all())
    scale = np.log10 if log else (lambda a: a)
    low, high = (float(scale(finite.min())), float(scale(finite.max()))) if len(finite) else (0.0, 1.0)
    span = high - low
    positions = (scale(drawn) - low) / span if span > 0 else np.where(np.isfinite(drawn), 0.5, np.nan)
    if not len(finite):
        return Axis(name, positions, ())
    if span <= 0:
        return Axis(name, positions, ((0.5, num(float(finite[0]), 3)),))
    middle = 10 ** ((low + high) / 2) if log else (low + high) / 2
    ticks = ((0.0, num(float(finite.min()), 3)), (0.5, num(middle, 3)), (1.0, num(float(finite.max()), 3)))
    return Axis(name, positions, ticks)


def _category_axis(name: str, values: list[Any], choices: Sequence[Any]) -> Axis:
    present = [c for c in choices if any(v == c for v in values)] or list(
        dict.fromkeys(v for v in values if v is not None)
    )
    place = {str(c): (i / (len(present) - 1) if len(present) > 1 else 0.5) for i, c in enumerate(present)}
    positions = np.array([np.nan if v is None else place.get(str(v), np.nan) for v in values], dtype=float)
    return Axis(name, positions, tuple((p, _short(str(c))) for c, p in place.items()))


def _axis(name: str, values: list[Any], distribution: Any) -> Axis:
    """An axis for a knob from its Optuna distribution (categorical, or numeric with its log flag)."""
    choices = getattr(distribution, "choices", None)
    if choices is not None:
        return _category_axis(name, values, choices)
    return _numeric_axis(name, values, bool(getattr(distribution, "log", False)))


# What a knob's raw draw is, by its form in the space: the axes show the draws, not the values
# they became (an LR drawn as a multiple of the range test's LR reads 0.3-3, not 0.01-0.1).
_UNITS = {"from_finder": "x range test LR", "epochs": "epochs", "run": "of the run", "steps": "steps"}


def knob_units(space: Any) -> dict[str, str]:
    """What each searched knob's draw is measured in, by Optuna's name (``cosine.lr``: ``x
    range test LR``; ``cyclic.base_lr``: ``x max_lr``; ``cyclic.step_size``: ``epochs``), from
    a tune's :class:`~lrlab.tune.space.Space`; knobs drawn as themselves have none."""
    units: dict[str, str] = {}
    for family in space.families.values():
        params = dict(family.params)
        warm = family.warmup or space.warmup
        if warm is not None:
            params["warmup"] = warm
        for key, param in params.items():
            unit = f"x {family.peak}" if param.form == "ratio" else _UNITS.get(param.form)
            if unit:
                units[f"{family.name}.{key}"] = unit
    return units


def family_rows(
    trials: Sequence[Any], metric: str = SCORE, units: Mapping[str, str] | None = None
) -> list[FamilyRows]:
    """The rows of the figure from Optuna ``FrozenTrial``s: the completed ones, grouped by
    their ``family`` (one row when the space has one family). ``units`` (:func:`knob_units`)
    name what a knob's draw is measured in, after its name (``lr (x range test LR)``)."""
    done = [t for t in trials if t.value is not None and math.isfinite(t.value)]
    families = list(dict.fromkeys(str(t.params.get(FAMILY, "")) for t in done))
    rows = []
    for family in families:
        members = [t for t in done if str(t.params.get(FAMILY, "")) == family]
        knobs = sorted({k for t in members for k in t.params if k != FAMILY})
        scores = np.array([t.value for t in members], dtype=float)
        axes = [_numeric_axis(metric, list(scores), False)]
        for knob in knobs:
            distribution = next(t.distributions[knob] for t in members if knob in t.distributions)
            label = knob.split(".", 1)[1] if family and knob.startswith(family + ".") else knob
            unit = (units or {}).get(knob)
            label = f"{label} ({unit})" if unit else label
            axes.append(_axis(label, [t.params.get(knob) for t in members], distribution))
        rows.append(FamilyRows(family, tuple(axes), scores))
    return rows


def parallel_figure(
    trials: Sequence[Any],
    *,
    metric: str = "score",
    higher_is_better: bool = False,
    units: Mapping[str, str] | None = None,
) -> Any:
    """The figure (a matplotlib ``Figure``, not registered with pyplot) of ``trials``."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    rows = family_rows(trials, metric, units)
    height = 0.9 + 2.3 * max(len(rows), 1)
    fig = Figure(figsize=(10, height), layout="constrained")
    every = np.concatenate([r.scores for r in rows]) if rows else np.zeros(0)
    norm = Normalize(float(every.min()), float(every.max())) if len(every) else Normalize(0, 1)
    cmap = colormaps["viridis_r" if higher_is_better else "viridis"]  # the best trials darkest
    axes = fig.subplots(max(len(rows), 1), 1, squeeze=False)[:, 0]
    for ax, row in zip(axes, rows):
        _draw_row(ax, row, cmap, norm, higher_is_better)
    if not rows:
        axes[0].text(0.5, 0.5, "no completed trial", ha="center", va="center", transform=axes[0].transAxes)
        axes[0].set_axis_off()
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=list(axes), shrink=0.8, pad=0.01)
    bar.set_label(f"{metric} ({'higher' if higher_is_better else 'lower'} is better)")
    fig.suptitle("Parallel coordinates: each line a completed trial, by schedule family", fontsize=12)
    return fig


def _draw_row(ax: Any, row: FamilyRows, cmap: Any, norm: Any, higher_is_better: bool) -> None:
    count = len(row.axes)
    positions = np.column_stack([a.positions for a in row.axes])
    order = np.argsort(row.scores if higher_is_better else -row.scores)  # the best drawn last, on top
    for i in order:
        ax.plot(range(count), positions[i], color=cmap(norm(row.scores[i])), linewidth=1.4, alpha=0.85)
    for x, axis in enumerate(row.axes):
        ax.axvline(x, color="#444444", linewidth=0.8)
        for y, label in axis.ticks:
            ax.plot([x - 0.03, x], [y, y], color="#444444", linewidth=0.8)
            ax.text(x + 0.04, y, label, fontsize=7, va="center", ha="left", color="#222222",
                    bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.7})  # fmt: skip
    ax.set_xlim(-0.15, count - 1 + 0.6 if count > 1 else 1.0)
    ax.set_ylim(-0.08, 1.08)
    ax.set_xticks(range(count), [a.name.replace(" (", "\n(", 1) for a in row.axes], fontsize=8)
    ax.set_yticks([])
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    title = f"{row.family}: {len(row.scores)} trial(s)" if row.family else f"{len(row.scores)} trial(s)"
    ax.set_title(title, fontsize=10, loc="left")


ROW_PX = 300  # the height of one family's figure on the page


def parallel_plotly(
    trials: Sequence[Any],
    *,
    metric: str = "score",
    higher_is_better: bool = False,
    units: Mapping[str, str] | None = None,
) -> list[dict]:
    """The same rows as :func:`parallel_figure` as plotly figures (dicts), one ``parcoords``
    figure per family with the same ticks (no "None" axis value; axes can be brushed and
    reordered) and one colour scale across them. One figure each: plotly.js draws the lines of
    only the first of several parcoords traces in one figure. A trial that left a knob of its
    family undrawn cannot be a parcoords line (it has no gap): it is left out, and the title
    counts it."""
    rows = family_rows(trials, metric, units)
    every = np.concatenate([r.scores for r in rows]) if rows else np.zeros(0)
    scores = (float(every.min()), float(every.max())) if len(every) else (0.0, 1.0)
    figures = []
    for row in rows:
        whole = np.all(np.isfinite(np.column_stack([a.positions for a in row.axes])), axis=1)
        title = f"{row.family}: {int(whole.sum())} trial(s)" if row.family else f"{int(whole.sum())} trial(s)"
        if not whole.all():
            title += f" ({int((~whole).sum())} more left a knob undrawn: not drawn here)"
        layout = {"title": {"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 14}},
                  "height": ROW_PX, "margin": {"t": 60, "l": 70, "r": 40, "b": 60}}  # fmt: skip
        figures.append({"data": [_parcoords(row, whole, scores, higher_is_better, metric)], "layout": layout})
    return figures


def _parcoords(
    row: FamilyRows, whole: np.ndarray, scores: tuple[float, float], higher_is_better: bool, metric: str
) -> dict:
    """One family's ``parcoords`` trace: the trials in ``whole``, coloured on ``scores``'s scale."""
    dimensions = [
        {
            "label": axis.name.replace(" (", "<br>(", 1),
            "values": [float(p) for p in axis.positions[whole]],
            "range": [0.0, 1.0],
            "tickvals": [float(p) for p, _ in axis.ticks],
            "ticktext": [label for _, label in axis.ticks],
        }
        for axis in row.axes
    ]
    bar = f"{metric} ({'higher' if higher_is_better else 'lower'} is better)"
    line = {
        "color": [float(v) for v in row.scores[whole]],
        "colorscale": "Viridis",
        "reversescale": higher_is_better,  # the best trials darkest, as in the PNG
        "cmin": scores[0],
        "cmax": scores[1],
        "showscale": True,
        "colorbar": {"title": {"text": bar, "side": "right"}, "thickness": 12},
    }
    return {"type": "parcoords", "dimensions": dimensions, "line": line, "labelfont": {"size": 12},
            "tickfont": {"size": 10}, "labelside": "bottom"}  # fmt: skip
