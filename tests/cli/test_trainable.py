"""``--train FILE.py:fn`` through the real entry point: ``lrlab tune`` tunes a trainable
function in place of the file's task; a function that is not one is one line, exit 2,
nothing stored."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lrlab.cli import main
from lrlab.store.sqlite import Store

LOOP = """
import math
import lrlab
import torch

@lrlab.trainable(objective="score", direction="maximize", epochs=2, steps_per_epoch=2, options={"scale": 1.0})
def peaked(trial):
    weight = torch.nn.Parameter(torch.zeros(1))
    opt = trial.optimizer([weight])
    sched = trial.scheduler(opt)
    for epoch in range(1, trial.epochs + 1):
        for _ in range(trial.steps_per_epoch):
            loss = (weight - 1.0).pow(2).sum()
            opt.zero_grad(); loss.backward(); opt.step(); sched.step()
            trial.log(loss=loss)
        trial.report(epoch, score=trial.options["scale"] * epoch * (1.0 - (math.log10(trial.lr) + 1.0) ** 2))


def plain():
    raise RuntimeError("a task function, not a trainable")
"""

TUNE = """name = "cli-trainable"
trials = 3
sampler = "random"
pruner = "none"
[space]
optimizer = ["sgd"]
[space.constant]
lr = { log = [0.001, 10.0] }
"""


def _run(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["lrlab", *args])
    monkeypatch.setenv("COLUMNS", "300")
    with pytest.raises(SystemExit) as info:
        main()
    captured = capsys.readouterr()
    return int(info.value.code or 0), captured.out, captured.err


@pytest.fixture
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "loop.py").write_text(LOOP)
    (tmp_path / "tune.toml").write_text(TUNE)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.slow
def test_tune_train_tunes_the_function_by_its_declared_objective(place: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, err = _run(["tune", "tune.toml", "--train", "loop.py:peaked", "--task-option", "scale=2",
                           "--db", "runs.db", "-q"], monkeypatch, capsys)  # fmt: skip
    assert code == 0, err
    assert "Tune cli-trainable-scale-2: 3 trials" in out
    runs = Store(place / "runs.db").runs()
    assert len(runs) == 3 and all(r.status.value == "done" for r in runs)
    assert {r.config.task_options["scale"] for r in runs} == {2.0}
    assert all(r.objective is not None and r.objective.metric == "score" for r in runs)


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["tune", "tune.toml", "--train", "loop.py:plain"], id="tune-plain-function"),
        pytest.param(["tune", "tune.toml", "--train", "digits-mlp"], id="tune-built-in-task"),
        pytest.param(["study", "--train", "loop.py:plain", "-q"], id="study-plain-function"),
        pytest.param(["study", "--train", "loop.py:missing", "-q"], id="study-missing-function"),
        pytest.param(
            ["tune", "tune.toml", "--train", "loop.py:peaked", "--task-option", "width=3"], id="undeclared"
        ),
    ],
)
def test_a_train_that_is_not_a_trainable_is_one_line_exit_2(place: Path, monkeypatch, capsys, args) -> None:  # type: ignore[no-untyped-def]
    code, _out, err = _run([*args, "--db", "runs.db"], monkeypatch, capsys)
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) <= 2 and "Traceback" not in err  # one line (rich may wrap it once)
    assert "trainable" in err or "no attribute" in err or "no option" in err
    assert not (place / "runs.db").exists()


def test_the_failed_runs_are_counted_in_one_line_with_their_reasons() -> None:
    from lrlab.cli.study import failed_line
    from lrlab.core.records import RunConfig, RunRecord, RunStatus

    def record(index: int, status: RunStatus, error: str | None = None) -> RunRecord:
        return RunRecord(f"r{index}", "s", status, RunConfig(task="t", lr=0.1 * (index + 1)), 0, error=error)

    timeout = "no report within 2 s (timeout_s=2): stopped"
    runs = [record(0, RunStatus.DONE), record(1, RunStatus.FAILED, timeout), record(2, RunStatus.FAILED, timeout),
            record(3, RunStatus.FAILED, "RuntimeError: env refused (loop.py line 8)"), record(4, RunStatus.DIVERGED)]  # fmt: skip
    assert failed_line(runs) == (
        f"3 of 5 runs failed and are left out of the ranking: {timeout} (2x); RuntimeError: env refused "
        "(loop.py line 8) (1x) (lrlab runs list --status failed)"
    )
    assert failed_line(runs[:1] + runs[4:]) is None
