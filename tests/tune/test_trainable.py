"""``tune`` on a trainable function: its declared objective and direction drive Optuna,
``trial.report`` feeds the pruner (a pruned run stored as the tune's own), and what a
function cannot give (a range test, a population) is refused in one line."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from lrlab.core.records import RunStatus
from lrlab.store.sqlite import Store
from lrlab.tune import tune
from lrlab.tune.pbt import run_pbt
from lrlab.tune.tuner import PRUNED_PREFIX

# The score peaks at lr = 0.1 (in log LR) and grows with the epochs: a maximised objective
# with a known optimum, from a loop that steps a real optimizer.
LOOP = """
import math
import lrlab
import torch

@lrlab.trainable(objective="score", direction="maximize", epochs=6, steps_per_epoch=2)
def peaked(trial):
    weight = torch.nn.Parameter(torch.zeros(1))
    opt = trial.optimizer([weight])
    sched = trial.scheduler(opt)
    for epoch in range(1, trial.epochs + 1):
        for _ in range(trial.steps_per_epoch):
            loss = (weight - 1.0).pow(2).sum()
            opt.zero_grad(); loss.backward(); opt.step(); sched.step()
            trial.log(loss=loss)
        trial.report(epoch, score=epoch * (1.0 - (math.log10(trial.lr) + 1.0) ** 2))
"""


def spec(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    path = tmp_path / "loop.py"
    path.write_text(LOOP)
    values: dict[str, Any] = {
        "name": "tt", "task": f"{path}:peaked", "trials": 8, "sampler": "random", "pruner": "halving",
        "space": {"optimizer": ["sgd"], "constant": {"lr": {"log": [1e-3, 10.0]}}},
    }  # fmt: skip
    values.update(changes)
    return values


@pytest.mark.slow
def test_a_tune_maximises_the_declared_objective_and_prunes_through_report(tmp_path: Path) -> None:
    store = Store(tmp_path / "runs.db")
    result = tune(spec(tmp_path), store, storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert (result.metric, result.direction) == ("score", "maximize")
    completed = [t for t in result.trials if t.state == "complete"]
    pruned = [t for t in result.trials if t.state == "pruned"]
    assert len(completed) + len(pruned) == 8 and pruned  # the halving pruner stopped some at a rung
    for trial in pruned:
        run = store.run(trial.run_ids[0])
        assert run.status is RunStatus.FAILED and (run.error or "").startswith(PRUNED_PREFIX)
        assert len(store.epochs(run.id)) < 6  # stopped early, its reports kept
    best = max(completed, key=lambda t: t.value or -1e9)
    assert result.best.number == best.number  # the one ranking agrees with Optuna, highest first
    # Every completed trial's value is the score at its last epoch: 6 * (1 - (log10 lr + 1)^2).
    for trial in completed:
        assert trial.value == pytest.approx(6 * (1 - (math.log10(trial.lr) + 1) ** 2))


def test_a_trainable_has_no_range_test_for_from_finder(tmp_path: Path) -> None:
    values = spec(tmp_path, space={"optimizer": ["sgd"], "constant": {"lr": {"from_finder": [0.3, 3]}}})
    store = Store(tmp_path / "runs.db")
    with pytest.raises(
        ValueError, match=r"is a trainable function: it has no range test .* \{log = \[low, high\]\}"
    ):
        tune(values, store, storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert store.runs() == []


def test_pbt_refuses_a_trainable_in_one_line(tmp_path: Path) -> None:
    values = spec(tmp_path, method="pbt", pbt={"population": 2, "lr": {"log": [0.01, 0.1]}})
    values.pop("space")
    store = Store(tmp_path / "runs.db")
    with pytest.raises(ValueError, match='method = "pbt" trains a population of models lrlab builds'):
        run_pbt(values, store)
    assert store.runs() == []
