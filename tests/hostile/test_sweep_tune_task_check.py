"""A task whose model does not fit its data is one line and exit 2 from ``lrlab sweep`` and
``lrlab tune`` too, before any run is stored (it used to become a failed run per grid point,
each with a torch traceback in the store)."""

from __future__ import annotations

import subprocess
import sys

import pytest

TASK = """from lrlab.training.tasks.digits import digits_linear
from torch import nn


def make():
    task = digits_linear(train_size=64, val_size=32)
    task.model_factory = lambda: nn.Linear(64, 3)  # three outputs for ten classes
    return task
"""
SWEEP = 'name = "s"\ntask = "{task}:make"\nepochs = 1\n[grid]\nlr = [0.1, 0.01]\n'
TUNE = ('name = "t"\ntask = "{task}:make"\nepochs = 1\ntrials = 2\nsampler = "random"\n'
        "[space.cosine]\nlr = {{ log = [0.001, 1.0] }}\n")  # fmt: skip


@pytest.mark.parametrize("command", ["sweep", "tune"])
def test_a_model_that_does_not_fit_its_data_is_one_line(tmp_path, command):
    task = tmp_path / "tasks.py"
    task.write_text(TASK)
    file = tmp_path / f"{command}.toml"
    file.write_text((SWEEP if command == "sweep" else TUNE).format(task=task))
    db = tmp_path / "runs.db"
    result = subprocess.run([sys.executable, "-m", "lrlab", command, str(file), "--db", str(db), "-q",
                             *(["--out", str(tmp_path / "out")] if command == "tune" else [])],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)  # fmt: skip
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and "Traceback" not in result.stderr, lines
    assert "the targets hold class" in lines[0] and "3 output(s) per example" in lines[0], lines[0]
    assert not db.exists() or db.stat().st_size == 0 or _no_runs(db)


def _no_runs(db) -> bool:
    from lrlab.store import Store

    store = Store(db)
    try:
        return not store.runs()
    finally:
        store.close()
