"""Figure specs: what each figure draws for a known sweep."""

import numpy as np
import pytest

from lrlab.store.records import FinderRecord
from lrlab.report.data import build_report_data
from lrlab.report.figures import (
    build_figures,
    gap_figure,
    loss_figure,
    lr_figure,
    steps_figure,
    ucurve_figure,
)
from tests.report.synthetic import synthetic_sweep


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
    assert [t.group for t in panel.traces] == [c.label for c in data.configs]
    np.testing.assert_allclose(panel.traces[1].y, 0.1)


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
