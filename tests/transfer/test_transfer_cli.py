"""``lrlab transfer`` through the real entry point on a task file: the table, the prediction in
words and the figure; and its bad input: one line, exit 2, nothing stored lost."""

import importlib.util
import sys

import pytest

import lrlab
from lrlab.cli import main
from lrlab.store.sqlite import Store

FACTORY = """
from lrlab.training.tasks.digits import digits_mlp


def mlp(width: int = 8, train_size: int = 300):
    return digits_mlp(train_size=train_size, val_size=150, hidden=width)
"""

BASE = ["transfer", "--task", "models.py:mlp", "--axis", "width", "--target", "128", "--epochs", "1",
        "--lr", "0.03", "--db", "runs.db", "--quiet"]  # fmt: skip


@pytest.fixture(scope="module")
def folder(tmp_path_factory, one_thread):
    """A task file and a store holding its transfer (trained once, in Python: the command
    finds every run there)."""
    path = tmp_path_factory.mktemp("cli")
    (path / "models.py").write_text(FACTORY)
    spec = importlib.util.spec_from_file_location("transfer_cli_models", path / "models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lrlab.transfer(module.mlp, axis="width", proxies=[4, 8, 16], target=128, epochs=1, lr=0.03,
                   store=path / "runs.db")  # fmt: skip
    return path


def _lrlab(args, folder, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["lrlab", *args])
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(folder)
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def _stored(folder):
    store = Store(folder / "runs.db")
    try:
        return sorted((r.id, r.status.value) for r in store.runs())
    finally:
        store.close()


def test_the_command_prints_the_table_and_the_prediction_and_writes_the_figure(folder, monkeypatch, capsys):
    before = _stored(folder)
    code, out, err = _lrlab([*BASE, "--proxies", "4,8,16", "--out", "out"], folder, monkeypatch, capsys)
    assert code in (0, None), err
    assert "each proxy's optimum" in out and "Predicted optimal LR at width 128" in out
    assert out.count(" yes │") == 3  # three bracketed proxies
    # the self-check's row: the law of 4 and 8 at 16, and its words
    assert "16: law of 4, 8" in out and "self-check" in out and ("passed" in out or "failed" in out)
    assert "self-check: the law fitted on width 4 and 8 predicted 16's optimum at x" in " ".join(out.split())
    assert (folder / "out" / "transfer.html").stat().st_size > 10_000
    assert (folder / "out" / "transfer.png").read_bytes()[:4] == b"\x89PNG"
    assert _stored(folder) == before  # every run was in the store


CASES = {
    ("--proxies", "4,8"): "at least 3 distinct proxies",
    ("--proxies", "4,8,16", "--target", "8"): "lies inside the proxies' range",
    ("--proxies", "4,8,16", "--axis", "depth"): "takes no keyword 'depth' (it takes: width, train_size)",
    ("--proxies", "4,eight,16"): "--proxies must be comma-separated numbers",
    ("--proxies", "4,8,16", "--task-option", "train_size=200"): "the data changed since sweep",
    ("--proxies", "4,8,16", "--task", "models.py:nothing"): "has no attribute 'nothing'",
    ("--proxies", "4,8,16", "--seeds", "0"): "seeds must be a whole number >= 1",
    ("--proxies", "4,8,16", "--optimizer", "adamx"): "adamx",
    ("--proxies", "4,8,16", "--parametrization", "ntk"): "parametrization must be one of standard, mup",
    ("--proxies", "4,8,16", "--schedule", "zigzag"): "schedule must be one of",
    ("--proxies", "4,8,16", "--lr", "-1"): "--lr must be a number > 0",
}


@pytest.mark.parametrize("extra", list(CASES), ids=lambda a: " ".join(a))
def test_bad_input_is_one_line_exit_2_and_nothing_stored_is_lost(folder, extra, monkeypatch, capsys):
    before = _stored(folder)
    code, out, err = _lrlab([*BASE, *extra], folder, monkeypatch, capsys)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2, (extra, err)
    assert len(lines) == 1 and lines[0].startswith("error:") and CASES[extra] in lines[0], (extra, err)
    assert "Traceback" not in err + out
    assert _stored(folder) == before
