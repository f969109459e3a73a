"""An epoch's optimizer steps are counted from the dataset's length, the batch size and
``drop_last``, without building a loader, and always equal ``len`` of the loader the run
trains on."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lrlab.training.resolve import steps_per_epoch
from lrlab.training.tasks import Task, TensorPairs, batch_count, get_task

SIZES = [1, 7, 31, 32, 33, 64, 100]
BATCHES = [1, 2, 8, 32, 33, 128]


def _pairs(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(n, 3), torch.randint(0, 2, (n,))


def _never_builds_a_loader(task: Task, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args, **_kwargs):
        raise AssertionError("steps_per_epoch built a loader")

    monkeypatch.setattr(task, "train_loader", refuse)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("batch_size", BATCHES)
@pytest.mark.parametrize("pairs", [True, False], ids=["tensor-pairs", "dataset"])
def test_a_tasks_steps_per_epoch_is_the_length_of_its_loader(size, batch_size, pairs, monkeypatch):
    x, y = _pairs(size)
    train = TensorPairs(x, y) if pairs else TensorDataset(x, y)
    task = Task("t", "classification", 1, 4, lambda: nn.Linear(3, 2), train, TensorPairs(x, y))
    expected = len(task.train_loader(batch_size, seed=0))
    _never_builds_a_loader(task, monkeypatch)
    assert steps_per_epoch(task, batch_size) == task.steps_per_epoch(batch_size) == expected


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("batch_size", BATCHES)
@pytest.mark.parametrize("drop_last", [False, True])
def test_a_task_from_loaders_counts_with_the_users_drop_last(size, batch_size, drop_last):
    x, y = _pairs(size)
    given = DataLoader(TensorDataset(x, y), batch_size=4, drop_last=drop_last)
    task = Task.from_loaders("t", lambda: nn.Linear(3, 2), given, DataLoader(TensorDataset(x, y)))
    assert steps_per_epoch(task, batch_size) == len(task.train_loader(batch_size, seed=3))
    assert task.steps_per_epoch(batch_size) == batch_count(size, batch_size, drop_last)


@pytest.mark.parametrize("name", ["digits-linear", "digits-cnn", "chars-lstm", "digits-transfer"])
def test_built_in_tasks_count_as_their_loaders(name):
    options = {"chars-lstm": {"corpus_chars": 20_000}, "digits-transfer": {"pretrained": False}}.get(name, {})
    task = get_task(name, **options)
    for batch_size in (1, 32, task.default_batch_size, 1000):
        assert steps_per_epoch(task, batch_size) == len(task.train_loader(batch_size, seed=0))


def test_a_subclass_with_its_own_loader_is_counted_on_it():
    x, y = _pairs(50)

    class Pairs(Task):
        def train_loader(self, batch_size: int, seed: int) -> DataLoader:  # batches of two
            return DataLoader(TensorDataset(x, y), batch_size=2)

    task = Pairs("t", "classification", 1, 4, lambda: nn.Linear(3, 2), TensorPairs(x, y), TensorPairs(x, y))
    assert steps_per_epoch(task, 10) == 25


def test_a_bad_batch_size_is_refused():
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        batch_count(10, 0)
