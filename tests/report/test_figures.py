"""Figure specs: what each figure draws for a known sweep."""

import numpy as np
import pytest
from tests.report.synthetic import synthetic_sweep

from lrlab.report.data import build_report_data
from lrlab.report.figures import (
    build_figures,
    gap_figure,
    loss_figure,
    lr_figure,
    steps_figure,
    ucurve_figure,
)
from lrlab.store.records import FinderRecord


@pytest.fixture(scope="module")
def data():
    sw = synthetic_sweep(lrs=(0.01, 0.1, 2.0), seeds=(0, 1, 2), epochs=8, steps_per_epoch=30)
    lrs = np.geomspace(1e-4, 10, 50)
    finder = FinderRecord("f", "digits-mlp", "sgd", lrs, np.linspace(2.3, 1, 50), np.linspace(2.3, 1, 50),
                          {"valley": 0.2}, 0.2, "valley", base_lr=0.02, max_lr=0.5)  # fmt: skip
    return build_report_data(sw.runs, sw.epochs, sw.steps, [finder])


def test_loss_figure_draws_train_solid_and_val_dashed_with_seed_bands(data):
    [panel] = loss_figure(data).panels
    lines = [t for t in panel.traces if t.mode != "markers"]
    assert {t.dash for t in lines} == {"solid", "dash"}
    stable = [t for t in lines if t.group == "lr=0.1"]
    assert len(stable) == 2 and all(t.band is not None for t in stable)
    assert np.all(stable[0].band[0] <= stable[0].y + 1e-12) and np.all(
        stable[0].y <= stable[0].band[1] + 1e-12
    )


def test_each_diverged_run_ends_with_a_marker_at_its_divergence_epoch(data):
    [panel] = loss_figure(data).panels
    [markers] = [t for t in panel.traces if t.marker == "x"]
    diverged = [r for r in data.runs if r.status == "diverged"]
    assert len(markers.x) == len(diverged) == 3
    expected = sorted((r.diverged_step + 1) / 30 for r in diverged)
    np.testing.assert_allclose(sorted(markers.x), expected)
    assert np.all(np.isfinite(markers.y)) and panel.ylim is not None and np.all(markers.y <= panel.ylim[1])


def test_log_y_switch_turns_the_loss_axes_logarithmic(data):
    assert loss_figure(data, log_y=True).panels[0].ylog
    assert steps_figure(data, log_y=True).panels[0].ylog


def test_gap_figure_flags_overfitting_of_the_small_lr(data):
    flagged = {t.group for t in gap_figure(data).panels[0].traces if t.marker == "triangle-up"}
    assert flagged == {"lr=0.01"}


def test_lr_figure_shows_one_recorded_lr_curve_per_configuration(data):
    [panel] = lr_figure(data).panels  # SGD without momentum: no momentum panel
    assert sorted(t.group for t in panel.traces) == sorted(c.label for c in data.configs)
    [stable] = [t for t in panel.traces if t.group == "lr=0.1"]
    np.testing.assert_allclose(stable.y, 0.1)


def test_ucurve_marks_the_finder_and_diverged_lrs(data):
    fig = ucurve_figure(data)
    loss_panel = fig.panels[0]
    [line] = [t for t in loss_panel.traces if t.mode == "lines+markers"]
    assert line.x.tolist() == [0.01, 0.1]
    [div] = [t for t in loss_panel.traces if t.marker == "x"]
    assert div.x.tolist() == [2.0] and div.y[0] > line.y.max()
    assert [v.x for v in loss_panel.vlines] == [0.2]
    assert [(s.x0, s.x1) for s in loss_panel.spans] == [(0.02, 0.5)]
    assert len(fig.panels) == 2  # classification: error panel too


def test_every_figure_is_built_and_non_empty(data):
    keys = [f.key for f in build_figures(data)]
    assert keys == ["loss", "metrics", "gap", "lr", "ucurve", "finder", "steps"]


# ---------------------------------------------------------------- figures outside the report


def range_test(rule="valley", lr=0.05, name="loss", bounds=(0.1, 0.4)):
    from lrlab.report.figures import RangeTest

    lrs = np.geomspace(1e-4, 10, 60)
    losses = 2.3 - 1.2 / (1 + np.exp(-3 * (np.log10(lrs) + 1.5)))
    suggestions = {"valley": 0.05, "steepest": 0.03, "minimum/10": 0.2}
    return RangeTest(lrs, losses, losses, suggestions, lr=lr, rule=rule, bounds=bounds, name=name)


def test_one_range_test_colours_each_rule_and_stars_the_chosen_one():
    from lrlab.report.figures import RULE_COLORS, range_test_figure

    spec = range_test_figure([range_test()])
    [panel] = spec.panels
    assert spec.title == "LR range test: valley suggests 0.05" and panel.xlog
    markers = {t.name: t for t in panel.traces if t.mode == "markers"}
    assert set(markers) == {"valley: 0.05 (recommended)", "steepest: 0.03", "minimum/10: 0.2"}
    assert markers["valley: 0.05 (recommended)"].marker == "star"
    assert {t.color for t in markers.values()} == {
        RULE_COLORS[r] for r in ("valley", "steepest", "minimum/10")
    }
    assert [(v.x, v.label) for v in panel.vlines] == [(0.05, "chosen lr=0.05 (valley)")]
    assert [(s.x0, s.x1) for s in panel.spans] == [(0.1, 0.4)]


def test_several_range_tests_take_one_colour_each():
    from lrlab.report.figures import range_test_figure

    spec = range_test_figure([range_test(name="a"), range_test(rule=None, lr=0.2, name="b", bounds=None)])
    [panel] = spec.panels
    colours = {t.name: t.color for t in panel.traces if t.mode == "lines"}
    assert colours["a"] != colours["b"]
    assert len({t.color for t in panel.traces if t.group.startswith("finder 1")}) == 1
    # Without a stored rule the chosen one is found among the suggestions.
    assert [v.label for v in panel.vlines] == ["chosen lr=0.05 (valley)", "chosen lr=0.2 (minimum/10)"]
    assert spec.title == "LR range test" and len(panel.spans) == 1


def test_the_reports_finder_figure_is_the_range_test_figure(data):
    from lrlab.report.figures import finder_figure

    [panel] = finder_figure(data).panels
    assert panel.xlog and [t.name for t in panel.traces if t.mode == "lines"] == [
        "digits-mlp, sgd (raw)",
        "digits-mlp, sgd",
    ]
    assert [t.name for t in panel.traces if t.mode == "markers"] == ["valley: 0.2 (recommended)"]


def test_a_frame_grows_paths_and_moves_heads():
    from lrlab.report.figures import Animation, FigureSpec, Panel, Trace

    x = np.arange(5.0)
    path = Trace(x, x * 2, "p", "p", "#000000", animate="grow", hover=[str(v) for v in x])
    head = Trace(x, x * 2, "h", "p", "#000000", mode="markers", animate="head")
    still = Trace(x, x, "s", "s", "#000000")
    spec = FigureSpec(
        "k", "T", "", [Panel("", "x", "y", traces=[path, head, still])], animation=Animation([0, 2, 4])
    )
    frame = spec.frame(2)
    grown, now, same = frame.panels[0].traces
    assert grown.x.tolist() == [0, 1, 2] and grown.hover == ["0.0", "1.0", "2.0"]
    assert now.x.tolist() == [2] and same is still and frame.title == "T - step 2"
    assert spec.frame(9).panels[0].traces[1].x.tolist() == [4]  # past the end: the last point
    assert len(spec.panels[0].traces[0].x) == 5  # the spec itself is unchanged


def test_schedule_figure_is_one_line_per_schedule():
    from lrlab.report.schedule_figures import MAX_POINTS, schedule_figure
    from lrlab.schedules import parse

    specs = ["cosine(lr=0.1, total_steps=10000)", "cyclic(base_lr=0.001, max_lr=0.1, step_size=200)"]
    spec = schedule_figure([parse(s) for s in specs], 10000, log_y=True)
    [panel] = spec.panels
    assert [t.name for t in panel.traces] == [str(parse(s)) for s in specs]
    assert panel.ylog and spec.legend == "below" and len({t.color for t in panel.traces}) == 2
    assert all(len(t.x) <= MAX_POINTS + 2 for t in panel.traces)
    assert panel.traces[1].y.max() == pytest.approx(0.1) and panel.traces[1].y.min() == pytest.approx(0.001)


def test_seeds_that_tie_draw_as_png_with_error_bars_that_are_never_negative(tmp_path):
    """Three seeds with the same final error (31 of 359 images wrong): their mean lands a
    rounding error below the minimum, which used to crash matplotlib's errorbar."""
    from lrlab.report import build_report_data, write_report
    from lrlab.report.figures import ucurve_figure

    from ._records import epochs, run

    error = 31 / 359
    runs = [run(f"a{s}", 0.1, s) for s in range(3)] + [run(f"b{s}", 0.3, s) for s in range(3)]
    eps = {r.id: epochs(r.id, [1.0, 0.5], [1.0, 0.6], [0.2, error if r.id[0] == "a" else 0.1]) for r in runs}
    data = build_report_data(runs, eps, {})
    files = write_report(data, tmp_path / "r.html", image_dir=tmp_path)
    assert (tmp_path / "report_ucurve.png").stat().st_size > 10_000 and files.images
    for panel in ucurve_figure(data).panels:
        for trace in panel.traces:
            if trace.error is not None:
                assert all((np.asarray(side) >= 0).all() for side in trace.error)
