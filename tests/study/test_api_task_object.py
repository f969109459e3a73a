"""A study's task travels as an object: built once per study, shared by the range tests,
the vectorised groups, the runs trained alone and the worker processes, and never looked
up by name in a process-global table."""

from __future__ import annotations

import textwrap

import pytest
import torch
from torch import nn

import lrlab
import lrlab.training.tasks as tasks
from lrlab.store.sqlite import Store
from lrlab.study import run_study
from lrlab.sweeps import run_sweep


def _data(sign: float, n: int = 96):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    y = sign * (x @ torch.tensor([1.0, -2.0, 0.5, 3.0])) + 0.1 * torch.randn(n, generator=g)
    return (x[:64], y[:64]), (x[64:], y[64:])


def _model():
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))


def _study(sign: float, store: Store):
    train, val = _data(sign)
    return lrlab.study(_model, train, val, name="same", epochs=3, batch_size=16, optimizers=["adam"], store=store,
                       device="cpu")  # fmt: skip


def test_two_python_tasks_of_one_name_in_one_process_each_give_their_own_results(tmp_path, monkeypatch, one_thread):
    def no_lookup(ref, **options):
        raise AssertionError(f"the study looked its task up by name: {ref!r}")

    monkeypatch.setattr(tasks, "get_task", no_lookup)  # every lazy lookup by name goes through here
    up, down, up_again = Store(tmp_path / "up.db"), Store(tmp_path / "down.db"), Store(tmp_path / "again.db")
    first, second, third = _study(1.0, up), _study(-1.0, down), _study(1.0, up_again)
    assert first.name == second.name == third.name == "study-same-small"
    assert {r.config.task for r in [*first.result.runs, *second.result.runs]} == {"same"}
    # Each study trained its own data, the one before it in the process notwithstanding.
    assert first.task is not second.task and first.result.runs != second.result.runs
    assert _numbers(up) != _numbers(down)
    assert _numbers(up) == _numbers(up_again)


def _numbers(store: Store) -> dict[str, list[float]]:
    return {r.id: [e.val_loss for e in store.epochs(r.id)] for r in store.runs()}


def test_a_python_task_under_a_built_in_name_is_refused(tmp_path):
    train, val = _data(1.0)
    with pytest.raises(ValueError, match="is taken or not a plain name"):
        lrlab.study(_model, train, val, name="digits-mlp", epochs=3, optimizers=["adam"], store=tmp_path / "r.db")


COUNTING = textwrap.dedent('''
    import os
    import torch
    from torch import nn
    from lrlab.training.tasks import Task, TensorPairs


    def counted():
        with open(os.environ["LRLAB_TEST_BUILDS"], "a") as log:  # one line per build, in any process
            log.write(f"{os.getpid()}\\n")
        g = torch.Generator().manual_seed(0)
        x = torch.randn(96, 4, generator=g)
        y = torch.randint(0, 3, (96,), generator=g)
        return Task("counted", "classification", 3, 16, lambda: nn.Linear(4, 3), TensorPairs(x[:64], y[:64]),
                    TensorPairs(x[64:], y[64:]))
''')


@pytest.fixture
def counted(tmp_path, monkeypatch):
    (tmp_path / "counting.py").write_text(COUNTING)
    log = tmp_path / "builds.log"
    monkeypatch.setenv("LRLAB_TEST_BUILDS", str(log))
    return f"{tmp_path / 'counting.py'}:counted", log


def _builds(log) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


@pytest.mark.parametrize(("jobs", "vectorize"), [(1, True), (1, False), (2, False)])
def test_a_study_builds_its_task_once(counted, tmp_path, jobs, vectorize, one_thread):
    ref, log = counted
    result = run_study(ref, Store(tmp_path / "runs.db"), optimizers=["sgdm"], epochs=3, jobs=jobs,
                       vectorize=vectorize)  # fmt: skip
    assert len(result.runs) > 27 and all(r.config.task == ref for r in result.runs)
    assert _builds(log) == 1


def test_a_sweep_builds_its_task_once_for_every_worker(counted, tmp_path, one_thread):
    ref, log = counted
    spec = {"name": "counted", "task": ref, "epochs": 2, "seeds": [0, 1],
            "grid": {"lr": [0.01, 0.1], "optimizer": ["sgd", "adam"]}}  # fmt: skip
    records = run_sweep(spec, Store(tmp_path / "runs.db"), jobs=2)
    assert len(records) == 8 and {r.status.value for r in records} == {"done"}
    assert _builds(log) == 1
