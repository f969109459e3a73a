"""A trainable function as a sweep's task: trained by the executors inline and in worker
processes with the same numbers, its failures one line each while the others train."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lrlab.core.records import RunConfig, RunStatus
from lrlab.store.sqlite import Store
from lrlab.sweeps import RunPlan, run_plans
from lrlab.training.tasks import get_task

# A tiny regression trained by a loop of its own; an LR of 0.7 or more raises on purpose.
LOOP = """
import lrlab
import torch

@lrlab.trainable(objective="val_mse", epochs=2, steps_per_epoch=4, options={"width": 4})
def fit(trial):
    if trial.lr >= 0.7:
        raise RuntimeError(f"refused lr {trial.lr}")
    torch.manual_seed(trial.seed)
    x = torch.randn(48, 3)
    y = x.sum(1, keepdim=True)
    model = torch.nn.Sequential(torch.nn.Linear(3, trial.options["width"]), torch.nn.Tanh(),
                                torch.nn.Linear(trial.options["width"], 1))
    opt = trial.optimizer(model.parameters())
    sched = trial.scheduler(opt)
    order = torch.Generator().manual_seed(trial.seed)
    for epoch in range(1, trial.epochs + 1):
        for _ in range(trial.steps_per_epoch):
            batch = torch.randint(0, 48, (16,), generator=order)
            loss = torch.nn.functional.mse_loss(model(x[batch]), y[batch])
            opt.zero_grad(); loss.backward(); opt.step(); sched.step()
            trial.log(loss=loss)
        with torch.no_grad():
            trial.report(epoch, val_mse=float(torch.nn.functional.mse_loss(model(x), y)))
"""


@pytest.fixture
def loop_file(tmp_path: Path) -> str:
    path = tmp_path / "loop.py"
    path.write_text(LOOP)
    return f"{path}:fit"


def plans(ref: str, lrs: tuple[float, ...], seeds: tuple[int, ...] = (0, 1)) -> list[RunPlan]:
    return [
        RunPlan.of("tr", RunConfig(task=ref, lr=lr, optimizer="adam", epochs=2, seed=seed,
                                   schedule=f"cosine(lr={lr}, total_steps=8)", task_options={"width": 4}))
        for lr in lrs for seed in seeds
    ]  # fmt: skip


def numbers(store: Store, ids: list[str]) -> list[tuple[list[float], list[float | None]]]:
    return [(list(store.steps(i).loss), [e.value("val_mse") for e in store.epochs(i)]) for i in ids]


def test_the_same_numbers_whatever_jobs(tmp_path: Path, loop_file: str) -> None:
    task = get_task(loop_file, width=4)
    todo = plans(loop_file, (0.01, 0.05))
    ids = [p.id for p in todo]
    one, two = Store(tmp_path / "one.db"), Store(tmp_path / "two.db")
    run_plans(todo, one, "tr", {}, jobs=1, task=task)
    run_plans(todo, two, "tr", {}, jobs=2, task=task)
    assert all(r.status is RunStatus.DONE for r in two.runs())
    first, second = numbers(one, ids), numbers(two, ids)
    assert first == second
    assert len(first[0][0]) == 8 and len(first[0][1]) == 2
    assert first[0] != first[1]  # the seeds differ, so the test could fail


def test_a_reference_alone_is_built_by_each_run_and_vectorize_is_ignored(
    tmp_path: Path, loop_file: str
) -> None:
    store = Store(tmp_path / "runs.db")
    records = run_plans(plans(loop_file, (0.02,), seeds=(0,)), store, "tr", {}, vectorize=True)
    assert [r.status for r in records] == [RunStatus.DONE]
    assert records[0].extras["trainable"] == "fit" and "vectorized" not in records[0].extras
    steps = store.steps(records[0].id)
    np.testing.assert_allclose(np.asarray(steps.lrs)[:, 0], 0.02 * (1 + np.cos(np.pi * np.arange(8) / 8)) / 2)


def test_a_failing_run_is_one_line_and_the_sweep_goes_on(tmp_path: Path, loop_file: str) -> None:
    store = Store(tmp_path / "runs.db")
    events: list[object] = []
    todo = plans(loop_file, (0.01, 0.7, 0.05), seeds=(0,))
    records = run_plans(todo, store, "tr", {}, jobs=2, task=get_task(loop_file), progress=events.append)
    assert [r.status for r in records] == [RunStatus.DONE, RunStatus.FAILED, RunStatus.DONE]
    assert records[1].error == "RuntimeError: refused lr 0.7 (loop.py line 8)"
    end = [e for e in events if getattr(e, "event", "") == "end" and hasattr(e, "counts")][-1]
    assert end.counts == {"done": 2, "failed": 1}  # type: ignore[attr-defined]
    # Nothing stored is lost: a second pass trains only the failed run again, and fails it again.
    kept = numbers(store, [todo[0].id, todo[2].id])
    again = run_plans(todo, store, "tr", {}, task=get_task(loop_file))
    assert [r.status for r in again] == [RunStatus.DONE, RunStatus.FAILED, RunStatus.DONE]
    assert numbers(store, [todo[0].id, todo[2].id]) == kept
    assert [r.finished_at for r in again[::2]] == [r.finished_at for r in records[::2]]  # not trained again


@pytest.mark.slow
def test_on_ray_the_same_numbers_as_inline(tmp_path: Path, loop_file: str) -> None:
    pytest.importorskip("ray")
    todo = plans(loop_file, (0.01,), seeds=(0,))
    inline, ray = Store(tmp_path / "inline.db"), Store(tmp_path / "ray.db")
    run_plans(todo, inline, "tr", {})
    records = run_plans(todo, ray, "tr", {}, backend="ray", jobs=1)
    assert records[0].status is RunStatus.DONE and records[0].extras["backend"] == "ray"
    assert numbers(inline, [todo[0].id]) == numbers(ray, [todo[0].id])
