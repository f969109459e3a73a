"""The step probe: the loss of a fixed batch along the update the optimizer just took.

Every ``every`` optimizer steps the probe evaluates a closure (the loss on a batch the user
holds fixed) at the weights before the step (``w0``), after it (``w1 = w0 + d``) and one
update further (``w0 + 2d``), and fits the parabola through the three losses. Its lowest point,
in multiples of the update, says how the step compares with the valley it crosses:

- about 1: the step lands near the bottom along its own direction (a well-set LR);
- well above 1: the loss keeps falling far beyond the step (the steps are too short: the LR is
  too small, training crawls down a slope it could take in stride);
- below 1 or negative: the step overshoots the bottom (the oscillation across a valley of the
  adaptive-LR article).

The multiple scales about as 1/LR (measured on the tuning runs named below, beside the
rule's constants), which is what makes it an instrument of the LR rather than of
the model: the update ratio's "1e-3 is healthy" depends on the model's weight scale, this does
not. Three forward passes under ``torch.no_grad`` per probe; the weights are restored bit for
bit, the random state is forked (each evaluation draws the same dropout masks) and, when the
model is known, its buffers (BatchNorm's running statistics) are restored.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from lrlab.core.diagnostics import Finding
from lrlab.instruments import words

__all__ = ["PROBE_LOW", "PROBE_SEED", "PROBE_SETTLED", "PROBE_WINDOW", "ProbeJudge", "StepProbe", "one_update_further",
           "optimal_multiple", "quietly"]  # fmt: skip

PROBE_SEED = 0  # the random state every evaluation starts from (the same dropout masks)

# The rule (ProbeJudge): the LR too small where the median of the last PROBE_WINDOW
# judged probes, each scaled to the peak LR (times the LR's share of its peak: the multiple goes as about
# 1/LR), is PROBE_LOW or more. A probe is judged from step PROBE_SETTLED on, while the LR is at least
# half its peak and not rising (a warmup's or a decay's small steps are meant). Set on tuning runs of
# tasks the fault benchmark does not use (seeds 1000, 1001; every 10 steps; the raw median over the
# steps after warmup up to 60% of the run; a probe batch of 256): digits-linear (SGD momentum 0.9, 180
# steps, warmup 20 then cosine; best final validation loss at LR 1) at 0.01, 0.03, 0.1, 0.3, 1: medians
# 74, 18, 3.8, 1.2, 0.2 (with a probe batch of 32: -, 18.7, 4.1, 2.1, 0.4); chars-lstm (hidden 64, 200
# steps, warmup 30 then cosine), Adam at 1e-3, 3e-3, 0.01, 0.03, 0.1: 25, 8.4, 2.6, 0.9, 0.7 (best 0.03
# and 0.1, tied), SGD momentum at 0.3, 1, 3, 10: 4.9, 0.9, 0.7, 0.6 (best 3). At the best LRs the
# medians are 0.2 to 1.0, at a tenth of them 2.4 to 8.4: PROBE_LOW (a step twice as long would still go
# downhill) sits between. The rule as written (settled, scaled, a batch of the run's size) on the same
# runs: no finding at any best LR; at a tenth of it 7 of 8 runs (digits-linear 0.1: 2/2; chars-lstm Adam
# 0.003 and 0.01: 2/2 and 1/2; SGD 0.3: 2/2), at a third 2 of 6. The settling and the scaling were added
# after the README's study (its own runs, not the benchmark's) showed the early steps of a fresh start
# and a cosine's second half read as too small.
PROBE_LOW = 2.0
PROBE_SETTLED = 50  # optimizer steps before a probe is judged (as the update ratio's settled thresholds)
PROBE_WINDOW = 5


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


def quietly(loss_fn: Callable[[], Any]) -> Any:
    """``loss_fn()`` without gradients, from the probe's own random state: each evaluation
    draws the same dropout masks, and the caller's random stream is left as it was."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(PROBE_SEED)
        return loss_fn()


def one_update_further(
    params: Sequence[torch.Tensor], back: Sequence[torch.Tensor], evaluate: Callable[[], Any]
) -> Any:
    """``evaluate()`` with every tensor of ``params`` moved one more update on (``back`` holds
    each one's weights before the step minus after it); the weights restored bit for bit."""
    with torch.no_grad():
        after = [p.detach().clone() for p in params]
        for param, step_back, new in zip(params, back, after):
            param.copy_(new - step_back)
    try:
        return evaluate()
    finally:
        with torch.no_grad():
            for param, new in zip(params, after):
                param.copy_(new)  # as the step left it


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
            back = torch._foreach_sub(before, [p.detach() for p in params])
        f2 = one_update_further(params, back, self._loss)
        return optimal_multiple(self._f0, f1, f2), self._f0, f1, f2

    def _loss(self) -> float:
        buffers = [b.detach().clone() for b in self.model.buffers()] if self.model is not None else []
        try:
            value = quietly(self.loss_fn)
            return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
        finally:
            if self.model is not None:
                with torch.no_grad():
                    for buffer, saved in zip(self.model.buffers(), buffers):
                        buffer.copy_(saved)


class ProbeJudge:
    """The rule on a run's probes: the LR too small where the median of the last
    ``PROBE_WINDOW`` judged multiples, each scaled to the peak LR, is ``PROBE_LOW`` or more."""

    def __init__(self, every: int) -> None:
        self.every = every
        self._recent: deque[float] = deque(maxlen=PROBE_WINDOW)
        self._last_lr: float | None = None

    def gate(self, count: int, lr_now: float, lr_peak: float) -> tuple[bool, float]:
        """Whether the probe of optimizer step ``count`` is judged (past the first
        ``PROBE_SETTLED`` steps, where a fresh start's loss runs nearly straight along any
        update; the LR at least half its peak and not rising since the last probe: a warmup's or
        a decay's small steps are meant), and the LR's share of its peak, by which the multiple
        is scaled to the peak LR's (the multiple goes as about 1/LR)."""
        last, self._last_lr = self._last_lr, lr_now
        rising = last is None or lr_now > last * (1.0 + 1e-6)
        scale = lr_now / lr_peak if lr_peak > 0 else 1.0
        return count >= PROBE_SETTLED and not rising and lr_now >= 0.5 * lr_peak > 0, scale

    def judge(self, step: int, multiple: float, judged: bool, scale: float) -> Finding | None:
        """The finding this probe completes, if any (the caller keeps it to one per run)."""
        if not judged:
            return None
        self._recent.append(multiple * scale)  # what the peak LR would read
        if len(self._recent) < PROBE_WINDOW:
            return None
        median = float(np.median(list(self._recent)))
        return words.probe_finding(step, median, PROBE_WINDOW, self.every) if median >= PROBE_LOW else None
