"""A battery of bad input for every command, through the real entry point (``lrlab.cli.main``):
one line on stderr, exit code 2, no traceback, and the store is left exactly as it was."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from lrlab.cli import main
from lrlab.sweeps import run_sweep

GOOD_SWEEP = """name = "good"
task = "digits-linear"
task_options = { train_size = 64, val_size = 32 }
epochs = 1
batch_size = 32

[grid]
lr = [0.1]
"""


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    (root / "good.toml").write_text(GOOD_SWEEP)
    db = root / "runs.db"
    from lrlab.store import Store

    store = Store(db)
    run_sweep(root / "good.toml", store)
    store.close()  # else the garbage collector may fold its write-ahead log into runs.db mid-test
    (root / "garbage.db").write_text("x\n")
    (root / "folder.db").mkdir()
    (root / "a_file.txt").write_text("not a folder")
    for name, grid in {
        "huge.toml": "lr = { logspace = [1e-3, 1.0, 10000000] }",
        "momentum.toml": 'lr = [0.1]\noptimizer = ["sgd(momentum=-1)"]',
        "unknown.toml": "lr = [0.1]\nlearning_rate = [0.2]",
        "schedule.toml": 'lr = [0.1]\nschedule = ["cosine(lr={lr}, total_steps={steps})"]',
        "deep.toml": "lr = [0.1]\nschedule = [\"" + "warmup(" * 600 + "constant(lr=1)" + ", steps=1)" * 600 + "\"]",
    }.items():
        (root / name).write_text(GOOD_SWEEP.replace("lr = [0.1]", grid))
    (root / "broken.toml").write_text("name = \n")
    (root / "latin1.toml").write_bytes("name = \"caf\xe9\"\n".encode("latin-1"))  # not UTF-8
    return root


def _digest(db: Path) -> str:
    return hashlib.sha256(db.read_bytes()).hexdigest()


CASES = [
    # lrlab schedule
    ["schedule", "cosine(lr=0.1"],
    ["schedule", "warmup(" * 600 + "constant(lr=1)" + ")" * 600],
    ["schedule", "constant(lr=1" + "0" * 400 + ")"],
    ["schedule", "nosuch(lr=1)"],
    ["schedule", "cosine(lr=0.1, total_steps=10)", "--steps", "0"],
    # lrlab sweep
    ["sweep", "{root}/missing.toml", "--db", "{db}"],
    ["sweep", "{root}/broken.toml", "--db", "{db}"],
    ["sweep", "{root}/latin1.toml", "--db", "{db}"],
    ["sweep", "{root}/huge.toml", "--db", "{db}"],
    ["sweep", "{root}/momentum.toml", "--db", "{db}"],
    ["sweep", "{root}/unknown.toml", "--db", "{db}"],
    ["sweep", "{root}/schedule.toml", "--db", "{db}"],
    ["sweep", "{root}/deep.toml", "--db", "{db}"],
    ["sweep", "{root}/good.toml", "--db", "{db}", "--jobs", "0"],
    ["sweep", "{root}/good.toml", "--db", "{db}", "--address", "auto"],
    ["sweep", "{root}/good.toml", "--db", "{db}", "--backend", "spark"],
    ["sweep", "{root}/good.toml", "--db", "{root}/garbage.db"],
    ["sweep", "{root}/good.toml", "--db", "{root}/folder.db"],
    ["sweep", "{root}/good.toml", "--db", "{db}", "--jobs", "x"],
    ["sweep"],
    # lrlab find
    ["find"],
    ["find", "--task", "nosuch", "--db", "{db}"],
    ["find", "--task", "digits-linear", "--optimizer", "sgd(momentum=-1)", "--db", "{db}"],
    ["find", "--task", "digits-linear", "--optimizer", "sgd(lr=0.1)", "--db", "{db}"],
    ["find", "--task", "digits-linear", "--seed", str(2**70), "--db", "{db}"],
    ["find", "--task", "digits-linear", "--out", "{root}", "--db", "{db}"],
    ["find", "--task", "digits-linear", "--out", "{root}/f.txt", "--db", "{db}"],
    ["find", "--task", "digits-linear", "--num-iter", "1", "--db", "{db}"],
    ["find", "--task", "digits-linear", "--start-lr", "-1", "--db", "{db}"],
    ["find", "--task", "digits-linear", "--db", "{root}/garbage.db"],
    # lrlab study
    ["study", "--budget", "huge", "--db", "{db}"],
    ["study", "--optimizers", "sgd,nosuch", "--db", "{db}"],
    ["study", "--optimizers", ",", "--db", "{db}"],
    ["study", "--address", "auto", "--db", "{db}"],
    ["study", "--epochs", "0", "--db", "{db}"],
    ["study", "--out", "{root}/a_file.txt", "--db", "{db}"],
    ["study", "--task", "nosuch", "--db", "{db}"],
    # lrlab report
    ["report", "--sweep", "good", "--db", "{root}/none.db"],
    ["report", "--sweep", "nosuch", "--db", "{db}", "--out", "{root}/r.html"],
    ["report", "--sweep", "good", "--db", "{db}", "--out", "{root}/r.txt"],
    ["report", "--sweep", "good", "--db", "{db}", "--out", "{root}/r.html", "--svg"],
    ["report", "--sweep", "good", "--runs", "abc", "--db", "{db}", "--out", "{root}/r.html"],
    ["report", "--sweep", "good", "--db", "{root}/garbage.db", "--out", "{root}/r.html"],
    # lrlab runs
    ["runs", "list", "--db", "{db}", "--status", "finished"],
    ["runs", "list", "--db", "{db}", "--sweep", "nosuch"],
    ["runs", "show", "zzzz", "--db", "{db}"],
    ["runs", "export", "--db", "{db}", "--format", "xml"],
    ["runs", "rm", "--db", "{db}"],
    ["runs", "rm", "--sweep", "nosuch", "--db", "{db}", "--yes"],
    ["runs", "nosuch"],
    # lrlab tune (more in tests/cli/test_tune.py)
    ["tune", "{root}/nosuch.toml", "--db", "{db}"],
    ["tune", "{root}/good.toml", "--db", "{db}"],
    # lrlab surface
    ["surface", "nosuch"],
    ["surface", "ravine", "--steps", "0"],
    ["surface", "ravine", "--steps", "1000000000"],
    ["surface", "ravine", "--opt", "sgd:lr=0.25"],
    ["nosuch-command"],
]


@pytest.mark.parametrize("args", CASES, ids=lambda a: " ".join(a)[:60])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(place, args, capsys, monkeypatch):
    db = place / "runs.db"
    before = _digest(db)
    argv = [a.replace("{root}", str(place)).replace("{db}", str(db)) for a in args]
    monkeypatch.setattr(sys, "argv", ["lrlab", *argv])
    monkeypatch.setenv("COLUMNS", "400")
    monkeypatch.chdir(place)
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    lines = [line for line in captured.err.strip().splitlines() if line.strip()]
    assert exit_info.value.code == 2, (argv, captured.out[-2000:], captured.err[-2000:])
    assert "Traceback" not in captured.err + captured.out
    assert len(lines) == 1 and lines[0].startswith("error:"), (argv, captured.err)
    assert _digest(db) == before
