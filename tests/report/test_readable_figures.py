"""Figures a reader can read: the loss axis is the best configurations' (log when their losses
span more than tenfold; grey curves and diverged runs cut at its edge), and the momentum panel
is left out when momentum never changed, shrunk when it does."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from tests.report.synthetic import study_sweep, synthetic_sweep

from lrlab.plot.static import draw_figure
from lrlab.report.data import build_report_data
from lrlab.report.figures import loss_figure
from lrlab.report.step_figures import MOMENTUM_HEIGHT, lr_figure


@pytest.fixture(scope="module")
def study():
    """Shaped like the README's study: 3 optimizers x 9 schedules, one grey run whose loss
    spikes to 6.3 nats without diverging (the old axis ran to it)."""
    sw = study_sweep(lrs=(0.03, 0.1, 0.6), seeds=(0, 1), epochs=6, steps_per_epoch=20)
    data = build_report_data(sw.runs, sw.epochs, sw.steps, sw.finders)
    grey = next(c for c in data.configs if not data.looks[c.key].highlighted and not c.diverged)
    for run in grey.runs:
        sw.epochs[run.id][1] = dataclasses.replace(sw.epochs[run.id][1], train_loss=6.3)
    return build_report_data(sw.runs, sw.epochs, sw.steps, sw.finders)


def _curves(panel, highlighted: bool, data) -> list[np.ndarray]:
    names = {data.looks[c.key].name for c in data.configs if data.looks[c.key].highlighted and not c.diverged}
    return [
        t.y for t in panel.traces if t.marker != "x" and (t.name in names) == highlighted and not t.bundle
    ]


def test_the_loss_axis_covers_the_best_configurations_and_cuts_the_rest(study):
    [panel] = loss_figure(study).panels
    best = np.concatenate(_curves(panel, True, study))
    best = best[np.isfinite(best)]
    assert panel.ylim is not None
    low, high = panel.ylim
    assert low <= best.min() and best.max() <= high  # every point of the best is on the chart
    grey = np.concatenate([t.y for t in panel.traces if t.bundle])
    assert np.isclose(grey, 6.3).any() and high < 6.3  # the spike is cut, not the scale
    crosses = np.concatenate([t.y for t in panel.traces if t.marker == "x"])
    assert len(crosses) and np.all(crosses <= high)  # diverged runs marked on the top edge


def test_the_loss_axis_is_log_when_the_best_span_more_than_tenfold(study):
    [panel] = loss_figure(study).panels
    best = np.concatenate(_curves(panel, True, study))
    best = best[np.isfinite(best) & (best > 0)]
    assert (best.max() / best.min() > 10) == panel.ylog
    ax = draw_figure(loss_figure(study)).axes[0]
    assert ax.get_yscale() == ("log" if panel.ylog else "linear")
    low, high = ax.get_ylim()
    assert low <= best.min() and best.max() <= high


def test_a_linear_axis_when_the_best_stay_within_tenfold():
    sw = synthetic_sweep(lrs=(0.05, 0.1), seeds=(0,), epochs=3, steps_per_epoch=10)
    for rid, epochs in sw.epochs.items():  # losses between 0.5 and 1: nothing to separate on a log axis
        sw.epochs[rid] = [dataclasses.replace(e, train_loss=1.0 - 0.1 * e.epoch, val_loss=1.0 - 0.1 * e.epoch)
                          for e in epochs]  # fmt: skip
    [panel] = loss_figure(build_report_data(sw.runs, sw.epochs, sw.steps)).panels
    assert not panel.ylog


def test_no_momentum_panel_when_momentum_never_changed(study):
    spec = lr_figure(study)
    assert len(spec.panels) == 1
    assert spec.panels[0].title == "Learning rate vs step (momentum constant: 0.9)"
    assert len(draw_figure(spec).axes) == 1


def test_a_changing_momentum_keeps_a_smaller_panel():
    sw = synthetic_sweep(lrs=(0.05, 0.1), seeds=(0,), optimizers=("sgd(momentum=0.9)",), epochs=3,
                         steps_per_epoch=20)  # fmt: skip
    rid = sw.runs[0].id
    series = sw.steps[rid]
    cycled = 0.85 + 0.1 * np.abs(
        np.linspace(-1, 1, len(series))
    )  # one-cycle's momentum: 0.95 -> 0.85 -> 0.95
    sw.steps[rid] = dataclasses.replace(series, momentum=cycled)
    spec = lr_figure(build_report_data(sw.runs, sw.epochs, sw.steps))
    lr_panel, momentum = spec.panels
    assert momentum.height == MOMENTUM_HEIGHT and "constant" not in lr_panel.title
    top, bottom = draw_figure(spec).axes
    ratio = bottom.get_position().height / top.get_position().height
    assert ratio == pytest.approx(MOMENTUM_HEIGHT, rel=0.15)


def test_the_momentum_axis_is_the_coloured_configurations():
    """A cycled momentum (0.85-0.95) next to plain SGD's 0: the axis shows the cycle."""
    sw = study_sweep(lrs=(0.03, 0.1), seeds=(0,), epochs=3, steps_per_epoch=20)
    data = build_report_data(sw.runs, sw.epochs, sw.steps, sw.finders)
    best = next(c for c in data.configs if data.looks[c.key].highlighted)
    series = sw.steps[best.runs[0].id]
    sw.steps[best.runs[0].id] = dataclasses.replace(
        series, momentum=0.85 + 0.1 * np.abs(np.linspace(-1, 1, len(series)))
    )
    grey = next(c for c in data.configs if not data.looks[c.key].highlighted)
    sw.steps[grey.runs[0].id] = dataclasses.replace(
        sw.steps[grey.runs[0].id], momentum=np.zeros(len(sw.steps[grey.runs[0].id]))
    )  # torch's SGD without momentum records 0
    spec = lr_figure(build_report_data(sw.runs, sw.epochs, sw.steps, sw.finders))
    momentum = spec.panels[1]
    low, high = momentum.ylim
    assert 0.8 < low < 0.85 and 0.95 < high < 1.0


def _steps_study(best_low: float):
    """A study whose coloured runs' per-step losses fall from 2.3 to ``best_low`` and one grey
    run's loss spikes to 9 nats at a step without diverging."""
    from lrlab.report.step_figures import steps_figure

    sw = study_sweep(lrs=(0.03, 0.1), seeds=(0,), epochs=3, steps_per_epoch=20)
    data = build_report_data(sw.runs, sw.epochs, sw.steps, sw.finders)
    for cfg in data.configs:
        for run in cfg.runs:
            series = sw.steps[run.id]
            loss = np.geomspace(2.3, best_low, len(series))
            if not data.looks[cfg.key].highlighted and not cfg.diverged:
                loss[len(loss) // 2] = 9.0
            if not cfg.diverged:
                sw.steps[run.id] = dataclasses.replace(series, loss=loss)
    data = build_report_data(sw.runs, sw.epochs, sw.steps, sw.finders)
    names = {data.looks[c.key].name for c in data.configs if data.looks[c.key].highlighted and not c.diverged}
    return steps_figure(data), names


def test_the_step_loss_axis_is_the_best_runs_log_when_they_span_tenfold():
    spec, names = _steps_study(0.01)
    loss_panel = spec.panels[0]
    assert loss_panel.ylog  # 2.3 to 0.01: on a linear axis up to the spike they lay flat at its bottom
    low, high = loss_panel.ylim
    best = np.concatenate([t.y for t in loss_panel.traces if t.name in names])
    assert low <= best[best > 0].min() and best.max() <= high < 9.0  # the best whole, the grey spike cut
    ax = draw_figure(spec).axes[0]
    assert ax.get_yscale() == "log"


def test_the_step_loss_axis_stays_linear_when_the_best_stay_within_tenfold():
    spec, _ = _steps_study(0.5)
    assert not spec.panels[0].ylog and spec.panels[0].ylim[1] < 9.0
