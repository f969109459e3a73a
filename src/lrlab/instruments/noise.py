"""The gradient noise scale ``B_simple = tr(Sigma) / |G|^2`` and the critical batch size it
implies (McCandlish et al., "An empirical model of large-batch training", arXiv 1812.06162).

From the squared gradient norms at two batch sizes, ``|G_small|^2`` (a micro-batch of
``b_small`` examples) and ``|G_big|^2`` (the accumulated gradient of ``b_big``), the paper's
unbiased estimators (its appendix A) are

    |G|^2     ~ (b_big |G_big|^2 - b_small |G_small|^2) / (b_big - b_small)
    tr(Sigma) ~ (|G_small|^2 - |G_big|^2) / (1 / b_small - 1 / b_big)

each noisy on one step, so their exponential moving averages are divided, not the ratio of
each step averaged. Below the critical batch size ``B_crit ~ B_simple`` a larger batch buys
almost proportionally fewer steps; above it, almost nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["MicroBatchNorms", "NoiseScale", "noise_estimates"]


def noise_estimates(small_sq: float, big_sq: float, b_small: float, b_big: float) -> tuple[float, float]:
    """``(|G|^2, tr(Sigma))`` estimated from one pair of squared gradient norms.

    >>> noise_estimates(small_sq=5.0, big_sq=2.0, b_small=1, b_big=4)
    (1.0, 4.0)
    """
    if not b_big > b_small > 0:
        raise ValueError(
            f"the two batch sizes must satisfy b_big > b_small > 0, got b_small={b_small}, b_big={b_big}"
        )
    grad_sq = (b_big * big_sq - b_small * small_sq) / (b_big - b_small)
    trace = (small_sq - big_sq) / (1.0 / b_small - 1.0 / b_big)
    return grad_sq, trace


class NoiseScale:
    """Running ``B_simple`` from pairs of squared norms: an exponential moving average (weight
    ``1 - decay`` for the newest pair, bias-corrected) of each estimator, then their ratio."""

    def __init__(self, decay: float = 0.95) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay!r}")
        self.decay = decay
        self._grad_sq = self._trace = 0.0
        self._weight = 0.0

    def observe(self, small_sq: float, big_sq: float, b_small: float, b_big: float) -> float:
        """Add one pair; return the current ``B_simple`` (NaN while ``|G|^2`` is not positive)."""
        grad_sq, trace = noise_estimates(small_sq, big_sq, b_small, b_big)
        if not (math.isfinite(grad_sq) and math.isfinite(trace)):
            return self.value
        keep = self.decay
        self._grad_sq = keep * self._grad_sq + (1 - keep) * grad_sq
        self._trace = keep * self._trace + (1 - keep) * trace
        self._weight = keep * self._weight + (1 - keep)
        return self.value

    @property
    def value(self) -> float:
        if self._weight == 0.0 or self._grad_sq <= 0.0:
            return math.nan
        return self._trace / self._grad_sq


class MicroBatchNorms:
    """The two squared norms of gradient accumulation: call :meth:`after_backward` after each
    micro-batch's backward (each micro-batch's loss divided by their number ``k``, as usual),
    then :meth:`pair` before ``optimizer.step()``: ``(|G_small|^2, |G_big|^2)``, the mean
    squared norm of a micro-batch's own gradient and that of their mean."""

    def __init__(self, params: Sequence[torch.Tensor]) -> None:
        self.params = [p for p in params if p.requires_grad]
        self._previous: list[torch.Tensor] | None = None
        self._small: list[float] = []

    def after_backward(self) -> None:
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        now = [g.detach().double() for g in grads]
        own = now if self._previous is None else torch._foreach_sub(now, self._previous)
        self._small.append(float(sum(float(t.pow(2).sum()) for t in own)))
        self._previous = [t.clone() for t in now]

    def pair(self) -> tuple[float, float, int]:
        """``(|G_small|^2, |G_big|^2, k)``; the state is reset for the next step."""
        k = len(self._small)
        if k < 2 or self._previous is None:
            raise ValueError(
                "the noise scale needs at least two micro-batches per step (after_backward per micro-batch)"
            )
        big = float(sum(float(t.pow(2).sum()) for t in self._previous))
        small = sum(self._small) / k * k * k  # each micro gradient was scaled by 1/k
        self._previous, self._small = None, []
        return small, big, k
