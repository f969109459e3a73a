"""``lrlab.study(fn)`` on a trainable function: no data to give, a recommendation by the
function's declared objective, every run recorded as the function's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import lrlab
from lrlab.core.records import RunStatus
from lrlab.store.sqlite import Store


@lrlab.trainable(objective="gain", direction="maximize", epochs=2, steps_per_epoch=2, lr_range=(1e-3, 1e-1))
def climb(trial: lrlab.Trial) -> None:
    """The gain peaks at lr = 0.01 (in log LR); a real optimizer steps each epoch."""
    weight = torch.nn.Parameter(torch.zeros(1))
    opt = trial.optimizer([weight])
    sched = trial.scheduler(opt)
    for epoch in range(1, trial.epochs + 1):
        for _ in range(trial.steps_per_epoch):
            loss = -(weight * 3).sum()  # a negative surrogate loss: never read as a divergence
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            trial.log(loss=loss.item())
        log_lr = torch.log10(torch.tensor(trial.lr))
        trial.report(epoch, gain=float(epoch * (1 - (log_lr + 2) ** 2)))


def test_study_refuses_data_for_a_trainable_and_a_model_without_data() -> None:
    x = torch.zeros(4, 1)
    with pytest.raises(ValueError, match="builds its own data: call study\\(fn\\) without train and val"):
        lrlab.study(climb, (x, x), (x, x))
    with pytest.raises(ValueError, match="needs train and val data for model_fn"):
        lrlab.study(lambda: torch.nn.Linear(1, 1))


@pytest.mark.slow
def test_study_of_a_trainable_recommends_by_its_declared_objective(tmp_path: Path) -> None:
    result = lrlab.study(
        climb, optimizers=["sgd"], store=tmp_path / "runs.db", schedules=["constant", "cosine"]
    )
    recommendation = result.result.recommendation
    assert recommendation.metric == "gain" and recommendation.higher_is_better
    assert 0.003 <= recommendation.best.lr <= 0.03  # around the gain's peak at 0.01
    store = Store(tmp_path / "runs.db")
    runs = store.runs()
    assert runs and all(r.extras.get("trainable") == "climb" for r in runs)
    assert not [r for r in runs if r.status is RunStatus.DIVERGED]  # negative losses are no divergence
