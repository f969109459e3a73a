"""The step probe: the loss of a fixed batch along the update the optimizer just took.

Every ``every`` optimizer steps the probe evaluates a closure (the loss on a batch the user
holds fixed) at the weights before the step (``w0``), after it (``w1 = w0 + d``) and one
update further (``w0 + 2d``), and fits the parabola through the three losses. Its lowest point,
in multiples of the update, says how the step compares with the valley it crosses:

- about 1: the step lands near the bottom along its own direction (a well-set LR: the article's
  "largest LR that still descends");
- well above 1: the loss keeps falling far beyond the step (the steps are too short: the LR is
  too small, training crawls down a slope it could take in stride);
- below 1 or negative: the step overshoots the bottom (the oscillation across a valley of the
  adaptive-LR article).

The multiple scales about as 1/LR (measured on the tuning runs named in
:mod:`lrlab.instruments.panel`), which is what makes it an instrument of the LR rather than of
the model: the update ratio's "1e-3 is healthy" depends on the model's weight scale, this does
not. Three forward passes under ``torch.no_grad`` per probe; the weights are restored bit for
bit, the random state is forked (each evaluation draws the same dropout masks) and, when the
model is known, its buffers (BatchNorm's running statistics) are restored.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

__all__ = ["PROBE_SEED", "StepProbe", "optimal_multiple"]

PROBE_SEED = 0  # the random state every evaluation starts from (the same dropout masks)


def optimal_multiple(f0: float, f1: float, f2: float) -> float:
    """Where the parabola through ``(0, f0)``, ``(1, f1)``, ``(2, f2)`` is lowest, in multiples
    of the update: ``inf`` where the loss falls with no upward curve (no bottom in sight),
    ``-inf`` where it rises with none, NaN where it does not move or a loss is not finite.

    >>> optimal_multiple(1.0, 0.5, 1.0)
    1.0
    >>> round(optimal_multiple(1.0, 0.9, 0.81), 2)  # falling, barely curving: steps far too short
    10.5
    >>> optimal_multiple(1.0, 0.9, 0.8)
    inf
    """
    if not all(math.isfinite(f) for f in (f0, f1, f2)):
        return math.nan
    slope = (-3.0 * f0 + 4.0 * f1 - f2) / 2.0  # the parabola's slope at 0
    curve = (f0 - 2.0 * f1 + f2) / 2.0  # its second-order coefficient
    if curve > 0:
        return -slope / (2.0 * curve)
    if slope < 0:
        return math.inf
    return -math.inf if slope > 0 else math.nan


class StepProbe:
    """Every ``every`` optimizer steps, the multiple of the update at which ``loss_fn`` (a
    closure returning the loss on a fixed batch) is lowest along it; ``model`` (optional) has
    its buffers restored after each evaluation."""

    def __init__(
        self, loss_fn: Callable[[], torch.Tensor], every: int = 10, model: torch.nn.Module | None = None
    ) -> None:
        if not callable(loss_fn):
            raise TypeError(
                f"the step probe needs a loss closure (a callable returning the loss), got {loss_fn!r:.60}"
            )
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"probe every must be a whole number >= 1 (steps between probes), got {every!r}")
        self.loss_fn, self.every, self.model = loss_fn, every, model
        self._before: list[torch.Tensor] | None = None
        self._f0 = math.nan

    def due(self, step: int) -> bool:
        return step % self.every == 0

    @property
    def armed(self) -> bool:
        """Whether :meth:`before` ran for the step under way."""
        return self._before is not None

    def before(self, params: Sequence[torch.Tensor]) -> None:
        """The weights and the loss before the step."""
        with torch.no_grad():
            self._before = [p.detach().clone() for p in params]
        self._f0 = self._loss()

    def after(self, params: Sequence[torch.Tensor]) -> tuple[float, float, float, float]:
        """``(multiple, f0, f1, f2)`` for the step just taken; the weights are left as the
        step left them."""
        before, self._before = self._before, None
        if before is None:
            return math.nan, math.nan, math.nan, math.nan
        f1 = self._loss()
        with torch.no_grad():
            after = [p.detach().clone() for p in params]
            for param, old, new in zip(params, before, after):
                param.copy_(new + (new - old))  # one update further
        try:
            f2 = self._loss()
        finally:
            with torch.no_grad():
                for param, new in zip(params, after):
                    param.copy_(new)  # bit for bit as the step left it
        return optimal_multiple(self._f0, f1, f2), self._f0, f1, f2

    def _loss(self) -> float:
        buffers = [b.detach().clone() for b in self.model.buffers()] if self.model is not None else []
        devices = (
            [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
        )
        try:
            with torch.random.fork_rng(devices=devices), torch.no_grad():
                torch.manual_seed(PROBE_SEED)
                value = self.loss_fn()
                return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
        finally:
            if self.model is not None:
                with torch.no_grad():
                    for buffer, saved in zip(self.model.buffers(), buffers):
                        buffer.copy_(saved)
