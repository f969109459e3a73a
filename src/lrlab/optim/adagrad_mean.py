"""AdaGrad as the lecture writes it: divide by the root *mean* square of past gradients.

Hung-yi Lee's ML course (the article "Adaptive Learning Rate") defines AdaGrad with
``sigma_t = sqrt(mean(g_0^2 .. g_t^2))``::

    w <- w - lr * g_t / (sigma_t + eps)

``torch.optim.Adagrad`` divides by the root of the *sum* instead, which is this rule with
the rate ``lr / sqrt(t + 1)``. The difference matters on a long flat valley: the mean
shrinks when recent gradients are small (the sum never does), so the effective rate grows
and the path can burst sideways, the "explosion" of the lecture's picture.

Example:
    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([3.0]))
    >>> opt = AdaGradMean([w], lr=0.5)
    >>> opt.zero_grad(); (w**2).sum().backward(); opt.step()
    >>> w.item()  # the first step is lr * g / |g|
    2.5
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from lrlab.optim._base import PerParameterOptimizer

__all__ = ["AdaGradMean"]


class AdaGradMean(PerParameterOptimizer):
    """AdaGrad with the root-mean-square denominator of the lecture (see the module doc).

    Args:
        params: parameters or param-group dicts.
        lr: learning rate (a schedule may drive it).
        eps: added to the denominator.
    """

    def __init__(
        self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]], lr: float = 1e-2, eps: float = 1e-10
    ) -> None:
        if not lr >= 0:
            raise ValueError(f"lr must be >= 0, got {lr!r}")
        if not eps >= 0:
            raise ValueError(f"eps must be >= 0, got {eps!r}")
        super().__init__(params, {"lr": lr, "eps": eps})

    def _update(self, param: torch.Tensor, group: dict[str, Any]) -> None:
        state = self.state[param]
        if not state:
            state["step"] = torch.tensor(0.0)
            state["sum"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        state["step"] += 1
        state["sum"].addcmul_(param.grad, param.grad)
        sigma = (state["sum"] / state["step"]).sqrt_().add_(group["eps"])
        param.addcdiv_(param.grad, sigma, value=-group["lr"])
