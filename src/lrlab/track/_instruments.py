"""The instruments of a tracked run: what they are hooked with when the run begins."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from lrlab.core.records import RunConfig
from lrlab.training.recorder import Recorder

__all__ = ["Watch"]


class Watch:
    """What the run's instruments are hooked with at ``begin``: the LR audit when the user
    gave the schedule (or an lrlab scheduler), against ``lr_mults`` (else each group's
    ``lr_mult``, else its initial LR relative to the first group's); the model for the
    schedule-free evaluation check and per-layer names; the fixed-batch loss
    the step probe and the sharpness read."""

    def __init__(
        self, known: bool, model: Any, lr_mults: Sequence[float] | None, probe_loss: Any
    ) -> None:
        if model is not None and not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if probe_loss is not None and not callable(probe_loss):
            raise TypeError(
                f"probe_loss must be a callable returning the loss on a fixed batch, got {probe_loss!r:.60}"
            )
        self.known, self.model, self.lr_mults, self.probe_loss = known, model, lr_mults, probe_loss

    def attach(self, recorder: Recorder, optimizer: torch.optim.Optimizer, config: RunConfig) -> None:
        mults = self.lr_mults if self.lr_mults is not None else _intended_mults(optimizer.param_groups)
        if self.lr_mults is not None and len(self.lr_mults) != len(optimizer.param_groups):
            raise ValueError(
                f"lr_mults has {len(self.lr_mults)} value(s) but the optimizer has {len(optimizer.param_groups)} "
                "param group(s): give one multiplier per group"
            )
        recorder.watch(optimizer, schedule=config.schedule if self.known else None, lr_mults=mults,
                       model=self.model, loss_fn=self.probe_loss)  # fmt: skip


def _intended_mults(groups: Sequence[Mapping[str, Any]]) -> list[float]:
    if any("lr_mult" in g for g in groups):
        return [float(g.get("lr_mult", 1.0)) for g in groups]
    base = [float(g.get("initial_lr", float(g["lr"]))) for g in groups]
    return [b / base[0] if base[0] > 0 else 1.0 for b in base]
