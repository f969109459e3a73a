"""``lrlab transfer`` end to end on a task file, and its bad input: one line, exit 2, nothing stored lost."""

import subprocess
import sys

import pytest

from lrlab.store.sqlite import Store

FACTORY = """
from lrlab.training.tasks.digits import digits_mlp


def mlp(width: int = 8, train_size: int = 300):
    return digits_mlp(train_size=train_size, val_size=150, hidden=width)
"""


def _transfer(*args, cwd):
    return subprocess.run([sys.executable, "-m", "lrlab.cli", "transfer", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600, env={"COLUMNS": "150", "PATH": ""})  # fmt: skip


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli")
    (path / "models.py").write_text(FACTORY)
    return path


BASE = ["--task", "models.py:mlp", "--axis", "width", "--target", "128", "--epochs", "1", "--lr", "0.03",
        "--db", "runs.db", "--quiet"]  # fmt: skip


@pytest.mark.slow
def test_the_command_prints_the_table_and_the_prediction_and_writes_the_figure(folder):
    done = _transfer(*BASE, "--proxies", "4,8,16", "--out", "out", cwd=folder)
    assert done.returncode == 0, done.stderr
    assert "each proxy's optimum" in done.stdout and "Predicted optimal LR at width 128" in done.stdout
    assert (folder / "out" / "transfer.html").stat().st_size > 10_000
    assert (folder / "out" / "transfer.png").read_bytes()[:4] == b"\x89PNG"
    store = Store(folder / "runs.db")
    stored = len(store.runs())
    store.close()
    assert stored >= 3 * 2 * 5
    # bad input after a stored transfer: one line each, exit 2, the store as it was
    cases = {
        ("--proxies", "4,8"): "at least 3 distinct proxies",
        ("--proxies", "4,8,16", "--target", "8"): "lies inside the proxies' range",
        ("--proxies", "4,8,16", "--axis", "depth"): "takes no keyword 'depth' (it takes: width, train_size)",
        ("--proxies", "4,eight,16"): "--proxies must be comma-separated numbers",
        ("--proxies", "4,8,16", "--task-option", "train_size=200"): "the data changed since sweep",
        ("--proxies", "4,8,16", "--task", "models.py:nothing"): "has no attribute 'nothing'",
    }
    for extra, message in cases.items():
        bad = _transfer(*BASE, *extra, cwd=folder)
        assert bad.returncode == 2, (extra, bad.stderr)
        assert message in bad.stderr and "Traceback" not in bad.stderr, (extra, bad.stderr)
        assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    store = Store(folder / "runs.db")
    assert len(store.runs()) == stored
    store.close()
