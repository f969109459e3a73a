"""The tune's parallel coordinates from a real Optuna study with a conditional space (the
knobs of a family drawn only with that family): no "None" tick, one row per family, tick
labels that do not overlap, log knobs on a log axis."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest

from lrlab.tune.parallel import family_rows, parallel_figure

optuna.logging.set_verbosity(optuna.logging.WARNING)


def objective(trial: optuna.Trial) -> float:
    """A schedule space shaped like ``examples/tune-digits.toml``: the knobs hang on the family."""
    optimizer = trial.suggest_categorical("optimizer", ["sgd(momentum=0.9, nesterov=True)", "adam"])
    family = trial.suggest_categorical("family", ["cosine", "cyclic", "one_cycle"])
    if family == "cosine":
        lr = trial.suggest_float("cosine.lr", 1e-3, 1.0, log=True)
        trial.suggest_float("cosine.warmup", 0.0, 0.1)
    elif family == "cyclic":
        lr = trial.suggest_float("cyclic.max_lr", 1e-3, 1.0, log=True)
        trial.suggest_float("cyclic.base_lr", 1e-4, 1e-1, log=True)
        trial.suggest_categorical("cyclic.shape", ["triangle", "sine"])
        trial.suggest_float("cyclic.cycle_decay", 0.3, 1.0)
    else:
        lr = trial.suggest_float("one_cycle.max_lr", 1e-3, 1.0, log=True)
        trial.suggest_float("one_cycle.pct_start", 0.1, 0.5)
    return (math.log10(lr) + 1.5) ** 2 + (0.1 if optimizer == "adam" else 0.0)


@pytest.fixture(scope="module")
def study() -> optuna.Study:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=30)
    study.add_trial(
        optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, params={}, distributions={})
    )
    return study


def test_one_row_per_family_with_only_the_knobs_it_drew(study):
    rows = {row.family: row for row in family_rows(study.trials)}
    assert set(rows) == {"cosine", "cyclic", "one_cycle"}
    assert [a.name for a in rows["cosine"].axes] == ["score", "lr", "warmup", "optimizer"]
    assert [a.name for a in rows["cyclic"].axes] == [
        "score",
        "base_lr",
        "cycle_decay",
        "max_lr",
        "shape",
        "optimizer",
    ]
    assert sum(len(r.scores) for r in rows.values()) == 30  # the failed trial has no line
    for row in rows.values():  # every trial of a family drew every knob of its row
        assert all(np.isfinite(a.positions).all() for a in row.axes)
        assert all(0.0 <= p <= 1.0 for a in row.axes for p in a.positions)


def test_a_log_knob_is_placed_on_a_log_axis(study):
    rows = {row.family: row for row in family_rows(study.trials)}
    axis = next(a for a in rows["cosine"].axes if a.name == "lr")
    lrs = np.array([t.params["cosine.lr"] for t in study.trials if t.params.get("family") == "cosine"])
    expected = (np.log10(lrs) - np.log10(lrs.min())) / (np.log10(lrs.max()) - np.log10(lrs.min()))
    np.testing.assert_allclose(axis.positions, expected)
    assert float(axis.ticks[1][1]) == pytest.approx(math.sqrt(lrs.min() * lrs.max()), rel=1e-2)


def test_the_drawn_figure_has_no_none_and_no_overlapping_labels(study):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = parallel_figure(study.trials, metric="validation error")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    texts = [t for ax in fig.axes for t in ax.texts]
    labels = [t.get_text() for t in texts] + [t.get_text() for ax in fig.axes for t in ax.get_xticklabels()]
    assert labels and all("None" not in label for label in labels)
    for ax in fig.axes[:3]:  # the three family rows (the colour bar is the last axes)
        boxes = [t.get_window_extent(renderer) for t in ax.texts]
        boxes += [t.get_window_extent(renderer) for t in ax.get_xticklabels()]
        overlaps = [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :] if a.overlaps(b)]
        assert overlaps == []


def test_the_tune_report_writes_this_figure(study, tmp_path):
    from lrlab.tune.report import _parallel_png

    (path,) = _parallel_png(study, tmp_path / "tune_parallel.png")
    assert path.stat().st_size > 20_000


def test_the_page_draws_one_interactive_figure_per_family_with_no_none(study):
    import optuna.visualization as vis

    from lrlab.tune.parallel import parallel_plotly
    from lrlab.tune.report import _figures

    def ticks(figure) -> list[str]:
        """Every tick text: of parcoords axes, or written as annotations (Optuna's figure)."""
        dims = [
            str(t)
            for trace in figure["data"]
            for d in trace.get("dimensions", ())
            for t in d.get("ticktext", ())
        ]
        return dims + [str(a.get("text")) for a in figure["layout"].get("annotations", ())]

    optunas = vis.plot_parallel_coordinate(study).to_dict()  # what the page drew before: a "None" tick
    assert any("None" in t for t in ticks(optunas))
    rows = {row.family: row for row in family_rows(study.trials, "validation error")}
    figures = parallel_plotly(study.trials, metric="validation error")
    assert [f["layout"]["title"]["text"] for f in figures] == [
        f"{family}: {len(row.scores)} trial(s)" for family, row in rows.items()
    ]
    for figure, row in zip(figures, rows.values()):
        (trace,) = figure["data"]  # plotly.js draws the lines of only the first parcoords of a figure
        assert trace["type"] == "parcoords"
        assert [d["label"] for d in trace["dimensions"]] == [a.name for a in row.axes]
        assert all(len(d["values"]) == len(row.scores) for d in trace["dimensions"])
        assert all(0.0 <= v <= 1.0 for d in trace["dimensions"] for v in d["values"])
        assert ticks(figure) and not any("None" in t for t in ticks(figure))
    scales = {(f["data"][0]["line"]["cmin"], f["data"][0]["line"]["cmax"]) for f in figures}
    assert len(scales) == 1  # one colour scale across the families
    page = [(key, figure) for key, _, figure in _figures(study) if key.startswith("parallel")]
    assert [key for key, _ in page] == ["parallel", "parallel-1", "parallel-2"]
    assert all(not any("None" in t for t in ticks(figure)) for _, figure in page)


def test_optunas_figures_name_the_tunes_metric_not_objective_value(study):
    from lrlab.tune.report import _figures

    study.set_user_attr("metric", "val_error")
    figures = {key: figure for key, _, figure in _figures(study)}
    history = figures["history"].to_dict()
    assert history["layout"]["yaxis"]["title"]["text"] == "validation error"
    assert "Objective Value" not in str(history) and "Objective Value" not in str(
        figures["importances"].to_dict()
    )


def test_optunas_ggplot_style_stays_inside_its_own_figures(study, tmp_path):
    import matplotlib

    from lrlab.tune.report import _pngs

    before = matplotlib.rcParams["axes.facecolor"]
    paths = _pngs(study, tmp_path)
    assert {p.name for p in paths} == {"tune_history.png", "tune_importances.png", "tune_parallel.png"}
    # the schedule drawn next is lrlab's, not on ggplot's grey
    assert matplotlib.rcParams["axes.facecolor"] == before


def test_each_axis_says_what_its_knob_was_drawn_in(study):
    """The axes show the raw draws: a multiple of the range test's LR (0.3-3), a fraction of
    max_lr, epochs, a share of the run; the space of examples/tune-digits.toml names them."""
    from pathlib import Path

    import tomllib

    from lrlab.tune.parallel import knob_units, parallel_plotly
    from lrlab.tune.space import parse_space

    example = Path(__file__).resolve().parents[2] / "examples" / "tune-digits.toml"
    space = parse_space(tomllib.loads(example.read_text())["space"])
    units = knob_units(space)
    assert units == {"cyclic.max_lr": "x range test LR", "cyclic.base_lr": "x max_lr",
                     "cyclic.step_size": "epochs", "one_cycle.max_lr": "x range test LR",
                     "cosine.lr": "x range test LR", "cosine.warmup": "of the run"}  # fmt: skip
    rows = {row.family: row for row in family_rows(study.trials, units=units)}
    assert [a.name for a in rows["cosine"].axes] == [
        "score",
        "lr (x range test LR)",
        "warmup (of the run)",
        "optimizer",
    ]
    assert "base_lr (x max_lr)" in [a.name for a in rows["cyclic"].axes]
    labels = [
        d["label"] for f in parallel_plotly(study.trials, units=units) for d in f["data"][0]["dimensions"]
    ]
    assert "lr<br>(x range test LR)" in labels  # the unit on a line of its own under the name
    fig = parallel_figure(study.trials, units=units)
    ticks = [t.get_text() for ax in fig.axes for t in ax.get_xticklabels()]
    assert "lr\n(x range test LR)" in ticks and "pct_start" in ticks
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    for ax in fig.axes[:3]:  # the longer names still clear of each other
        boxes = [t.get_window_extent(canvas.get_renderer()) for t in ax.get_xticklabels()]
        assert not [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :] if a.overlaps(b)]
