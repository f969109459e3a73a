"""The bracketing on real tiny studies (digits-linear, one epoch, a real store): a grid shifted
below the optimum on purpose hits its edge, the family is extended outward and says when the
extra budget ran out; a grid around the optimum brackets it and fits an interval over seeds;
a second run resumes without training; a loss that is merely negative never counts as diverged."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from lrlab.core.records import RunStatus
from lrlab.core.verdict import StudyVerdict
from lrlab.store.sqlite import Store
from lrlab.study.bracketing import MAX_EXTRA
from lrlab.study.run import run_study
from lrlab.training.recorder import RunProgress
from lrlab.training.tasks import Task, get_task
from lrlab.training.tasks._base import TensorPairs


def _shifted(name: str, lr_range: tuple[float, float] | None) -> Task:
    """digits-linear without a range test, its LRs spanning ``lr_range``."""
    task = get_task("digits-linear")
    task.name = name
    task.range_test = False
    task.lr_range = lr_range
    return task


def _study(task: Task, store: Store, progress=None):
    return run_study(
        task, store, epochs=1, optimizers=["adam"], schedules=["constant"], jobs=1, progress=progress
    )


@pytest.fixture(scope="module")
def low_window(tmp_path_factory):
    """A study whose LRs (1e-4..1e-3 for Adam on a linear softmax) lie far below its optimum."""
    store = Store(tmp_path_factory.mktemp("low") / "runs.db")
    events: list = []
    result = _study(_shifted("digits-low", (1e-4, 1e-3)), store, events.append)
    yield store, result, events
    store.close()


@pytest.mark.slow
def test_a_window_below_the_optimum_is_extended_outward_until_the_budget_runs_out(low_window):
    _store, result, events = low_window
    first = [1e-4, math.sqrt(1e-4 * 1e-3), 1e-3]
    seed0 = sorted(r.config.lr for r in result.runs if r.config.seed == 0)
    step = math.sqrt(10)
    assert seed0 == pytest.approx([*first, 0.001 * step, 0.001 * step**2])  # two more LRs, one grid step each
    assert all(r.status is RunStatus.DONE for r in result.runs)
    assert result.bracketing.extra_runs == MAX_EXTRA and result.bracketing.rounds == MAX_EXTRA
    assert (result.bracketing.edge_before, result.bracketing.edge_after) == (1, 1)
    assert any(s.endswith("-bracket1") for s in result.sweeps) and any(
        s.endswith("-bracket2") for s in result.sweeps
    )
    (optimum,) = result.optima
    assert not optimum.bracketed and optimum.edge == "high"
    assert optimum.best_lr == pytest.approx(1e-3 * step**2)
    assert optimum.extra == MAX_EXTRA and len(optimum.tried) == 5
    words = "\n".join(result.verdict.lines)
    assert "the best LR was the largest tried" in words and "the extra budget ran out" in words
    assert "the optimum may lie higher" in words
    grid_events = [e for e in events if getattr(e, "phase", None) == "grid"]
    assert len(grid_events) == 1 and "the task has no range test" in grid_events[0].detail


@pytest.mark.slow
def test_the_stored_verdict_holds_the_optima_and_a_rerun_trains_nothing(low_window):
    store, result, _events = low_window
    stored = StudyVerdict.from_dict(store.sweep_spec(result.name)["study"])
    assert stored.optima == result.verdict.optima and stored.optimum is not None
    ended: list = []
    again = _study(_shifted("digits-low", (1e-4, 1e-3)), store, ended.append)
    assert not [e for e in ended if isinstance(e, RunProgress) and e.event == "end"]  # nothing retrained
    assert again.verdict.lines == result.verdict.lines
    assert {r.id for r in again.runs} == {r.id for r in result.runs}


@pytest.mark.slow
def test_a_window_around_the_optimum_is_bracketed_with_an_interval_over_seeds(tmp_path):
    store = Store(tmp_path / "runs.db")
    result = _study(_shifted("digits-mid", (3e-3, 3e-1)), store)
    optimum = result.verdict.optimum
    assert optimum is not None and optimum.recommended
    assert optimum.bracketed and optimum.edge is None
    assert optimum.seeds == len(result.extras["seeds"]) == 3
    assert optimum.low < optimum.lr < optimum.high
    best = optimum.best_lr
    lower = max(lr for lr in optimum.tried if lr < best)
    upper = min(lr for lr in optimum.tried if lr > best)
    assert lower <= optimum.lr <= upper  # the vertex lies inside its bracket
    for lr in (lower, upper):  # the bracket neighbours trained every seed
        seeds = {r.config.seed for r in result.runs if math.isclose(r.config.lr, lr) and r.status.is_finished}
        assert seeds == {0, 1, 2} or any(
            r.status is RunStatus.DIVERGED for r in result.runs if math.isclose(r.config.lr, lr)
        )
    # the optimum follows the recommendation and its score (a constant LR has no step counts to scale)
    assert result.verdict.lines[2].startswith("optimum of adam + constant: peak LR")
    assert "3 seeds" in result.verdict.lines[2]
    store.close()


def test_a_negative_loss_is_not_a_divergence(tmp_path):
    """A loss shifted below zero (as a negative return is) falls from -9 towards -10: it
    trains, it never diverges, although -9.9 is "above" 4 x the first loss."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(96, 4, generator=gen)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [0.0]])

    def shifted(output, target):
        return F.mse_loss(output, target) - 10.0

    task = Task("negative-loss", "regression", 2, 16, lambda: torch.nn.Linear(4, 1),
                TensorPairs(x[:64], y[:64]), TensorPairs(x[64:], y[64:]), loss_fn=shifted)  # fmt: skip
    task.range_test = False
    task.lr_range = (1e-3, 1e-1)
    store = Store(tmp_path / "runs.db")
    result = run_study(task, store, epochs=3, optimizers=["sgd"], schedules=["constant"], jobs=1)
    assert result.runs and not [r for r in result.runs if r.status is RunStatus.DIVERGED]
    assert all(r.config.divergence_factor is None for r in result.runs)
    assert "diverged" not in "\n".join(result.verdict.lines)
    store.close()
