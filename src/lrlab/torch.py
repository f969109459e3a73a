"""PyTorch binding: any lrlab schedule as a ``torch.optim.lr_scheduler.LRScheduler``.

The learning rate is computed in closed form from ``last_epoch`` (the number of
``step()`` calls), so a million steps carry no recursive drift and a resumed
scheduler continues the identical sequence.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler as _TorchLRScheduler

from lrlab.schedules import Schedule, from_dict

__all__ = ["LRScheduler", "momentum_key"]


def momentum_key(optimizer: Optimizer) -> str:
    """The param-group key a momentum schedule drives: ``momentum`` or ``betas``."""
    group = optimizer.param_groups[0]
    if "momentum" in group:
        return "momentum"
    if "betas" in group:
        return "betas"
    raise ValueError(
        f"a momentum schedule needs an optimizer with 'momentum' (SGD, RMSprop) or 'betas' "
        f"(Adam family); {type(optimizer).__name__} has neither"
    )


class _Chunked:
    """A schedule's values read a chunk at a time: one vectorised evaluation serves the
    next ``size`` steps, so a ``step()`` costs a list lookup. The values are those of
    ``schedule(t)`` exactly (scalar and vector evaluation agree to the bit)."""

    def __init__(self, schedule: Schedule, size: int = 1024) -> None:
        self.schedule = schedule
        self.size = size
        self.start = 0
        self.values: list[float] = []

    def __call__(self, step: int) -> float:
        offset = step - self.start
        if not 0 <= offset < len(self.values):
            self.start, offset = step, 0
            self.values = self.schedule(np.arange(step, step + self.size, dtype=np.float64)).tolist()
        return self.values[offset]


class LRScheduler(_TorchLRScheduler):
    """Drive ``optimizer`` with ``schedule``; call ``step()`` after ``optimizer.step()``.

    A param group with an ``lr_mult`` key gets ``schedule(t) * lr_mult`` (Caffe's
    base_lr x lr_mult). With ``momentum``, SGD's ``momentum`` or the Adam family's
    ``betas[0]`` follows that schedule too (one-cycle style).

    Example:
        >>> import torch
        >>> from lrlab.schedules import cosine
        >>> model = torch.nn.Linear(2, 1)
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.0)
        >>> sched = LRScheduler(opt, cosine(0.1, total_steps=100))
        >>> opt.step(); sched.step(); sched.get_last_lr()
        [0.09997532801828658]
    """

    def __init__(
        self,
        optimizer: Optimizer,
        schedule: Schedule,
        momentum: Schedule | None = None,
        last_epoch: int = -1,
    ) -> None:
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be an lrlab schedule, got {type(schedule).__name__}")
        if momentum is not None and not isinstance(momentum, Schedule):
            raise TypeError(f"momentum must be an lrlab schedule or None, got {type(momentum).__name__}")
        self.schedule = schedule
        self.momentum = momentum
        self._lr_values: _Chunked | None = None
        self._momentum_values: _Chunked | None = None
        self._momentum_key = momentum_key(optimizer) if momentum is not None else None
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:  # type: ignore[override]
        cache = self._lr_values
        if cache is None or cache.schedule is not self.schedule:
            cache = self._lr_values = _Chunked(self.schedule)
        value = cache(self.last_epoch)
        return [
            value * float(group["lr_mult"]) if "lr_mult" in group else value
            for group in self.optimizer.param_groups
        ]

    def _get_closed_form_lr(self) -> list[float]:
        return self.get_lr()

    def step(self, epoch: int | None = None) -> None:  # type: ignore[override]
        super().step(epoch)
        if self.momentum is not None:
            cache = self._momentum_values
            if cache is None or cache.schedule is not self.momentum:
                cache = self._momentum_values = _Chunked(self.momentum)
            self._set_momentum(cache(self.last_epoch))

    def _set_momentum(self, value: float) -> None:
        for group in self.optimizer.param_groups:
            if self._momentum_key == "momentum":
                group["momentum"] = value
            else:
                group["betas"] = (value, *tuple(group["betas"])[1:])

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        # Plain data, so checkpoints load with torch.load(weights_only=True); the value
        # caches are rebuilt on demand.
        state.pop("_lr_values", None)
        state.pop("_momentum_values", None)
        state["schedule"] = self.schedule.to_dict()
        state["momentum"] = None if self.momentum is None else self.momentum.to_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = {k: v for k, v in state_dict.items() if k not in ("_lr_values", "_momentum_values")}
        schedule, momentum = state.pop("schedule", None), state.pop("momentum", None)
        super().load_state_dict(state)
        if schedule is not None:
            self.schedule = from_dict(schedule)
        if momentum is not None:
            self.momentum = from_dict(momentum)
