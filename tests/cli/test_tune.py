"""``lrlab tune`` through the real entry point: a tiny tune end to end, --resume, and bad
input (one line, exit code 2, the store and the Optuna storage unchanged)."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from lrlab.cli import main

GOOD = """name = "cli-tune"
task = "digits-linear"
task_options = { train_size = 128, val_size = 64 }
epochs = 2
batch_size = 32
trials = 3
sampler = "random"

[space]
optimizer = ["sgd(momentum=0.9)", "adam"]
[space.cosine]
lr = { log = [0.001, 1.0] }
"""


def _run(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["lrlab", *args])
    monkeypatch.setenv("COLUMNS", "300")
    with pytest.raises(SystemExit) as info:
        main()
    captured = capsys.readouterr()
    return int(info.value.code or 0), captured.out, captured.err


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    root = tmp_path_factory.mktemp("tune-cli")
    (root / "good.toml").write_text(GOOD)
    bad = {
        "empty.toml": GOOD.split("[space]")[0] + "[space]\n",
        "low-high.toml": GOOD.replace("[0.001, 1.0]", "[1.0, 0.001]"),
        "foreign.toml": GOOD + "gamma = 0.5\n",
        "fraction.toml": GOOD + "warmup = { run = [0.0, 1.5] }\n",
        "family.toml": GOOD.replace("[space.cosine]", "[space.cosinus]"),
        "pruner.toml": GOOD.replace('sampler = "random"', 'pruner = "median"'),
        "storage.toml": GOOD.replace('sampler = "random"', 'storage = "postgresql://user:secret@127.0.0.1:1/optuna"'),
        "pbt.toml": GOOD.split("[space]")[0] + 'method = "pbt"\n',
    }
    for name, text in bad.items():
        (root / name).write_text(text)
    from lrlab.store import Store

    Store(root / "bad.db").close()
    return root


def _digests(root: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.glob("*.db")}


def test_a_tiny_tune_end_to_end_and_resumed(place, monkeypatch, capsys):
    db = place / "runs.db"
    code, out, err = _run(["tune", str(place / "good.toml"), "--db", str(db), "--out", str(place / "out")],
                          monkeypatch, capsys)  # fmt: skip
    assert code == 0, err
    assert "Recommendation" in out and "LRScheduler" in out and "3 trials" in out
    assert (place / "out" / "tune.html").exists() and (place / "out" / "recommendation.md").exists()
    # The command closed its store: no connection is left to change the file later.
    assert not (place / "runs.db-wal").exists()
    before = _digests(place)
    code, out, err = _run(["tune", str(place / "good.toml"), "--db", str(db)], monkeypatch, capsys)
    assert code == 2 and "pass --resume" in err and len(err.strip().splitlines()) == 1
    assert _digests(place) == before
    code, out, err = _run(["tune", str(place / "good.toml"), "--db", str(db), "--resume", "-q",
                           "--out", str(place / "out")], monkeypatch, capsys)  # fmt: skip
    assert code == 0, err
    assert "3 trials" in out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["{root}/empty.toml"], "names no schedule family"),
        (["{root}/low-high.toml"], "low 1 is above high 0.001"),
        (["{root}/foreign.toml"], "cosine has no parameter 'gamma'"),
        (["{root}/fraction.toml"], "a fraction of the run lies in [0, 1]"),
        (["{root}/family.toml"], "unknown schedule family 'cosinus'"),
        (["{root}/pruner.toml"], "pruner"),
        (["{root}/storage.toml"], "postgresql://user:***@127.0.0.1:1/optuna"),
        (["{root}/pbt.toml"], "needs a [pbt] table"),
        (["{root}/good.toml", "--storage", "redis://localhost"], "unknown Optuna storage"),
        (["{root}/good.toml", "--storage", "mysql://127.0.0.1:1/optuna"], "'mysql://127.0.0.1:1/optuna'"),
        (["{root}/good.toml", "--storage", "sqlite:////dev/null/optuna.db"], "cannot open the Optuna storage"),
        (["{root}/good.toml", "--storage", "journal:{root}"], "is a folder"),
        (["{root}/good.toml", "--backend", "ray", "--address", "127.0.0.1:1"], "no Ray cluster answers"),
        (["{root}/good.toml", "--address", "auto"], "--address needs --backend ray"),
        (["{root}/good.toml", "--jobs", "2"], "--jobs above 1 needs --backend ray"),
        (["{root}/good.toml", "--backend", "spark"], "--backend must be local or ray"),
        (["{root}/good.toml", "--out", "{root}/good.toml"], "--out must be a folder"),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v)[-40:],
)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(place, args, expected, monkeypatch, capsys):
    db = place / "bad.db"
    before = _digests(place)
    argv = ["tune", *(a.replace("{root}", str(place)) for a in args), "--db", str(db)]
    code, out, err = _run(argv, monkeypatch, capsys)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2, (argv, out[-1000:], err[-1000:])
    assert "Traceback" not in out + err
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert expected in lines[0]
    assert "secret" not in err
    assert _digests(place) == before


def test_a_resumed_tune_whose_task_file_changed_is_one_line(tmp_path, monkeypatch, capsys):
    """The tune file may stay the same while the task file it names changes (a wider model):
    its old trials must not mix with new ones."""
    task_file = tmp_path / "task_file.py"
    body = ("from lrlab.training.tasks.digits import digits_linear\n"
            "def make():\n    return digits_linear(train_size={n}, val_size=64)\n")  # fmt: skip
    task_file.write_text(body.format(n=128))
    tune_file = tmp_path / "t.toml"
    tune_file.write_text(GOOD.replace('task = "digits-linear"\ntask_options = { train_size = 128, val_size = 64 }',
                                      f'task = "{task_file}:make"').replace("trials = 3", "trials = 2"))
    db = tmp_path / "runs.db"
    code, _out, err = _run(["tune", str(tune_file), "--db", str(db), "-q", "--out", str(tmp_path / "out")],
                           monkeypatch, capsys)  # fmt: skip
    assert code == 0, err
    for name in [m for m in sys.modules if m.startswith("_lrlab_user_task_")]:
        del sys.modules[name]  # a new process would import the edited file
    task_file.write_text(body.format(n=96))
    before = _digests(tmp_path)
    code, _out, err = _run(["tune", str(tune_file), "--db", str(db), "--resume", "-q", "--out",
                            str(tmp_path / "out")], monkeypatch, capsys)  # fmt: skip
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "the data changed since the tune 'cli-tune' began" in lines[0], lines
    assert _digests(tmp_path) == before
