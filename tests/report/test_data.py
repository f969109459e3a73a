"""Report data read from a real SQLite store, populated through the store's writer API."""

import numpy as np
import pytest
from tests.report.synthetic import save_to_store, synthetic_sweep

from lrlab.core.records import FinderRecord
from lrlab.report import load_report_data
from lrlab.store.sqlite import Store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("db") / "lrlab.db")
    sweep = synthetic_sweep(lrs=(0.01, 0.1, 2.0), seeds=(0, 1), epochs=6, steps_per_epoch=400)
    save_to_store(store, sweep, "grid")
    other = synthetic_sweep(lrs=(0.05,), seeds=(0,), sweep="other", epochs=2, steps_per_epoch=20)
    save_to_store(store, other, "other")
    lrs = np.geomspace(1e-4, 10, 80)
    store.save_finder_result(
        FinderRecord("f1", "digits-mlp", "sgd", lrs, 2.3 - np.log10(lrs / 1e-4) * 0.1, 2.3 - np.log10(lrs / 1e-4) * 0.1,
                     {"steepest": 0.03, "valley": 0.1}, 0.1, "valley", base_lr=0.01, max_lr=0.3)
    )  # fmt: skip
    return store


def test_a_sweep_is_read_grouped_and_diagnosed(store):
    data = load_report_data(store, sweep="grid")
    assert len(data.runs) == 6 and len(data.configs) == 3
    kinds = {f.kind for f in data.findings}
    assert {"best", "divergence"} <= kinds
    assert "schedule_decay" not in kinds  # constant-LR runs: a baseline that does not decay by design
    assert data.steps_per_epoch[data.runs[0].id] == pytest.approx(400)
    assert [f.id for f in data.finders] == ["f1"]


def test_long_step_series_are_downsampled_keeping_the_divergence_point(store):
    data = load_report_data(store, sweep="grid", max_points=200)
    diverged = [r for r in data.runs if r.status == "diverged"]
    assert diverged
    for run in data.runs:
        series = data.steps[run.id]
        assert len(series) <= 3 * 200 + 2  # loss, grad norm, LR/momentum unions
        full = store.steps(run.id)
        assert np.nanmax(np.where(np.isfinite(full.loss), full.loss, np.nan)) == np.nanmax(
            np.where(np.isfinite(series.loss), series.loss, np.nan)
        )
    for run in diverged:
        assert run.diverged_step in data.steps[run.id].step
        assert data.total_steps[run.id] == run.diverged_step + 1


def test_runs_by_id_and_by_unique_prefix(store):
    first = store.runs(sweep="grid")[0].id
    [other] = store.runs(sweep="other")
    data = load_report_data(store, run_ids=[first, "other-"])
    assert sorted(r.id for r in data.runs) == sorted([first, other.id])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sweep": "nope"}, "sweep 'nope' has no runs"),
        ({"run_ids": ["zzz"]}, "run id 'zzz': no run matches it"),
        ({"run_ids": ["synthetic-"]}, "6 runs match it"),
    ],
)
def test_nothing_to_report_is_a_one_line_value_error(store, kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_report_data(store, **kwargs)


def test_an_empty_store_is_reported(tmp_path):
    with pytest.raises(ValueError, match="has no runs"):
        load_report_data(Store(tmp_path / "empty.db"))


def test_the_report_layer_never_imports_torch():
    import subprocess
    import sys

    code = (
        "import sys, lrlab.report, lrlab.report.html, lrlab.plot.static, "
        "lrlab.store.sqlite; sys.exit('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
