"""docs/your-model.md runs as written: its Python examples in order in one fresh process,
and its task file through ``get_task``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "your-model.md"
SECTIONS = ("## find_lr on your model", "## The study from Python", "## A task file for the CLI")


def _blocks(section: str) -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(section)
    end = min((i for i in (text.find("\n## ", start + 1),) if i > 0), default=len(text))
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.S)


@pytest.mark.slow
def test_the_python_examples_run_as_written(tmp_path):
    code = "\n".join(_blocks(SECTIONS[0]) + _blocks(SECTIONS[1]))
    (tmp_path / "examples.py").write_text(code)
    done = subprocess.run([sys.executable, "examples.py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "final validation loss (MSE)" in done.stdout
    assert done.stdout.strip().splitlines()[-1].startswith("val_within_half ")
    assert (tmp_path / "your-model-find-lr.png").stat().st_size > 10_000
    assert (tmp_path / "houses-report.html").stat().st_size > 10_000
    assert (tmp_path / "houses-figures" / "report_finder.png").exists()


def test_the_task_file_builds_a_regression_task(tmp_path):
    from lrlab.training.tasks import get_task

    (block,) = _blocks(SECTIONS[2])
    (tmp_path / "houses_task.py").write_text(block)
    task = get_task(f"{tmp_path / 'houses_task.py'}:houses")
    assert (task.name, task.kind, len(task.train_data), len(task.val_data)) == ("houses", "regression", 1000, 200)
    metrics = task.evaluate(task.make_model(0), task.val_loader(100))
    assert metrics["val_loss"] > 0 and metrics["val_r2"] < 0.5  # untrained
