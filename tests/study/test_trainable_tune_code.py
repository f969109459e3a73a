"""``tune`` on a trial function pastes the function's optimizer and scheduler lines, not a
data loop with ``loss_fn`` and a Keras ``model.compile``, in its printout and its markdown."""

from __future__ import annotations

import ast
from pathlib import Path

from lrlab.store.sqlite import Store
from lrlab.study.codegen import TRAINABLE_ONLY
from lrlab.tune import tune
from lrlab.tune.report import code, markdown

LOOP = """
import math
import lrlab
import torch

@lrlab.trainable(objective="score", direction="maximize", epochs=2, steps_per_epoch=2)
def peaked(trial):
    weight = torch.nn.Parameter(torch.zeros(1))
    opt = trial.optimizer([weight])
    sched = trial.scheduler(opt)
    for epoch in range(1, trial.epochs + 1):
        for _ in range(trial.steps_per_epoch):
            loss = (weight - 1.0).pow(2).sum()
            opt.zero_grad(); loss.backward(); opt.step(); sched.step()
        trial.report(epoch, score=epoch * (1.0 - (math.log10(trial.lr) + 1.0) ** 2))
"""


def test_a_tunes_code_for_a_trainable_is_the_functions_lines(tmp_path: Path) -> None:
    path = tmp_path / "loop.py"
    path.write_text(LOOP)
    spec = {
        "name": "tc", "task": f"{path}:peaked", "trials": 2, "sampler": "random", "pruner": "none",
        "space": {"optimizer": ["sgd"], "cosine": {"lr": {"log": [1e-2, 1.0]}}},
    }  # fmt: skip
    result = tune(spec, Store(tmp_path / "runs.db"), storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    torch_code, keras_code = code(result)
    ast.parse(torch_code)
    assert "peaked" in torch_code and "scheduler = LRScheduler(optimizer, " in torch_code
    assert "total_steps = epochs * steps_per_epoch" in torch_code  # cosine counts steps: the user's run
    assert keras_code == TRAINABLE_ONLY
    text = markdown(result)
    for word in ("train_loader", "loss_fn", "model.compile", "for inputs, targets"):
        assert word not in text
