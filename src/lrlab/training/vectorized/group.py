"""One group of vectorised runs, stacked: the members' model, optimizer, LR and momentum
tables on the device, and their per-member losses, gradient norms and validation metrics.
:mod:`lrlab.training.vectorized.trainer` trains a group and records its members."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from lrlab.training.resolve import ResolvedRun
from lrlab.training.vectorized.model import StackedModel
from lrlab.training.vectorized.optim import StackedOptimizer, stacked_optimizer


class _NotVectorizable(Exception):
    """The group's model cannot be run stacked (vmap or autograd refused it)."""


# ---------------------------------------------------------------- losses and metrics


def _member_losses(task: Any) -> Callable[[Tensor, Tensor], Tensor]:
    """``(K, batch, ...)`` outputs and shared targets -> ``(K,)`` mean losses."""
    from lrlab.training.tasks import Task

    if type(task).loss_fn is Task.loss_fn and getattr(task, "stock_metrics", True):
        # The base task's mean cross-entropy, for all members in one call.
        def cross_entropy(outputs: Tensor, targets: Tensor) -> Tensor:
            members, classes = outputs.shape[0], outputs.shape[-1]
            per_item = F.cross_entropy(
                outputs.reshape(-1, classes), targets.reshape(-1).repeat(members), reduction="none"
            )
            return per_item.view(members, -1).mean(dim=1)

        return cross_entropy
    return torch.func.vmap(task.loss_fn, in_dims=(0, None))


def _member_norms(grads: Sequence[Tensor]) -> Tensor:
    """Each member's gradient norm over all its parameters: ``(K,)``."""
    per_param = [
        torch.linalg.vector_norm(g, dim=tuple(range(1, g.dim()))) if g.dim() > 1 else g.abs() for g in grads
    ]
    return torch.linalg.vector_norm(torch.stack(per_param), dim=0)


# ---------------------------------------------------------------- one group


class _Group:
    """A group's task, stacked model, optimizer and per-member schedules (no store writes)."""

    def __init__(self, runs: Sequence[ResolvedRun], mode: str) -> None:
        first = runs[0]
        self.runs = list(runs)
        self.device = device = first.device
        self.task = task = first.task
        self.epochs = first.epochs
        self.threads = first.threads
        self.train_loader, self.val_loader = first.train_loader, first.val_loader
        self.steps_per_epoch = first.steps_per_epoch
        self.total_steps = first.total_steps
        self.factor = first.divergence_factor
        steps = np.arange(self.total_steps + 1, dtype=np.float64)
        lr_rows = [np.asarray(run.schedule(steps), dtype=np.float64) for run in runs]
        momentum_rows = [
            None if run.momentum is None else np.asarray(run.momentum(steps), dtype=np.float64) for run in runs
        ]
        models = [task.make_model(run.config.seed).to(device) for run in runs]
        try:
            self.model = StackedModel(models, mode)
        except ValueError as exc:
            raise _NotVectorizable(str(exc)) from None
        self.model.train(True)
        self.optimizer: StackedOptimizer = stacked_optimizer(first.config.optimizer, self.model.params)
        default = self.optimizer.momentum
        self.scheduled_momentum = any(row is not None for row in momentum_rows)
        self.lr_table = torch.tensor(np.stack(lr_rows), dtype=torch.float64)
        self.momentum_table = torch.tensor(
            np.stack([row if row is not None else np.full_like(steps, default) for row in momentum_rows]),
            dtype=torch.float64,
        )
        self.lr_device = self.lr_table.to(device)
        self.momentum_device = self.momentum_table.to(device)
        self.loss = _member_losses(task)
        self.stacked_eval = getattr(task, "stock_metrics", False)  # else each member's task.evaluate
        self._probe()

    def _probe(self) -> None:
        # A validation batch, so that the training loader's shuffling stays untouched.
        inputs, targets = next(iter(self.val_loader))
        inputs, targets = inputs.to(self.device), targets.to(self.device)
        try:
            self.model.probe(inputs, lambda out: self.loss(out, targets))
        except Exception as exc:
            raise _NotVectorizable(f"{type(exc).__name__}: {exc}".splitlines()[0]) from None

    @torch.no_grad()
    def evaluate(self, alive: Sequence[int]) -> list[dict[str, float | None]]:
        """The task's validation metrics for the stacked members ``alive`` (local order)."""
        if not self.stacked_eval:
            return [self.task.evaluate(self.model.member(j), self.val_loader) for j in range(len(alive))]
        self.model.train(False)
        members = self.model.members
        total = torch.zeros(members, dtype=torch.float64, device=self.device)
        correct = torch.zeros(members, dtype=torch.int64, device=self.device)
        count = 0
        try:
            for inputs, targets in self.val_loader:
                inputs, targets = inputs.to(self.device), targets.to(self.device)
                outputs = self.model(inputs)
                n = targets.numel()
                total += self.loss(outputs, targets).double() * n
                count += n
                if self.task.kind == "classification":
                    correct += (outputs.argmax(dim=-1) == targets).flatten(1).sum(dim=1)
        finally:
            self.model.train(True)
        if count == 0:
            raise ValueError(f"task {self.task.name!r} has an empty validation set")
        losses = (total / count).tolist()
        if self.task.kind == "language_model":
            return [{"val_loss": v, "val_error": None, "val_accuracy": None} for v in losses]
        accuracy = (correct.double() / count).tolist()
        return [{"val_loss": v, "val_error": 1.0 - a, "val_accuracy": a} for v, a in zip(losses, accuracy)]
