"""The built-in forecasting tasks: a chronological, leak-free split of the real sunspot series,
LSTM and GRU forecasters, and real training that beats the training mean on the validation span."""

import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lrlab.core.records import RunConfig
from lrlab.store.sqlite import Store
from lrlab.training.loop import train_run
from lrlab.training.tasks import check_task, get_task
from lrlab.training.tasks._base import fingerprint_change, task_fingerprint
from lrlab.training.tasks.series import VAL_FRACTION, load_sunspots, sunspots_split


def test_the_series_is_statsmodels_yearly_sunspots():
    years, values = load_sunspots()
    assert len(values) == 309 and years[0] == 1700 and years[-1] == 2008
    assert values[0] == 5.0 and values[-1] == pytest.approx(2.9)


def test_split_is_chronological_and_standardised_with_training_statistics_only():
    split = sunspots_split(window=24, horizon=1)
    _, values = load_sunspots()
    train_end = len(values) - round(len(values) * VAL_FRACTION)
    assert split.train_end == train_end == 247 and int(split.years[train_end]) == 1947
    assert split.mean == pytest.approx(values[:train_end].mean())
    assert split.std == pytest.approx(values[:train_end].std())
    # the validation targets are the last 62 years, in order, in training units
    np.testing.assert_allclose(split.restore(split.val_targets[:, 0]), values[train_end:])
    # every training target lies before the validation span: the last one is the year before
    np.testing.assert_allclose(split.restore(split.train_targets[-1]), values[train_end - 1 : train_end])


def test_validation_values_do_not_change_the_training_data(monkeypatch):
    """Nothing of the validation span reaches training: change it, and the training
    inputs and targets are the very same numbers."""
    import lrlab.training.tasks.series as series

    before = sunspots_split(window=12, horizon=2)
    years, values = load_sunspots()
    changed = values.copy()
    changed[before.train_end :] *= 10.0
    monkeypatch.setattr(series, "load_sunspots", lambda: (years, changed))
    after = series.sunspots_split(window=12, horizon=2)
    np.testing.assert_array_equal(before.train_inputs, after.train_inputs)
    np.testing.assert_array_equal(before.train_targets, after.train_targets)
    assert (before.mean, before.std) == (after.mean, after.std)
    assert not np.array_equal(before.val_targets, after.val_targets)


@settings(max_examples=40, deadline=None)
@given(window=st.integers(1, 120), horizon=st.integers(1, 40))
def test_windows_are_the_years_before_their_targets(window, horizon):
    split = sunspots_split(window=window, horizon=horizon)
    z = split.standardise(split.values)
    n, end = len(z), split.train_end
    assert split.train_inputs.shape == (end - window - horizon + 1, window)
    assert split.val_inputs.shape == (n - end - horizon + 1, window)
    assert split.train_targets.shape[1] == split.val_targets.shape[1] == horizon
    for i in (0, len(split.val_origin) - 1):
        t = split.val_origin[i]
        np.testing.assert_allclose(split.val_inputs[i], z[t - window : t])
        np.testing.assert_allclose(split.val_targets[i], z[t : t + horizon])
    first_train_target = window
    np.testing.assert_allclose(split.train_targets[0], z[first_train_target : first_train_target + horizon])
    # the last training target ends before the validation span
    assert window + len(split.train_targets) - 1 + horizon <= end


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cell": "rnn"}, "cell must be one of lstm, gru, got 'rnn'"),
        ({"hidden": 0}, "hidden must be a positive integer, got 0"),
        ({"window": 400}, "window must be at most"),
        ({"horizon": 63}, "horizon must be at most 62"),
        ({"hidden": 2.5}, "hidden must be a positive integer, got 2.5"),
    ],
)
def test_bad_options_are_one_line_naming_the_option(options, message):
    with pytest.raises(ValueError, match="task 'sunspots'") as info:
        get_task("sunspots", **options)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("ref", ["sunspots-lstm", "sunspots-gru"])
def test_models_forecast_the_horizon(ref):
    task = get_task(ref, horizon=3, window=11, hidden=8)
    check_task(task, ref)
    inputs, targets = next(iter(task.train_loader(16, 0)))
    output = task.make_model(0)(inputs)
    assert output.shape == targets.shape == (16, 3)
    assert task.kind == "regression" and task.objective.metric == "val_loss"
    assert task.name == ref and task.options["cell"] == ref.split("-")[1]


def test_variants_have_different_fingerprints():
    lstm = task_fingerprint(get_task("sunspots-lstm", hidden=8))
    assert fingerprint_change(lstm, task_fingerprint(get_task("sunspots", cell="lstm", hidden=8))) is None
    assert fingerprint_change(lstm, task_fingerprint(get_task("sunspots-gru", hidden=8)))[0] == "the model"
    assert fingerprint_change(lstm, task_fingerprint(get_task("sunspots-lstm", hidden=16)))[0] == "the model"
    assert (
        fingerprint_change(lstm, task_fingerprint(get_task("sunspots-lstm", hidden=8, window=12)))[0]
        == "the data"
    )


def _mean_predictor_mse(window: int) -> float:
    """Validation MSE of always forecasting the training mean (0 when standardised)."""
    return float(np.mean(sunspots_split(window=window).val_targets ** 2))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_real_training_beats_the_training_mean(tmp_path, one_thread, cell):
    config = RunConfig(task="sunspots", task_options={"cell": cell, "hidden": 8, "window": 12}, optimizer="adam",
                       lr=0.02, epochs=12, batch_size=32, seed=0)  # fmt: skip
    store = Store(tmp_path / "runs.db")
    record = train_run(config, store, "r1")
    assert record.status.value == "done", record.error
    epochs = store.epochs_for(["r1"])["r1"]
    first, last = epochs[0].value("val_loss"), epochs[-1].value("val_loss")
    assert last < first
    assert last < 0.5 * _mean_predictor_mse(12)


def test_same_seed_same_numbers(tmp_path, one_thread):
    config = RunConfig(task="sunspots-gru", task_options={"hidden": 8, "window": 12}, optimizer="adam", lr=0.01,
                       epochs=2, batch_size=32, seed=3)  # fmt: skip
    losses = []
    for name in ("a", "b"):
        store = Store(tmp_path / f"{name}.db")
        train_run(config, store, name)
        losses.append([e.value("val_loss") for e in store.epochs_for([name])[name]])
    assert losses[0] == losses[1]
    assert torch.get_num_threads() == 1


def test_without_statsmodels_the_task_says_how_to_install_it(monkeypatch):
    load_sunspots.cache_clear()
    monkeypatch.setitem(sys.modules, "statsmodels", None)
    monkeypatch.setitem(sys.modules, "statsmodels.datasets", None)
    try:
        with pytest.raises(ValueError, match=r"task 'sunspots-gru': the sunspot series ships with statsmodels: "
                                             r"pip install 'lrlab\[series\]'"):  # fmt: skip
            get_task("sunspots-gru")
    finally:
        load_sunspots.cache_clear()
