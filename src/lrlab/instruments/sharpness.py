"""Sharpness: the largest eigenvalue of the loss's Hessian (or of the preconditioned
Hessian ``P^-1 H`` for Adam), by power iteration on Hessian-vector products, against the
LR's stability threshold.

Gradient descent at learning rate ``lr`` is stable on a quadratic only while the sharpness
stays below ``2 / lr``; with heavy-ball momentum ``beta`` the bound is ``(2 + 2 beta) / lr``
(Cohen et al., "Gradient descent on neural networks typically occurs at the edge of
stability", arXiv 2103.00065). For Adam the quantity is the preconditioned sharpness, the
top eigenvalue of ``P^-1 H`` with ``P = diag(sqrt(v_hat) + eps)``, against
``(2 + 2 beta1) / ((1 - beta1) lr)``, 38 / lr at beta1 = 0.9 (Cohen et al., "Adaptive gradient
methods at the edge of stability", arXiv 2207.14484).

A Hessian-vector product is one double backward (``torch.autograd.grad`` of the gradient
with ``create_graph=True``); ``P^-1 H`` is similar to the symmetric ``P^-1/2 H P^-1/2``,
whose power iteration gives the same eigenvalue.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["Sharpness", "adam_preconditioner", "stability_limit", "top_eigenvalue"]


def _dot(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> torch.Tensor:
    return sum(((x.double() * y.double()).sum() for x, y in zip(a, b)), torch.zeros((), dtype=torch.float64))


def top_eigenvalue(
    loss_fn: Callable[[], torch.Tensor],
    params: Sequence[torch.Tensor],
    *,
    iters: int = 20,
    tol: float = 1e-3,
    precondition: Sequence[torch.Tensor] | None = None,
    seed: int = 0,
) -> float:
    """The top eigenvalue of the Hessian of ``loss_fn()`` in ``params`` (of ``P^-1 H`` with
    ``precondition`` the diagonal of ``P`` per tensor), by at most ``iters`` steps of power
    iteration, stopped when the vector is an eigenvector to ``tol`` (``||Hv - lambda v|| <=
    tol |lambda|``). Power iteration approaches the top eigenvalue from below: where the two
    largest are close it needs more ``iters`` (the instrument's ``sharpness_iters``).

    >>> w = torch.zeros(2, requires_grad=True)
    >>> round(top_eigenvalue(lambda: 3.0 * w[0] ** 2 + 0.5 * w[1] ** 2, [w]), 3)
    6.0
    """
    params = [p for p in params if p.requires_grad]
    loss = loss_fn()
    grads = torch.autograd.grad(loss, params, create_graph=True)
    scale = None if precondition is None else [d.rsqrt() for d in precondition]
    gen = torch.Generator().manual_seed(seed)
    vec = [torch.randn(p.shape, generator=gen, dtype=torch.float32).to(p) for p in params]
    norm = _dot(vec, vec).sqrt()
    vec = [v / norm.to(v.dtype) for v in vec]
    estimate = math.nan
    for _ in range(iters):
        probe = vec if scale is None else [v * s for v, s in zip(vec, scale)]
        hvp = torch.autograd.grad(grads, params, grad_outputs=probe, retain_graph=True)
        out = [h.detach() for h in hvp] if scale is None else [h.detach() * s for h, s in zip(hvp, scale)]
        estimate = float(_dot(vec, out))  # the Rayleigh quotient
        size = _dot(out, out).sqrt()
        if float(size) == 0.0 or not math.isfinite(estimate):
            return estimate
        residual = _dot(*[[o - estimate * v for o, v in zip(out, vec)]] * 2).sqrt()
        vec = [o / size.to(o.dtype) for o in out]
        if float(residual) <= tol * abs(estimate):  # an eigenvector: ||Hv - lambda v|| small
            return estimate
    return estimate


def adam_preconditioner(
    optimizer: torch.optim.Optimizer, params: Sequence[torch.Tensor]
) -> list[torch.Tensor] | None:
    """Adam's diagonal preconditioner ``sqrt(v / (1 - beta2^t)) + eps`` per tensor, from the
    optimizer's state (None before its first step or for an optimizer without ``exp_avg_sq``)."""
    diag = []
    for param in params:
        state = optimizer.state.get(param, {})
        group = next((g for g in optimizer.param_groups if any(p is param for p in g["params"])), None)
        if "exp_avg_sq" not in state or group is None:
            return None
        step = float(state.get("step", 1))
        beta2 = float(group["betas"][1])
        eps = float(group.get("eps", 1e-8))
        diag.append((state["exp_avg_sq"] / (1.0 - beta2**step)).sqrt() + eps)
    return diag


def stability_limit(lr: float, *, momentum: float | None = None, adam_beta1: float | None = None) -> float:
    """The sharpness above which a step of this LR is unstable on a quadratic: ``2 / lr``;
    ``(2 + 2 momentum) / lr`` with heavy-ball momentum; ``(2 + 2 beta1) / ((1 - beta1) lr)``
    for the preconditioned sharpness of Adam (38 / lr at beta1 = 0.9).

    >>> [round(stability_limit(0.1, **kw), 6) for kw in ({}, {"momentum": 0.9}, {"adam_beta1": 0.9})]
    [20.0, 38.0, 380.0]
    """
    if lr <= 0:
        return math.inf
    if adam_beta1 is not None:
        return (2.0 + 2.0 * adam_beta1) / ((1.0 - adam_beta1) * lr)
    return (2.0 + 2.0 * (momentum or 0.0)) / lr


@dataclass
class Sharpness:
    """Every ``every`` optimizer steps, the sharpness of ``loss_fn`` (a closure that computes
    the loss on a fixed batch, with its graph) and the stability limit of the LR in effect.

    Adam-type optimizers (an ``exp_avg_sq`` state and ``betas``) get the preconditioned form."""

    loss_fn: Callable[[], torch.Tensor]
    every: int = 100
    iters: int = 20

    def __post_init__(self) -> None:
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ValueError(
                f"sharpness every must be a whole number >= 1 (steps between readings), got {self.every!r}"
            )
        if not callable(self.loss_fn):
            raise TypeError(
                f"sharpness needs a loss closure (a callable returning the loss), got {self.loss_fn!r}"
            )

    def due(self, step: int) -> bool:
        return step % self.every == 0

    def measure(self, optimizer: torch.optim.Optimizer) -> tuple[float, float, bool]:
        """``(sharpness, limit, preconditioned)`` for the optimizer as it stands."""
        group: dict[str, Any] = optimizer.param_groups[0]
        params = [p for g in optimizer.param_groups for p in g["params"] if p.requires_grad]
        lr = float(group["lr"])
        precondition = adam_preconditioner(optimizer, params) if "betas" in group else None
        value = top_eigenvalue(self.loss_fn, params, iters=self.iters, precondition=precondition)
        if precondition is not None:
            return value, stability_limit(lr, adam_beta1=float(group["betas"][0])), True
        momentum = float(group.get("momentum") or 0.0)
        return value, stability_limit(lr, momentum=momentum), False
