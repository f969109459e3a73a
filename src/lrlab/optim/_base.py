"""What lrlab's own optimizers share: a ``step`` that evaluates the closure and updates each
parameter with a gradient, one at a time (their rules are per weight)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.optim import Optimizer

__all__ = ["PerParameterOptimizer"]


class PerParameterOptimizer(Optimizer):
    """A ``torch.optim.Optimizer`` whose subclass writes ``_update(param, group)``: the update
    of one parameter with a gradient, under ``torch.no_grad()``."""

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    self._update(param, group)
        return loss

    def _update(self, param: torch.Tensor, group: dict[str, Any]) -> None:
        raise NotImplementedError
