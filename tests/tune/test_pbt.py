"""Population-based training: the winner's lineage is an exact lrlab schedule that replays
to the same LR at every step (and, the ancestors' state copied whole, the same training)."""

from __future__ import annotations

import numpy as np
import pytest

from lrlab.schedules import SequenceSchedule, parse
from lrlab.store import RunStatus, Store
from lrlab.tune.pbt import lineage_schedule, run_pbt

from .conftest import TINY


@pytest.fixture(scope="module")
def pbt(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("pbt") / "lrlab.db")
    spec = {"name": "pbt", "task": "digits-linear", "task_options": TINY, "method": "pbt", "epochs": 4,
            "batch_size": 32, "pbt": {"population": 5, "interval": 0.5, "lr": {"log": [0.003, 3.0]}}}  # fmt: skip
    return store, run_pbt(spec, store)


def test_the_lineage_replays_to_the_same_lr_at_every_step(pbt):
    store, result = pbt
    steps = store.steps(result.replay.id)
    assert result.replay.status is RunStatus.DONE
    assert len(steps) == result.total_steps == 16
    np.testing.assert_array_equal(steps.lr, result.lrs)  # bit for bit
    np.testing.assert_array_equal(result.schedule(np.arange(result.total_steps)), result.lrs)
    assert result.replay_exact
    # The spec string reads back to the same schedule: it can be pasted into training.
    assert parse(str(result.schedule)) == result.schedule


def test_the_replay_trains_as_the_winner_did(pbt):
    _store, result = pbt
    assert result.replay_score == pytest.approx(result.winner_score, abs=1e-12)


def test_exploit_steps_copy_the_best_and_perturb_their_lr(pbt):
    _store, result = pbt
    assert len(result.history) == 7  # every 2 steps, before the end
    for entry in result.history:
        scores = entry["scores"]
        for loser, donor in entry["copies"]:
            assert scores[donor] <= scores[loser]
            ratio = entry["lrs"][loser] / entry["lrs"][donor]
            assert ratio == pytest.approx(0.8, rel=1e-4) or ratio == pytest.approx(1.25, rel=1e-4)
    assert result.compute_steps == 5 * 16 + 16


def test_lineage_schedule_merges_equal_neighbours():
    schedule = lineage_schedule([0.1, 0.1, 0.05, 0.05, 0.2], [4, 8, 12, 16])
    assert isinstance(schedule, SequenceSchedule)
    assert schedule.boundaries == (8, 16)
    assert [schedule(t) for t in (0, 7, 8, 15, 16, 99)] == [0.1, 0.1, 0.05, 0.05, 0.2, 0.2]
