"""One optimizer step of the finder's searches, and the argument checks they share.

The range test (``lrlab.finder.range``), the halving search (``lrlab.finder.halving``) and
the confirmation (``lrlab.finder.confirm``) all train the caller's model the same way: one
step over ``accumulation_steps`` batches read by a :class:`~lrlab.finder.batches.BatchReader`,
with or without CUDA AMP, a step whose loss is not finite not taken.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from typing import Any

import torch

from lrlab.finder.batches import BatchReader
from lrlab.torch_utils import model_device

__all__ = ["Stepper", "check_count", "scalar_loss"]


def check_count(name: str, value: Any, minimum: int, why: str = "", maximum: int | None = None) -> None:
    """``ValueError`` unless ``value`` is an integer (not a bool) >= ``minimum`` (and <=
    ``maximum`` when given); ``why`` says in the message what the number counts.

    >>> check_count("repeats", 0, 1, "range tests to average")
    Traceback (most recent call last):
    ValueError: repeats must be an integer >= 1 (range tests to average), got 0
    >>> check_count("num_iter", 10**9, 2, "optimizer steps of the test", maximum=100_000)
    Traceback (most recent call last):
    ValueError: num_iter must be an integer >= 2 (optimizer steps of the test) and at most 100000, got 1000000000
    """
    too_big = maximum is not None and isinstance(value, int) and value > maximum
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or too_big:
        note = f" ({why})" if why else ""
        bound = "" if maximum is None else f" and at most {maximum}"
        raise ValueError(f"{name} must be an integer >= {minimum}{note}{bound}, got {value!r}")


def scalar_loss(loss: Any) -> Any:
    """``loss`` when it is one number (a tensor of one element); else a ``ValueError`` that
    says what it is and how to reduce it (instead of torch's "only one element tensors")."""
    if not isinstance(loss, torch.Tensor):
        raise ValueError(f"loss_fn must return a torch tensor, got {type(loss).__name__}")
    if loss.numel() != 1:
        raise ValueError(
            f"loss_fn must return one number per batch (a mean), got a tensor of shape {tuple(loss.shape)}: "
            "reduce it, e.g. with .mean() or reduction='mean'"
        )
    return loss


class Stepper:
    """One optimizer step over ``accumulation_steps`` batches, with or without CUDA AMP."""

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: Callable[[Any, Any], torch.Tensor] | None,
        accumulation_steps: int,
        amp: bool,
        reader: BatchReader | None = None,
    ) -> None:
        self.model, self.optimizer = model, optimizer
        self.reader = reader if reader is not None else BatchReader(loss_fn)
        self.accumulation_steps = accumulation_steps
        self.device = model_device(model)
        if amp and self.device.type != "cuda":
            raise ValueError(f"amp=True needs the model on a CUDA device, it is on {self.device}")
        self.amp = amp
        self.scaler = torch.amp.GradScaler("cuda") if amp else None

    def autocast(self) -> Any:
        return torch.autocast("cuda", dtype=torch.float16) if self.amp else nullcontext()

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            value = lr * group.get("lr_mult", 1.0)
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(value)  # a tensor LR stays a tensor (capturable / fused optimizers)
            else:
                group["lr"] = value

    def step(self, batches: Iterator[Any]) -> float:
        """Train one step; return the mean loss, NaN (and no step taken) if any is not finite."""
        self.optimizer.zero_grad(set_to_none=True)
        total, finite = 0.0, True
        for _ in range(self.accumulation_steps):
            with self.autocast():
                loss, _ = self.reader.loss(self.model, next(batches), self.device)
            value = float(scalar_loss(loss).detach())
            if not math.isfinite(value):
                finite = False
                break
            total += value
            scaled = loss / self.accumulation_steps
            (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
        if not finite:
            self.optimizer.zero_grad(set_to_none=True)
            return math.nan
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        return total / self.accumulation_steps

    @torch.no_grad()
    def evaluate(self, loader: Iterable[Any]) -> float:
        """Mean loss over ``loader`` in eval mode (weighted by batch size where known)."""
        self.model.eval()
        total, weight = 0.0, 0.0
        try:
            for batch in loader:
                with self.autocast():
                    loss, size = self.reader.loss(self.model, batch, self.device)
                total += float(scalar_loss(loss)) * size
                weight += size
        finally:
            self.model.train()
        if weight == 0:
            raise ValueError("val_loader yielded no batches")
        return total / weight
