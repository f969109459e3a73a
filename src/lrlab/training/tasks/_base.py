"""The Task type: a model factory, deterministic data loaders, a loss and metrics."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from lrlab.store.records import Objective

__all__ = ["TASK_KINDS", "Task", "TensorPairs"]

TASK_KINDS = ("classification", "language_model")


class TensorPairs(Dataset):
    """``(inputs, targets)`` tensors indexed a whole batch at a time (no per-item collation)."""

    def __init__(self, inputs: Tensor, targets: Tensor) -> None:
        if len(inputs) != len(targets):
            raise ValueError(f"inputs and targets differ in length: {len(inputs)} != {len(targets)}")
        self.inputs = inputs
        self.targets = targets

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: Any) -> tuple[Tensor, Tensor]:
        if isinstance(index, list):
            # A tensor index is several times faster than a Python list of ints.
            index = torch.as_tensor(index, dtype=torch.long)
        return self.inputs[index], self.targets[index]

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:  # pragma: no cover - map-style
        raise TypeError("index a TensorPairs")


def _loader(dataset: Dataset, batch_size: int, generator: torch.Generator | None) -> DataLoader:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(dataset, TensorPairs):
        sampler = (
            RandomSampler(dataset, generator=generator)
            if generator is not None
            else SequentialSampler(dataset)
        )
        # batch_size=None with a batch sampler: the dataset gets a list of indices per batch.
        return DataLoader(
            dataset, batch_size=None, sampler=BatchSampler(sampler, batch_size, drop_last=False)
        )
    return DataLoader(dataset, batch_size=batch_size, shuffle=generator is not None, generator=generator)


@dataclass
class Task:
    """A learning problem the loop can train.

    Build one from tensors or datasets and a model factory; a subclass may override any
    method. ``kind`` is ``"classification"`` (outputs ``(batch, classes)`` logits) or
    ``"language_model"`` (outputs ``(batch, time, vocab)`` logits, targets ``(batch, time)``).

    Example:
        >>> import torch
        >>> x, y = torch.randn(40, 3), torch.randint(0, 2, (40,))
        >>> task = Task("toy", "classification", 2, 8, lambda: torch.nn.Linear(3, 2),
        ...             TensorPairs(x[:32], y[:32]), TensorPairs(x[32:], y[32:]))
        >>> sorted(task.evaluate(task.make_model(0), task.val_loader(8)))
        ['val_accuracy', 'val_error', 'val_loss']
    """

    name: str
    kind: str
    default_epochs: int
    default_batch_size: int
    model_factory: Callable[[], nn.Module]
    train_data: Dataset
    val_data: Dataset
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise ValueError(f"kind must be one of {', '.join(TASK_KINDS)}, got {self.kind!r}")

    @property
    def objective(self) -> Objective:
        """What every "best" of this task is judged on, and how its loss is named (stored
        with each run, read by the report and the study)."""
        return Objective.for_kind(self.kind)
        if self.default_epochs < 1 or self.default_batch_size < 1:
            raise ValueError("default_epochs and default_batch_size must be >= 1")

    def make_model(self, seed: int) -> nn.Module:
        """A freshly initialised model; the same seed gives the same weights."""
        torch.manual_seed(seed)
        return self.model_factory()

    def train_loader(self, batch_size: int, seed: int) -> DataLoader:
        """Shuffled batches; the same seed gives the same order, epoch after epoch."""
        return _loader(self.train_data, batch_size, torch.Generator().manual_seed(int(seed)))

    def val_loader(self, batch_size: int) -> DataLoader:
        return _loader(self.val_data, batch_size, None)

    def loss_fn(self, output: Tensor, target: Tensor) -> Tensor:
        """Mean cross-entropy (in nats per token for a language model)."""
        if self.kind == "language_model":
            return F.cross_entropy(output.reshape(-1, output.shape[-1]), target.reshape(-1))
        return F.cross_entropy(output, target)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader: DataLoader) -> dict[str, float | None]:
        """``val_loss`` (mean over examples or tokens), ``val_error`` and ``val_accuracy``
        (None for language models)."""
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        total_loss, count, correct = 0.0, 0, 0
        try:
            for inputs, targets in loader:
                inputs, targets = inputs.to(device), targets.to(device)
                output = model(inputs)
                n = targets.numel()
                total_loss += float(self.loss_fn(output, targets)) * n
                count += n
                if self.kind == "classification":
                    correct += int((output.argmax(dim=-1) == targets).sum())
        finally:
            model.train(was_training)
        if count == 0:
            raise ValueError(f"task {self.name!r} has an empty validation set")
        if self.kind == "language_model":
            return {"val_loss": total_loss / count, "val_error": None, "val_accuracy": None}
        accuracy = correct / count
        return {"val_loss": total_loss / count, "val_error": 1.0 - accuracy, "val_accuracy": accuracy}
