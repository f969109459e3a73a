"""Figure specs: what each figure draws for a known sweep."""

import numpy as np
import pytest
from tests.report.synthetic import synthetic_sweep

from lrlab.core.records import FinderRecord
from lrlab.report.data import build_report_data
from lrlab.report.figures import build_figures, gap_figure, loss_figure
from lrlab.report.lr_figures import ucurve_figure
from lrlab.report.step_figures import lr_figure, steps_figure


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
    from lrlab.plot.range_test import RangeTest

    lrs = np.geomspace(1e-4, 10, 60)
    losses = 2.3 - 1.2 / (1 + np.exp(-3 * (np.log10(lrs) + 1.5)))
    suggestions = {"valley": 0.05, "steepest": 0.03, "minimum/10": 0.2}
    return RangeTest(lrs, losses, losses, suggestions, lr=lr, rule=rule, bounds=bounds, name=name)


def test_one_range_test_colours_each_rule_and_stars_the_chosen_one():
    from lrlab.plot.range_test import RULE_COLORS, range_test_figure

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
    from lrlab.plot.range_test import range_test_figure

    spec = range_test_figure([range_test(name="a"), range_test(rule=None, lr=0.2, name="b", bounds=None)])
    [panel] = spec.panels
    colours = {t.name: t.color for t in panel.traces if t.mode == "lines"}
    assert colours["a"] != colours["b"]
    assert len({t.color for t in panel.traces if t.group.startswith("finder 1")}) == 1
    # Without a stored rule the chosen one is found among the suggestions.
    assert [v.label for v in panel.vlines] == ["chosen lr=0.05 (valley)", "chosen lr=0.2 (minimum/10)"]
    assert spec.title == "LR range test" and len(panel.spans) == 1


def test_the_reports_finder_figure_is_the_range_test_figure(data):
    from lrlab.report.lr_figures import finder_figure

    [panel] = finder_figure(data).panels
    assert panel.xlog and [t.name for t in panel.traces if t.mode == "lines"] == [
        "digits-mlp, sgd (raw)",
        "digits-mlp, sgd",
    ]
    assert [t.name for t in panel.traces if t.mode == "markers"] == ["valley: 0.2 (recommended)"]


def test_a_frame_grows_paths_and_moves_heads():
    from lrlab.plot.spec import Animation, FigureSpec, Panel, Trace

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
    from lrlab.plot.schedules import MAX_POINTS, schedule_figure
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
    from lrlab.report.lr_figures import ucurve_figure

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


# ---------------------------------------------------------------- grey runs at the scale of a study


@pytest.fixture(scope="module")
def study():
    from tests.report.synthetic import study_sweep

    sw = study_sweep(lrs=(0.1, 0.6), seeds=(0,), epochs=4, steps_per_epoch=40)
    return build_report_data(sw.runs, sw.epochs, sw.steps, sw.finders)


def test_grey_runs_are_one_trace_per_panel_each_line_ended_by_a_nan(study):
    from lrlab.report.looks import OTHERS

    look = study.looks
    grey = [c for c in study.configs if not look[c.key].highlighted]
    grey_runs = [r for c in grey for r in c.runs]
    assert len(grey) > 30
    [loss] = loss_figure(study).panels
    bundles = [t for t in loss.traces if t.group == OTHERS and t.mode != "markers"]
    assert sorted(t.dash for t in bundles) == ["dash", "solid"] and all(t.bundle for t in bundles)
    solid = next(t for t in bundles if t.dash == "solid")
    with_epochs = [c for c in grey if any(e.train_loss is not None for r in c.runs for e in study.epochs[r.id])]
    assert int(np.isnan(solid.x).sum()) == len(with_epochs)  # one line per grey configuration
    # Few points: each keeps a hover text naming its configuration.
    assert len(solid.hover) == len(solid.x) and {c.label for c in with_epochs} == {h.split(" | ")[0] for h in solid.hover if h}
    assert [t.show_legend for t in loss.traces if t.group == OTHERS].count(True) == 1
    assert loss.traces.index(bundles[0]) < min(i for i, t in enumerate(loss.traces) if t.group != OTHERS)
    for panel in steps_figure(study).panels:
        [line] = [t for t in panel.traces if t.group == OTHERS and t.mode == "lines"]
        assert int(np.isnan(line.x).sum()) == len(grey_runs)
        coloured = [t for t in panel.traces if t.group != OTHERS and t.mode == "lines"]
        seeds = sum(len(c.runs) for c in study.configs if look[c.key].highlighted)
        faint = [t for t in coloured if t.name.endswith(" (every step)")]
        assert len(faint) == seeds and len(coloured) == 2 * seeds  # every step, faint, under each smoothed line


def test_a_grey_runs_line_in_the_bundle_keeps_its_spikes_and_ends():
    from lrlab.report.looks import OTHERS

    sw = synthetic_sweep(lrs=tuple(np.geomspace(0.01, 0.5, 12)), seeds=(0,), epochs=4, steps_per_epoch=500)
    data = build_report_data(sw.runs, sw.epochs, sw.steps)
    look = data.looks
    [run] = [c.runs[0] for c in data.configs if not look[c.key].highlighted][:1]
    series = data.steps[run.id]
    [loss_panel, _grad] = steps_figure(data).panels
    [line] = [t for t in loss_panel.traces if t.group == OTHERS and t.mode == "lines"]
    ends = np.flatnonzero(np.isnan(line.x))
    order = [rid for cfg in sorted(data.configs, key=lambda c: -look[c.key].rank) if not look[cfg.key].highlighted
             for rid in (r.id for r in cfg.runs)]  # fmt: skip
    start = 0 if order.index(run.id) == 0 else ends[order.index(run.id) - 1] + 1
    x, y = line.x[start : ends[order.index(run.id)]], line.y[start : ends[order.index(run.id)]]
    finite = series.loss[np.isfinite(series.loss)]
    assert x[0] == series.step[0] and x[-1] == series.step[-1] and len(x) <= len(series) // 2 + 1
    assert np.nanmax(y) == finite.max() and np.nanmin(y) == finite.min()


def test_the_png_draws_the_grey_bundle_as_one_line_collection(study):
    from matplotlib.collections import LineCollection

    from lrlab.plot.static import draw_figure
    from lrlab.report.looks import OTHERS

    spec = steps_figure(study)
    [line] = [t for t in spec.panels[0].traces if t.group == OTHERS and t.mode == "lines"]
    ax = draw_figure(spec).axes[0]
    [collection] = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(collection.get_segments()) == int(np.isnan(line.x).sum())
    low, high = ax.get_ylim()
    assert low <= np.nanmin(line.y[np.isfinite(line.y)]) or spec.panels[0].ylim is not None
    assert high > low


def test_the_pngs_error_bars_are_one_collection_per_panel_a_bar_per_point(study):
    from matplotlib.collections import LineCollection

    from lrlab.plot.static import draw_figure

    spec = ucurve_figure(study)
    for panel, ax in zip(spec.panels, draw_figure(spec).axes):
        points = sum(len(t.x) for t in panel.traces if t.error is not None)
        [bars] = [c for c in ax.collections if isinstance(c, LineCollection)]
        assert len(bars.get_segments()) == points > 0


def test_a_log_axis_over_many_decades_labels_the_decades_only():
    from lrlab.plot.spec import FigureSpec, Panel, Trace
    from lrlab.plot.static import draw_figure

    x = np.arange(100.0)
    wide = Panel("", "step", "lr", traces=[Trace(x, np.geomspace(1e-8, 1.0, 100), "a", "a", "#000000")], ylog=True)
    narrow = Panel("", "step", "lr", traces=[Trace(x, np.geomspace(0.01, 1.0, 100), "a", "a", "#000000")], ylog=True)
    fig = draw_figure(FigureSpec("k", "T", "", [wide, narrow]))
    fig.canvas.draw()
    labels = [[t.get_text() for t in ax.get_yticklabels() if t.get_visible() and t.get_text()] for ax in fig.axes]
    assert "2e-05" not in labels[0] and "1e-05" in labels[0]
    assert {"0.02", "0.05", "0.1", "0.2"} <= set(labels[1])


def test_the_u_curve_places_each_configuration_at_the_peak_lr_its_schedule_reaches(study):
    """The study's cyclic and one-cycle schedules peak at 3x their ``lr``: drawn at ``lr`` they
    would show a divergence at an LR the run never had."""
    from lrlab.report.looks import peak_of

    spec = ucurve_figure(study)
    xs = {}
    for panel in spec.panels:
        for trace in panel.traces:
            xs.setdefault(trace.name.removesuffix(" (diverged)"), set()).update(np.round(np.log10(trace.x), 6))
    cyclic = [c for c in study.configs if not np.isclose(peak_of(study, c), c.lr)]
    assert cyclic and all(np.isclose(peak_of(study, c), 3 * c.lr) for c in cyclic)
    drawn = set().union(*xs.values())
    assert {round(float(np.log10(peak_of(study, c))), 6) for c in cyclic} <= drawn
    # and nothing is drawn at an LR that is no configuration's peak
    assert drawn <= {round(float(np.log10(peak_of(study, c))), 6) for c in study.configs}
    assert spec.panels[0].xlabel == "peak learning rate"


def test_coloured_per_step_lines_are_smoothed_over_a_fortieth_of_the_run_above_a_faint_raw_line():
    from lrlab.report.looks import OTHERS
    from lrlab.report.step_figures import SMOOTH_FRACTION, ema

    sw = synthetic_sweep(lrs=(0.05, 0.1), seeds=(0, 1), epochs=4, steps_per_epoch=100)
    data = build_report_data(sw.runs, sw.epochs, sw.steps)
    loss_panel, grad_panel = steps_figure(data).panels
    for panel, log in ((loss_panel, False), (grad_panel, True)):
        lines = [t for t in panel.traces if t.group != OTHERS and t.mode == "lines"]
        raw = [t for t in lines if t.name.endswith(" (every step)")]
        smooth = [t for t in lines if not t.name.endswith(" (every step)")]
        assert len(raw) == len(smooth) == 4
        for r, m in zip(raw, smooth):
            assert r.opacity < m.opacity and r.width < m.width and not r.show_legend
            np.testing.assert_array_equal(m.x, r.x)
            np.testing.assert_allclose(m.y, ema(r.y, SMOOTH_FRACTION * len(r.x), log=log), rtol=1e-12)
            wiggle = [float(np.nanstd(np.diff(np.log(y) if log else y))) for y in (m.y, r.y)]
            assert wiggle[0] < 0.5 * wiggle[1]


def test_ema_is_bias_corrected_skips_non_finite_points_and_averages_logs_on_request():
    from lrlab.report.step_figures import ema

    y = np.array([4.0, np.nan, 1.0, np.inf, 16.0])
    out = ema(y, 1.0)  # span 1: no smoothing at all
    assert np.isnan(out[1]) and np.isinf(out[3])
    np.testing.assert_allclose(out[[0, 2, 4]], [4.0, 1.0, 16.0])
    assert ema(np.array([5.0]), 100.0)[0] == 5.0  # the first point is itself, not pulled to 0
    geometric = ema(np.array([1.0, 100.0]), 3.0, log=True)  # weights 1/3 and 2/3 (bias-corrected)
    assert geometric[1] == pytest.approx(10 ** (2 * 2 / 3), rel=1e-12)
    assert ema(np.array([-1.0, 2.0]), 3.0, log=True).tolist() == [-1.0, 2.0]  # no log of -1: kept, not averaged
