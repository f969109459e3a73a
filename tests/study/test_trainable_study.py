"""A study of a trial function as its user meets it: ``print(result)`` says how many runs
failed and why, the bracket stops at an LR whose runs failed, and the code to paste is the
optimizer and scheduler lines for the function (no data loop, loss or Keras compile)."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch

import lrlab
from lrlab.core.records import RunStatus
from lrlab.study.codegen import TRAINABLE_ONLY, trainable_snippet
from lrlab.study.summary import failed_line

FAILS_ABOVE = 0.05


@lrlab.trainable(objective="score", direction="maximize", epochs=2, steps_per_epoch=2, lr_range=(1e-3, 1e-1))
def fragile(trial: lrlab.Trial) -> None:
    """The score peaks at lr = 0.01 (in log LR); above FAILS_ABOVE the function raises, as a
    simulator that breaks at high LRs would."""
    if trial.lr > FAILS_ABOVE:
        raise RuntimeError("unstable simulator at this LR")
    weight = torch.nn.Parameter(torch.zeros(1))
    opt = trial.optimizer([weight])
    sched = trial.scheduler(opt)
    for epoch in range(1, trial.epochs + 1):
        for _ in range(trial.steps_per_epoch):
            loss = (weight - 1.0).pow(2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        trial.report(epoch, score=epoch * (1.0 - (math.log10(trial.lr) + 2.0) ** 2))


@pytest.fixture(scope="module")
def studied(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("study") / "runs.db"
    return lrlab.study(fragile, optimizers=["sgd"], store=path, schedules=["constant", "cosine"])


def test_print_says_how_many_runs_failed_and_why(studied) -> None:
    runs = studied.result.runs
    failed = [r for r in runs if r.status is RunStatus.FAILED]
    assert failed and all(r.config.lr > FAILS_ABOVE for r in failed)
    text = str(studied)
    line = next(x for x in text.splitlines() if "runs failed" in x)
    assert line.startswith(f"{len(failed)} of {len(runs)} runs failed")
    assert "unstable simulator at this LR" in line and f"({len(failed)}x)" in line
    assert line == failed_line(runs)  # one line, the same code as the CLI's


def test_the_bracket_closes_at_the_lr_that_failed(studied) -> None:
    optima = studied.result.optima
    assert optima
    for optimum in optima:
        assert optimum.bracketed, optimum.text
        assert max(optimum.tried) > FAILS_ABOVE  # the LR that failed is part of the bracket
        assert "(failed)" in optimum.text and "may lie higher" not in optimum.text
    assert "may lie higher" not in str(studied)


def test_the_code_is_the_lines_for_the_trial_function(studied) -> None:
    code = studied.code()
    assert set(code) == {"PyTorch", "Keras"}
    torch_code = code["PyTorch"]
    ast.parse(torch_code)
    assert "fragile" in torch_code
    assert "scheduler = LRScheduler(optimizer, " in torch_code and "torch.optim.SGD(" in torch_code
    for word in ("train_loader", "loss_fn", "model.compile", "for inputs, targets"):
        assert word not in torch_code and word not in code["Keras"]
    assert code["Keras"] == TRAINABLE_ONLY and code["Keras"].count("\n") == 1


def test_the_snippet_keeps_the_horizon_comment_for_a_schedule_with_steps() -> None:
    code = trainable_snippet(
        "adam", "cosine(lr=0.01, total_steps=400)", trainable="reinforce", study_steps=400
    )
    ast.parse(code)
    assert "total_steps = epochs * steps_per_epoch" in code
    assert 'parse(f"cosine(lr=0.01, total_steps={total_steps})")' in code
    assert "Measured up to" in code  # the horizon comment codegen writes for every snippet
    assert "train_loader" not in code


def test_the_verdict_names_the_trainables_run_length(tmp_path: Path) -> None:
    @lrlab.trainable(
        objective="score", direction="maximize", epochs=2, steps_per_epoch=2, lr_range=(1e-3, 1e-1)
    )
    def steady(trial: lrlab.Trial) -> None:
        fragile.fn(trial) if trial.lr <= FAILS_ABOVE else trial.report(1, score=-10.0)

    text = str(lrlab.study(steady, optimizers=["sgd"], store=tmp_path / "runs.db", schedules=["cosine"]))
    assert "epochs * steps_per_epoch" in text and "len(train_loader)" not in text
    assert "runs failed" not in text  # none did
