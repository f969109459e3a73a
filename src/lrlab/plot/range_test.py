"""The range-test figure: loss against LR of one or several range tests, each suggestion
rule marked, the chosen LR and the cyclic bounds. A fresh ``FinderResult`` and a stored
``FinderRecord`` both become a :class:`RangeTest` and so draw alike."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lrlab.plot.spec import FigureSpec, Panel, Span, Trace, VLine, color

# Colours of the suggestion rules when one range test is drawn (several tests: one colour each).
RULE_COLORS = {
    "steepest": "#d62728",
    "valley": "#2ca02c",
    "minimum/10": "#9467bd",
    "minimum/3": "#e377c2",
    "minimum/30": "#17becf",
    "halving": "#ff7f0e",
}
# One marker per rule, none shared (the star marks the chosen rule, whichever it is), so that
# with several range tests in one colour each the rules are still told apart by shape.
RULE_MARKERS = {
    "steepest": "triangle-up",
    "valley": "diamond",
    "minimum/10": "circle",
    "minimum/3": "square",
    "minimum/30": "triangle-down",
    "minimum/7": "pentagon",
    "halving": "hexagon",
}
OTHER_MARKERS = ("cross", "triangle-left", "triangle-right")  # rules of another name, in turn
FINDER_CAPTION = (
    "The LR grows exponentially over a short run while the loss is recorded (thin: raw, thick: "
    "smoothed). The loss falls fastest well before it blows up; markers show each rule's "
    "suggestion, one shape per rule (a star the chosen one), the dashed vertical line the chosen "
    "LR and the shaded band the suggested cyclic bounds (both named in the legend)."
)


@dataclass(frozen=True)
class RangeTest:
    """One range test to draw, as plain arrays: a fresh ``FinderResult`` and a stored
    ``FinderRecord`` become the same value and so draw alike."""

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggestions: Mapping[str, float]
    lr: float | None = None  # the chosen LR (None or NaN: no rule could decide)
    rule: str | None = None  # the rule that chose it (found from the suggestions when None)
    bounds: tuple[float, float] | None = None  # cyclic (base_lr, max_lr)
    name: str = "loss (thick: smoothed, thin: raw)"


def range_test_figure(
    tests: Sequence[RangeTest],
    *,
    title: str | None = None,
    panel_title: str = "",
    key: str = "finder",
    caption: str = FINDER_CAPTION,
) -> FigureSpec:
    """Loss against LR (log x) of each range test: raw and smoothed curves, a marker per
    suggestion rule, the chosen LR as a vertical line and the cyclic bounds shaded.

    With one test each rule has its own colour; with several each test has one colour and
    the rules are told apart by their marker. Without ``title``: "LR range test: <rule>
    suggests <lr>" for one test that has a decision, else "LR range test".
    """
    panel = Panel(panel_title, "learning rate", "training loss", xlog=True)
    for i, test in enumerate(tests):
        _range_test_layers(panel, test, color(i), by_rule=len(tests) == 1, group=f"finder {i}: {test.name}")
    panel.ylim = _finder_ylim([t.y for t in panel.traces if t.mode == "lines"])
    return FigureSpec(key, title or _range_test_title(tests), caption, [panel])


def _chosen_rule(test: RangeTest) -> str | None:
    if test.rule is not None or test.lr is None:
        return test.rule
    return next(
        (k for k, v in test.suggestions.items() if v and math.isclose(v, test.lr, rel_tol=1e-6)), None
    )


def _range_test_title(tests: Sequence[RangeTest]) -> str:
    if len(tests) == 1:
        rule, lr = _chosen_rule(tests[0]), tests[0].lr
        if rule and lr is not None and math.isfinite(lr):
            return f"LR range test: {rule} suggests {lr:.3g}"
    return "LR range test"


def _range_test_layers(panel: Panel, test: RangeTest, c: str, *, by_rule: bool, group: str) -> None:
    lrs, losses, smoothed = (np.asarray(a, dtype=np.float64) for a in (test.lrs, test.losses, test.smoothed))
    panel.traces.append(Trace(lrs, losses, test.name + " (raw)", group, c, width=0.8, opacity=0.35,
                              show_legend=False))  # fmt: skip
    panel.traces.append(Trace(lrs, smoothed, test.name, group, c, width=2.0))
    chosen = _chosen_rule(test)
    can_place = len(lrs) > 0 and bool(np.isfinite(smoothed).any())
    others = iter(OTHER_MARKERS * len(test.suggestions))
    for rule, lr in sorted(test.suggestions.items()):
        if not (lr and math.isfinite(lr) and lr > 0 and can_place):
            continue
        picked = rule == chosen
        y = float(np.interp(math.log(lr), np.log(lrs), smoothed)) if len(lrs) > 1 else float(smoothed[0])
        label = f"{rule}: {lr:.3g}" + (" (recommended)" if picked else "")
        panel.traces.append(
            Trace(np.asarray([lr]), np.asarray([y]), label, f"{group}: {rule}",
                  RULE_COLORS.get(rule, "#8c564b") if by_rule else c, mode="markers",
                  marker="star" if picked else RULE_MARKERS.get(rule) or next(others),
                  marker_size=16 if picked else 10, hover=[f"{test.name} | {rule} suggests lr={lr:.3g}"])
        )  # fmt: skip
    if test.lr is not None and math.isfinite(test.lr) and test.lr > 0:
        label = f"chosen lr={test.lr:.3g}" + (f" ({chosen})" if chosen else "")
        panel.vlines.append(VLine(test.lr, label, RULE_COLORS.get(chosen or "", c) if by_rule else c))
    if test.bounds is not None:
        low, high = test.bounds
        panel.spans.append(Span(low, high, f"cyclic bounds {low:.3g}-{high:.3g}", c))


def _finder_ylim(curves: Sequence[np.ndarray]) -> tuple[float, float] | None:
    finite = [c[np.isfinite(c)] for c in curves]
    finite = [c for c in finite if len(c)]
    if not finite:
        return None
    low = min(float(c.min()) for c in finite)
    start = max(float(c[0]) for c in finite)
    top = max(float(c.max()) for c in finite)
    if top <= 1.5 * start:
        return None
    return (low - 0.05 * abs(low), 1.5 * start)
