"""The study's opt-in ``plateau`` family: chosen by ``--schedules`` / ``schedules=``, trained
in the first rung, driven by the validation loss (its stored per-step LRs drop when the loss
stalls), and a family the study does not know is one line, exit 2."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau

from lrlab.schedules import Plateau, parse
from lrlab.schedules.plateau import find_plateaus
from lrlab.store.sqlite import Store
from lrlab.study.plan import SCHEDULE_NAMES, STUDY_FAMILIES, check_families, study_schedules


def test_the_default_families_are_the_nine_and_plateau_is_on_request():
    assert list(study_schedules(0.1, 0.05, 0.2, total_steps=600)) == list(SCHEDULE_NAMES)
    chosen = study_schedules(0.1, 0.05, 0.2, total_steps=600, families=["plateau", "constant"], epochs=8)
    assert list(chosen) == ["constant", "plateau"]
    node = chosen["plateau"]
    assert isinstance(node, Plateau) and node.lr == 0.1 and node.factor == 0.5 and node.patience == 2
    assert node.mode == "min"
    higher = study_schedules(0.1, 0.05, 0.2, total_steps=600, families=["plateau"], higher_is_better=True)
    assert higher["plateau"].mode == "max"
    assert (*SCHEDULE_NAMES, "plateau") == STUDY_FAMILIES


@pytest.mark.parametrize("names", [["plateu"], [], ["constant", "cosine-restarts"]])
def test_an_unknown_family_names_the_allowed_ones(names):
    with pytest.raises(ValueError, match=r"schedules must be among constant, step, .*plateau, got"):
        check_families(names)


def _study(*args, cwd):
    return subprocess.run([sys.executable, "-m", "lrlab.cli", "study", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=900)  # fmt: skip


def test_the_cli_refuses_an_unknown_family_in_one_line_before_anything_is_stored(tmp_path):
    result = _study("--schedules", "constant,plateu", "--db", str(tmp_path / "x.db"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--schedules must be among" in lines[0] and "plateu" in lines[0]
    assert not (tmp_path / "x.db").exists()


@pytest.mark.slow
def test_a_study_with_plateau_trains_it_and_the_metric_lowers_its_lr(tmp_path):
    (tmp_path / "tiny.py").write_text(
        "from lrlab.training.tasks.digits import digits_linear\n"
        "def make():\n    return digits_linear(train_size=64, val_size=128)\n"
    )
    db = tmp_path / "s.db"
    result = _study("--task", "tiny.py:make", "--optimizers", "sgdm", "--schedules", "constant,plateau",
                    "--epochs", "16", "--db", str(db), "--out", str(tmp_path / "out"), "--jobs", "1",
                    cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    store = Store(db)
    runs = [r for r in store.runs() if find_plateaus(r.config.schedule)]
    assert len(runs) >= 3  # one per LR factor of the small budget
    assert all(r.config.schedule.name == "plateau" for r in runs)
    assert len([r for r in store.runs() if r.config.schedule.name == "constant"]) >= 3
    lowered = 0
    for run in runs:
        steps = store.steps(run.id)
        losses = [e.val_loss for e in store.epochs(run.id)]
        assert steps.lr[0] == run.config.schedule(0)
        assert np.all(np.diff(steps.lr) <= 0)  # a plateau only ever lowers its LR
        # torch's ReduceLROnPlateau fed the same validation losses gives each epoch's LR
        node = run.config.schedule
        weight = torch.zeros(1, requires_grad=True)
        optimizer = torch.optim.SGD([weight], lr=node.lr)
        oracle = ReduceLROnPlateau(optimizer, factor=node.factor, patience=node.patience, mode=node.mode)
        for epoch, loss in enumerate(losses, start=1):
            assert set(steps.lr[steps.epoch == epoch]) == {optimizer.param_groups[0]["lr"]}, (epoch, losses)
            oracle.step(loss)
        lowered += bool(steps.lr[-1] < steps.lr[0])
    assert lowered >= 1, "no plateau run was ever reduced in 16 epochs"
    assert parse(str(runs[0].config.schedule)) == runs[0].config.schedule
