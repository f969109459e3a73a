"""``lrlab study --task file.py:fn`` on a user's regression task and on a custom-metric
task, end to end through the real CLI; a task file with a bad objective gets one line."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from lrlab.store.sqlite import Store

TASKS = textwrap.dedent('''
    import torch
    from torch import nn
    from lrlab.training.tasks import Task, TensorPairs


    def _data():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(160, 4, generator=g)
        y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(160, generator=g)
        return TensorPairs(x[:128], y[:128]), TensorPairs(x[128:], y[128:])


    def model():
        return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))


    def regression():
        train, val = _data()
        return Task("houses", "regression", 8, 16, model, train, val)


    def within_half(output, target):
        return ((output.squeeze(-1) - target).abs() < 0.5).float().mean()


    def custom():
        train, val = _data()
        return Task("houses-mae", "regression", 8, 16, model, train, val,
                    loss_fn=lambda o, t: (o.squeeze(-1) - t).abs().mean(), loss_name="L1",
                    metrics={"val_within_half": within_half}, objective="val_mae")


    def bad_objective():
        train, val = _data()
        return Task("houses", "regression", 8, 16, model, train, val, objective="val_f1")
''')


def _study(tmp_path, fn, *extra):
    (tmp_path / "tasks.py").write_text(TASKS)
    return subprocess.run(
        [sys.executable, "-m", "lrlab.cli", "study", "--task", f"tasks.py:{fn}", "--optimizers", "adam",
         "--epochs", "4", "--jobs", "1", "--db", str(tmp_path / "runs.db"), "--out", str(tmp_path / fn), *extra],
        capture_output=True, text=True, cwd=tmp_path, timeout=900,
    )  # fmt: skip


@pytest.mark.slow
def test_a_regression_study_from_the_cli(tmp_path):
    done = _study(tmp_path, "regression")
    assert done.returncode == 0, done.stderr[-3000:]
    store = Store(tmp_path / "runs.db")
    sweeps = store.sweeps()
    # Named after the task's own name, not the factory function.
    assert sweeps and all(s.startswith("study-houses-small") for s in sweeps)
    runs = store.runs()
    assert {r.objective.loss for r in runs} == {"MSE"}
    assert {f.task for f in store.finder_results()} == {r.config.task for r in runs} == {"tasks.py:regression"}
    md = (tmp_path / "regression" / "recommendation.md").read_text()
    assert "validation loss (MSE)" in md and "nats" not in md and "cross-entropy" not in md
    for section in ("## PyTorch", "## Lightning", "## Hugging Face", "## Keras"):
        assert section in md
    assert 'loss="mse", metrics=["mae"]' in md
    # A schedule with step counts is pasted as a function of the user's own run length.
    assert ("total_steps = " not in md) or "total_steps = len(train_loader) * epochs" in md
    html = (tmp_path / "regression" / "report.html").read_text()
    assert "Range test: loss vs learning rate" in html


@pytest.mark.slow
def test_a_custom_metric_study_from_the_cli(tmp_path):
    done = _study(tmp_path, "custom")
    assert done.returncode == 0, done.stderr[-3000:]
    store = Store(tmp_path / "runs.db")
    runs = store.runs()
    assert {(r.objective.metric, r.objective.loss, r.objective.higher_is_better) for r in runs} == {
        ("val_mae", "L1", False)}  # fmt: skip
    last = store.epochs(runs[0].id)[-1]
    assert 0.0 <= last.metrics["val_within_half"] <= 1.0 and last.metrics["val_mae"] > 0
    md = (tmp_path / "custom" / "recommendation.md").read_text()
    assert "final val_mae" in md and "| val_mae" in md
    if "total_steps = " in md:
        assert "total_steps = math.ceil(len(x_train) / batch_size) * epochs" in md
    assert "loss=loss_fn)" in md  # the Keras snippet keeps the user's own loss
    assert "val loss" not in done.stdout and "val_mae" in done.stdout  # the CLI's table heads its own metric


def test_a_task_file_with_a_bad_objective_gets_one_line_and_exit_2(tmp_path):
    done = _study(tmp_path, "bad_objective")
    assert done.returncode == 2, done.stderr
    assert "objective 'val_f1' is not a metric of task 'houses' (it has: val_loss, val_mae, val_r2)" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs.db").exists() or Store(tmp_path / "runs.db").runs() == []
