"""plateau as a tune family: each trial an lrlab run whose plateau is driven by its own
validation loss in the loop (patience counted in epochs: a trial runs several)."""

from __future__ import annotations

import numpy as np
import pytest

from lrlab.schedules import Plateau, observe
from lrlab.store import Store
from lrlab.tune import tune
from lrlab.tune.space import SpaceError, parse_space

from .conftest import tiny_spec

PER_EPOCH = 4  # 128 examples / 32


def test_plateau_trials_reduce_on_their_own_validation_loss(tmp_path):
    space = {"optimizer": "sgd(momentum=0.9)",
             "plateau": {"lr": {"log": [2.0, 8.0]}, "factor": {"uniform": [0.2, 0.7]}, "patience": {"int": [0, 1]},
                         "threshold": {"uniform": [0.2, 0.4]}}}  # fmt: skip
    spec = tiny_spec("plateau", epochs=6, trials=3, space=space, divergence_factor=1000.0, pruner="none")
    store = Store(tmp_path / "lrlab.db")
    result = tune(spec, store)
    assert len(result.runs) == 3
    reduced = 0
    for run in result.runs:
        assert isinstance(run.config.schedule, Plateau) and run.config.schedule.patience in (0, 1)
        assert 0.2 <= run.config.schedule.factor <= 0.7
        steps, epochs = store.steps(run.id), store.epochs(run.id)
        schedule, states, expected = run.config.schedule, None, []
        for epoch, record in enumerate(epochs, start=1):
            expected += [schedule(0)] * PER_EPOCH
            schedule, states = observe(schedule, epoch * PER_EPOCH - 1, record.val_loss, states)
        assert steps.lr.tolist() == expected[: len(steps)]
        reduced += bool(np.any(steps.lr < run.config.schedule.lr))
    assert reduced >= 1


def test_reductions_are_not_a_knob():
    with pytest.raises(SpaceError, match=r"space\.plateau\.reductions: the reductions are what"):
        parse_space({"plateau": {"lr": 0.1, "reductions": {"int": [0, 3]}}})
