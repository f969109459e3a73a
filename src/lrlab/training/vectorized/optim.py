"""SGD, Adam and AdamW written once, functionally, on stacked parameters.

A stacked parameter has a leading member axis of size K: member ``k`` of a vectorised
group owns ``param[k]``. Every step each member gets its own learning rate and momentum
(SGD's ``momentum`` or Adam's ``beta1``), as ``(K,)`` tensors, which ``torch.optim``
cannot take (its hyperparameters are per param group, not per slice of a tensor).

The update rules are torch's single-tensor ones (``torch/optim/sgd.py``,
``torch/optim/adam.py``), member by member, so a member's trajectory is the one
``torch.optim`` would give it on the same gradients (equal to float tolerance; tested).
A member outside ``active`` keeps its parameters unchanged (``torch.where``, so a NaN
gradient of a frozen member cannot leak into its weights or into another member's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from lrlab.optim.grammar import parse_optimizer

__all__ = ["VECTORIZED_OPTIMIZERS", "StackedOptimizer", "stacked_optimizer", "supports"]

VECTORIZED_OPTIMIZERS = ("sgd", "adam", "adamw")
# Keyword arguments that only choose torch's implementation, not the numbers.
_IMPLEMENTATION = {"foreach", "fused", "differentiable", "capturable"}
_ALLOWED = {
    "sgd": {"momentum", "dampening", "weight_decay", "nesterov", "maximize"} | _IMPLEMENTATION,
    "adam": {"betas", "eps", "weight_decay", "amsgrad", "maximize", "decoupled_weight_decay"}
    | _IMPLEMENTATION,
    "adamw": {"betas", "eps", "weight_decay", "amsgrad", "maximize"} | _IMPLEMENTATION,
}


def supports(spec: str) -> str | None:
    """``None`` when the optimizer spec can be trained vectorised, else the reason."""
    try:
        key, kwargs = parse_optimizer(spec)
    except ValueError as exc:
        return str(exc)
    if key not in VECTORIZED_OPTIMIZERS:
        return f"optimizer {key!r} is not vectorised (vectorised: {', '.join(VECTORIZED_OPTIMIZERS)})"
    unknown = sorted(set(kwargs) - _ALLOWED[key])
    if unknown:
        return f"{key}() argument {unknown[0]!r} is not vectorised"
    if kwargs.get("maximize"):
        return "maximize=true is not vectorised"
    return None


def _per_member(values: Tensor, like: Tensor) -> Tensor:
    """``(K,)`` -> broadcastable against ``like`` of shape ``(K, ...)``, in its dtype."""
    return values.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


@dataclass
class StackedOptimizer:
    """One optimizer for K members' stacked parameters.

    ``kind`` is ``"sgd"``, ``"adam"`` or ``"adamw"`` (``adam(decoupled_weight_decay=true)``
    is AdamW). ``momentum`` is the members' default momentum (SGD) or beta1 (Adam), used
    when :meth:`step` gets none. Build one with :func:`stacked_optimizer`.
    """

    kind: str
    params: list[Tensor]
    momentum: float
    dampening: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False
    beta2: float = 0.999
    eps: float = 1e-8
    amsgrad: bool = False
    decoupled: bool = False

    def __post_init__(self) -> None:
        self.steps = 0
        self.state: list[dict[str, Tensor]] = [{} for _ in self.params]

    @torch.no_grad()
    def step(
        self,
        grads: list[Tensor],
        lr: Tensor,
        momentum: Tensor | None = None,
        active: Tensor | None = None,
    ) -> None:
        """Update every member: ``lr`` and ``momentum`` are ``(K,)`` tensors (float64 is
        best: torch's scalar hyperparameters are Python floats); ``active`` a ``(K,)`` bool
        mask of the members to update (default all)."""
        scheduled = momentum is not None
        if momentum is None:
            momentum = torch.full((lr.shape[0],), self.momentum, dtype=torch.float64, device=lr.device)
        # Updates are in place (no K-sized temporaries on the common path); with frozen
        # members, their old values are put back afterwards.
        masked = active is not None and not bool(active.all())
        self.steps += 1
        for index, (param, grad) in enumerate(zip(self.params, grads)):
            old = param.detach().clone() if masked else None
            if self.kind == "sgd":
                self._sgd(param, grad, self.state[index], lr, momentum, scheduled)
            else:
                self._adam(param, grad, self.state[index], lr, momentum)
            if old is not None:
                assert active is not None
                param.copy_(torch.where(_per_member(active, param).bool(), param, old))

    def _sgd(
        self, param: Tensor, grad: Tensor, state: dict[str, Tensor], lr: Tensor, mu: Tensor, scheduled: bool
    ) -> None:
        if self.weight_decay != 0:
            grad = grad.add(param, alpha=self.weight_decay)
        # With dampening 0, using the buffer when momentum is 0 gives torch's update exactly,
        # so one code path serves momentum schedules that pass through 0.
        if self.momentum != 0 or scheduled:
            buf = state.get("buf")
            if buf is None:
                buf = state["buf"] = grad.detach().clone()
            else:
                buf.mul_(_per_member(mu, buf)).add_(grad, alpha=1 - self.dampening)
            grad = grad + _per_member(mu, buf) * buf if self.nesterov else buf
        param.addcmul_(grad, _per_member(lr, param), value=-1)

    def _adam(self, param: Tensor, grad: Tensor, state: dict[str, Tensor], lr: Tensor, beta1: Tensor) -> None:
        if not state:
            state["exp_avg"] = torch.zeros_like(param)
            state["exp_avg_sq"] = torch.zeros_like(param)
            if self.amsgrad:
                state["max_exp_avg_sq"] = torch.zeros_like(param)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        if self.weight_decay != 0:
            if self.decoupled:
                param.mul_(_per_member(1 - lr * self.weight_decay, param))
            else:
                grad = grad.add(param, alpha=self.weight_decay)
        exp_avg.lerp_(grad, _per_member(1 - beta1, exp_avg))
        exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
        step = float(self.steps)
        bias_correction1 = 1 - beta1.double() ** step
        bias_correction2_sqrt = (1 - self.beta2**step) ** 0.5
        step_size = lr.double() / bias_correction1
        second = state["max_exp_avg_sq"] if self.amsgrad else exp_avg_sq
        if self.amsgrad:
            torch.maximum(second, exp_avg_sq, out=second)
        ratio = second.sqrt().div_(bias_correction2_sqrt).add_(self.eps)
        torch.div(exp_avg, ratio, out=ratio)
        param.addcmul_(ratio, _per_member(step_size, param), value=-1)

    def select(self, index: Tensor, params: list[Tensor]) -> None:
        """Keep the members ``index`` (after the caller dropped the others from ``params``)."""
        self.params = params
        self.state = [{k: v[index] for k, v in state.items()} for state in self.state]


def stacked_optimizer(spec: str, params: list[Tensor]) -> StackedOptimizer:
    """The stacked optimizer for an optimizer spec (``"sgd(momentum=0.9)"``, ``"adamw"``...).

    >>> opt = stacked_optimizer("sgd(momentum=0.9, nesterov=true)", [torch.zeros(4, 3)])
    >>> opt.kind, opt.momentum, opt.nesterov
    ('sgd', 0.9, True)
    """
    reason = supports(spec)
    if reason is not None:
        raise ValueError(f"optimizer {spec!r} cannot be vectorised: {reason}")
    key, kwargs = parse_optimizer(spec)
    options: dict[str, Any] = {}
    if key == "sgd":
        options["momentum"] = float(kwargs.get("momentum", 0.0))
        options["dampening"] = float(kwargs.get("dampening", 0.0))
        options["weight_decay"] = float(kwargs.get("weight_decay", 0.0))
        options["nesterov"] = bool(kwargs.get("nesterov", False))
        if options["nesterov"] and (options["momentum"] <= 0 or options["dampening"] != 0):
            raise ValueError(f"optimizer {spec!r}: nesterov needs momentum > 0 and dampening 0")
        return StackedOptimizer("sgd", params, **options)
    betas = tuple(kwargs.get("betas", (0.9, 0.999)))
    if len(betas) != 2:
        raise ValueError(f"optimizer {spec!r}: betas must be two numbers, got {betas!r}")
    decoupled = key == "adamw" or bool(kwargs.get("decoupled_weight_decay", False))
    return StackedOptimizer(
        "adam",
        params,
        momentum=float(betas[0]),
        beta2=float(betas[1]),
        eps=float(kwargs.get("eps", 1e-8)),
        weight_decay=float(kwargs.get("weight_decay", 0.01 if key == "adamw" else 0.0)),
        amsgrad=bool(kwargs.get("amsgrad", False)),
        decoupled=decoupled,
    )
