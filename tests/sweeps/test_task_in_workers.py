"""What worker processes get of a sweep's task: the object itself where they fork, the
task rebuilt once in each from its reference where they are spawned, and a task built in
Python pickled there (or one line saying why it cannot be)."""

from __future__ import annotations

import textwrap

import pytest
import torch
from torch import nn

from lrlab.core.records import RunConfig
from lrlab.store.sqlite import Store
from lrlab.sweeps import RunPlan, executors, run_sweep
from lrlab.training.tasks import Task, TensorPairs, get_task


def _linear() -> nn.Module:
    return nn.Linear(3, 2)


def _python_task(model_fn) -> Task:
    x, y = torch.randn(20, 3), torch.randint(0, 2, (20,))
    return Task("mine", "classification", 1, 4, model_fn, TensorPairs(x, y), TensorPairs(x, y))


def _plans(task_name: str) -> list[RunPlan]:
    return [RunPlan.of("s", RunConfig(task=task_name, lr=0.1, epochs=1))]


def test_forked_workers_inherit_the_object(monkeypatch):
    monkeypatch.setattr(executors, "_START_METHOD", "fork")
    task = _python_task(lambda: nn.Linear(3, 2))  # a lambda: it never needs to pickle
    assert executors._for_workers(task, _plans("mine")) == (task, False)


def test_spawned_workers_build_a_referenced_task_and_get_a_python_one_pickled(monkeypatch):
    monkeypatch.setattr(executors, "_START_METHOD", "spawn")
    built = get_task("digits-linear", train_size=64, val_size=32)
    assert executors._for_workers(built, _plans("digits-linear")) == (None, True)
    task = _python_task(_linear)
    assert executors._for_workers(task, _plans("mine")) == (task, False)
    with pytest.raises(ValueError, match=r"'mine' was built in Python and does not pickle.*jobs=1"):
        executors._for_workers(_python_task(lambda: nn.Linear(3, 2)), _plans("mine"))


COUNTED = textwrap.dedent('''
    import os
    from lrlab.training.tasks.digits import digits_linear


    def counted():
        with open(os.environ["LRLAB_TEST_BUILDS"], "a") as log:
            log.write(f"{os.getpid()}\\n")
        return digits_linear(train_size=96, val_size=32)
''')


@pytest.mark.slow
def test_spawned_workers_build_the_task_once_each_and_train_the_same_numbers(tmp_path, monkeypatch):
    (tmp_path / "counted.py").write_text(COUNTED)
    log = tmp_path / "builds.log"
    monkeypatch.setenv("LRLAB_TEST_BUILDS", str(log))
    spec = {"name": "spawned", "task": f"{tmp_path / 'counted.py'}:counted", "epochs": 2, "batch_size": 32,
            "seeds": [0, 1, 2], "grid": {"lr": [0.05, 0.2]}}  # fmt: skip
    inline = run_sweep(spec, Store(tmp_path / "inline.db"))
    monkeypatch.setattr(executors, "_START_METHOD", "spawn")
    log.unlink()
    spawned = run_sweep(spec, Store(tmp_path / "spawned.db"), jobs=2)
    builds = log.read_text().splitlines()
    assert len(builds) <= 3 and len(set(builds)) == len(builds)  # this process, then once per worker at most
    assert [r.status.value for r in spawned] == ["done"] * 6
    for a, b in zip(inline, spawned):
        assert a.id == b.id
        ea, eb = Store(tmp_path / "inline.db").epochs(a.id), Store(tmp_path / "spawned.db").epochs(b.id)
        assert [e.val_loss for e in ea] == [e.val_loss for e in eb]
