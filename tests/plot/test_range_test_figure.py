"""The range-test figure a reader can read: one marker shape per suggestion rule (none
shared), the chosen LR and the cyclic bounds named in the legend, not written on the curves."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lrlab.plot.range_test import RULE_MARKERS, RangeTest, range_test_figure
from lrlab.plot.static import _MARKER, draw_figure

RULES = ["steepest", "valley", "minimum/10", "minimum/3", "minimum/30", "minimum/7", "halving"]


def curve(suggestions: dict[str, float], rule: str | None = "minimum/7", name: str = "sgd") -> RangeTest:
    lrs = np.geomspace(1e-6, 3.0, 80)
    losses = 2.3 - 0.8 / (1 + np.exp(-3 * (np.log10(lrs) + 1.5))) + np.where(lrs > 1, (lrs - 1) * 4, 0)
    chosen = suggestions.get(rule) if rule else None
    return RangeTest(lrs, losses, losses, suggestions, lr=chosen, rule=rule, bounds=(0.1, 0.4), name=name)


EVERY_RULE = dict(zip(RULES, [0.29, 0.007, 0.042, 0.14, 0.014, 0.06, 0.156]))


def _marker_traces(spec):
    return [t for t in spec.panels[0].traces if t.mode == "markers"]


def test_every_rule_has_its_own_marker_and_the_chosen_one_a_star():
    spec = range_test_figure([curve(EVERY_RULE)])
    markers = {t.name.split(":")[0]: t.marker for t in _marker_traces(spec)}
    assert markers["minimum/7"] == "star"
    others = [m for rule, m in markers.items() if rule != "minimum/7"]
    assert len(others) == len(set(others)) == 6 and "star" not in others
    # the old figure drew minimum/10 and steepest as circles, minimum/3 and valley as diamonds
    assert markers["minimum/10"] != markers["steepest"] and markers["minimum/3"] != markers["valley"]


@settings(max_examples=30, deadline=None)
@given(st.sets(st.sampled_from([*RULES, "custom", "other"]), min_size=1), st.sampled_from([None, *RULES]))
def test_no_two_rules_share_a_shape_whatever_the_rules(rules, chosen):
    suggestions = {rule: 10 ** (-3 + 0.3 * i) for i, rule in enumerate(sorted(rules))}
    spec = range_test_figure([curve(suggestions, rule=chosen if chosen in rules else None)])
    shapes = [t.marker for t in _marker_traces(spec)]
    assert len(shapes) == len(set(shapes)) == len(rules)
    assert all(_MARKER[shape] is not None for shape in shapes)  # the PNG draws every one of them


def test_the_drawn_png_uses_distinct_shapes_and_names_the_lines_in_the_legend():
    spec = range_test_figure([curve(EVERY_RULE)])
    fig = draw_figure(spec)
    ax = fig.axes[0]
    drawn = [line.get_marker() for line in ax.get_lines() if line.get_linestyle() in ("None", "none", "")]
    assert len(drawn) == 7 and len(set(drawn)) == 7
    assert len(ax.texts) == 0  # no label written over the curves
    legend = [text.get_text() for text in fig.legends[0].get_texts()]
    assert "chosen lr=0.06 (minimum/7)" in legend and "cyclic bounds 0.1-0.4" in legend
    assert "minimum/7: 0.06 (recommended)" in legend


def test_several_tests_keep_one_shape_per_rule_across_tests():
    spec = range_test_figure([curve(EVERY_RULE, name="sgd"), curve(EVERY_RULE, rule="valley", name="adam")])
    by_rule: dict[str, set[str]] = {}
    for t in _marker_traces(spec):
        rule = t.name.split(":")[0]
        if t.marker != "star":
            by_rule.setdefault(rule, set()).add(t.marker)
    assert all(markers == {RULE_MARKERS[rule]} for rule, markers in by_rule.items())


def test_several_panels_name_their_own_lines_under_their_x_label():
    from lrlab.plot.spec import FigureSpec, Panel, Span, Trace, VLine

    panels = [
        Panel(f"p{i}", "peak learning rate", "loss", traces=[Trace(np.array([0.1, 1.0]), np.array([1.0, 2.0]),
              "a", "a", "#1f77b4")], vlines=[VLine(0.3 * (i + 1), f"range test: lr={0.3 * (i + 1):g}")],
              spans=[Span(0.2, 0.5, "cyclic bounds 0.2-0.5")], xlog=True)
        for i in range(2)
    ]  # fmt: skip
    fig = draw_figure(FigureSpec("u", "U", "", panels, columns=2))
    for i, ax in enumerate(fig.axes[:2]):
        assert len(ax.texts) == 0
        assert ax.get_xlabel() == (
            f"peak learning rate\ndashed: range test: lr={0.3 * (i + 1):g}; band: cyclic bounds 0.2-0.5"
        )
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["a"]


def test_the_interactive_chart_has_distinct_symbols_and_names_its_lines_in_the_legend():
    from lrlab.plot.interactive import plotly_figure

    fig = plotly_figure(range_test_figure([curve(EVERY_RULE)]))
    symbols = {t["name"].split(":")[0]: t["marker"]["symbol"] for t in fig["data"] if t["mode"] == "markers"}
    assert len(symbols) == 7 and len(set(symbols.values())) == 7 and symbols["minimum/7"] == "star"
    assert symbols["minimum/10"] != symbols["steepest"] and symbols["minimum/3"] != symbols["valley"]
    layout = fig["layout"]
    titles = {p.title for p in range_test_figure([curve(EVERY_RULE)]).panels}
    # nothing written over the curves: the only texts are the panel titles
    assert {a["text"] for a in layout.get("annotations", ())} <= titles
    named = [s["name"] for s in layout["shapes"] if s.get("showlegend")]
    assert named == ["cyclic bounds 0.1-0.4", "chosen lr=0.06 (minimum/7)"]


def test_several_panels_name_their_marks_under_their_own_x_label_in_the_interactive_chart():
    from lrlab.plot.interactive import plotly_figure
    from lrlab.plot.spec import FigureSpec, Panel, Span, VLine

    panels = [Panel(f"p{i}", "lr", "loss", vlines=[VLine(0.3 * (i + 1), f"range test: lr={0.3 * (i + 1):g}")],
                    spans=[Span(0.2, 0.5, "cyclic bounds 0.2-0.5")], xlog=True) for i in range(2)]  # fmt: skip
    layout = plotly_figure(FigureSpec("u", "U", "", panels, columns=2))["layout"]
    assert len(layout["shapes"]) == 4 and not any(s.get("showlegend") for s in layout["shapes"])
    for axis, lr in (("xaxis", "0.3"), ("xaxis2", "0.6")):  # which line is whose: under its own panel
        title = layout[axis]["title"]["text"]
        assert (
            title.startswith("lr<br>")
            and f"dashed: range test: lr={lr}; band: cyclic bounds 0.2-0.5" in title
        )
    assert not any("range test" in a["text"] for a in layout.get("annotations", ()))
