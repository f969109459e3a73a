"""plateau(...) in a sweep file: run through ``lrlab sweep``, its per-step LRs read back from
the store; bad combinations refused in one line, exit 2, before anything is stored."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from typer.testing import CliRunner

from lrlab.cli.app import app
from lrlab.schedules import observe, parse
from lrlab.store.sqlite import Store
from lrlab.sweeps import SweepSpecError, load_sweep

runner = CliRunner()
PER_EPOCH = 3


def _write(tmp_path, schedule: str, optimizer: str = "sgd(momentum=0.9)") -> str:
    path = tmp_path / "plateau.toml"
    path.write_text(textwrap.dedent(f"""\
        name = "plateau"
        task = "digits-linear"
        task_options = {{ train_size = 96, val_size = 64 }}
        epochs = 10
        batch_size = 32
        vectorize = true
        divergence_factor = 1000.0

        [grid]
        lr = [4.0, 8.0]
        optimizer = ["{optimizer}"]
        schedule = ["{schedule}"]
        """))  # fmt: skip
    return str(path)


def test_a_plateau_sweep_runs_and_reduces_on_each_runs_validation_loss(tmp_path):
    db = tmp_path / "runs.db"
    result = runner.invoke(app, ["sweep", _write(tmp_path, "plateau(lr={lr}, patience=2)"), "--db", str(db),
                                 "--quiet", "--device", "cpu"])  # fmt: skip
    assert result.exit_code == 0, result.output
    store = Store(db)
    runs = store.runs(sweep="plateau")
    assert sorted(r.config.lr for r in runs) == [4.0, 8.0] and {r.status for r in runs} == {"done"}
    reduced = 0
    for run in runs:  # vectorize = true: plateau runs train one by one, each on its own metric
        steps, epochs = store.steps(run.id), store.epochs(run.id)
        assert len(steps) == 10 * PER_EPOCH
        schedule, states, expected = run.config.schedule, None, []
        for epoch, record in enumerate(epochs, start=1):
            expected += [schedule(0)] * PER_EPOCH
            schedule, states = observe(schedule, epoch * PER_EPOCH - 1, record.val_loss, states)
        assert steps.lr.tolist() == expected
        reduced += bool(np.any(steps.lr < run.config.lr))
    assert reduced == 2  # at these LRs the validation loss stalls: both runs were lowered


def test_a_plateau_spec_reads_back_from_the_store(tmp_path):
    spec = load_sweep(_write(tmp_path, "warmup(plateau(lr={lr}, factor=0.5, patience=2), steps={steps_per_epoch})"))
    assert spec.grid.plateaus() == ["warmup(plateau(lr={lr}, factor=0.5, patience=2), steps={steps_per_epoch})"]
    assert str(parse("plateau(lr=0.5, patience=2, reductions=1)")) == "plateau(lr=0.5, patience=2, reductions=1)"


@pytest.mark.parametrize(
    ("schedule", "optimizer", "message"),
    [
        ("plateau(lr={lr}, mode='max')", "sgd",
         "plateau(mode='max') is driven by val_loss, where lower is better on task 'digits-linear': use mode='min'"),
        ("warmup(plateau(lr={lr}), steps=3)", "schedulefree_adamw(warmup_steps=5)",
         "optimizer 'schedulefree_adamw(warmup_steps=5)' warms up by itself (warmup_steps=5) and schedule "
         "'warmup(plateau(lr={lr}), steps=3)' warms up too (warmup(..., steps=3)): the run would warm up twice; "
         "drop warmup_steps from the optimizer or the warmup from the schedule"),
    ],
    ids=["mode-against-loss", "schedule-free-double-warmup"],
)
def test_bad_combinations_are_one_line_exit_2_and_nothing_stored(tmp_path, schedule, optimizer, message):
    path = _write(tmp_path, schedule, optimizer)
    with pytest.raises(SweepSpecError, match=r"warm up twice|use mode="):
        load_sweep(path)
    db = tmp_path / "runs.db"
    result = runner.invoke(app, ["sweep", path, "--db", str(db), "--quiet", "--device", "cpu"])
    assert result.exit_code == 2
    line = " ".join(result.output.split())
    assert message in line and "Traceback" not in result.output
    assert not db.exists()
