"""Delta-bar-delta: a separate adaptive learning rate for every weight.

Jacobs (1988), "Increased rates of convergence through learning rate adaptation",
Neural Networks 1(4). Each weight ``w_i`` has a local gain ``g_i``; the step is the
global learning rate times that gain times the gradient::

    delta_i(t)     = dE/dw_i                                  (this step's gradient)
    g_i(t)         = g_i(t-1) + kappa           if bar_i(t-1) * delta_i(t) > 0
                     g_i(t-1) * (1 - phi)       if bar_i(t-1) * delta_i(t) < 0
                     g_i(t-1)                   otherwise,  clipped to [gain_min, gain_max]
    bar_i(t)       = (1 - theta) * delta_i(t) + theta * bar_i(t-1)
    w_i(t+1)       = w_i(t) - lr * g_i(t) * delta_i(t)       (+ optional momentum)

Gains grow additively while the gradient keeps the sign of its recent average and
shrink multiplicatively when it flips, as in Hinton's "local gains" (Coursera lecture
6b, +0.05 / x0.95). Jacobs adapts the rate itself; writing it as ``lr * gain`` keeps the
global rate free for an lrlab schedule (``lrlab.torch.LRScheduler``). Use full batches
or large mini-batches: the sign test reads sampling noise as a flip.

Example:
    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([4.0]))
    >>> opt = DeltaBarDelta([w], lr=0.1)
    >>> for _ in range(3):
    ...     opt.zero_grad(); (w**2).sum().backward(); opt.step()
    >>> [round(float(g), 2) for g in opt.state[w]["gain"]]  # grew twice by kappa
    [1.1]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from lrlab.optim._base import PerParameterOptimizer

__all__ = ["DeltaBarDelta"]


class DeltaBarDelta(PerParameterOptimizer):
    """Jacobs' delta-bar-delta as a ``torch.optim.Optimizer``.

    Args:
        params: parameters or param-group dicts.
        lr: global learning rate (a schedule may drive it).
        kappa: additive gain increase while the gradient sign agrees with its average.
        phi: fraction by which a gain shrinks when the sign flips (gain *= 1 - phi).
        theta: weight of the past in the exponential average of gradients (bar delta).
        momentum: heavy-ball momentum on the gained step (0 disables it).
        initial_gain: every gain's starting value.
        gain_min, gain_max: the range the gains are kept in.
        weight_decay: L2 penalty added to the gradient.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-2,
        kappa: float = 0.05,
        phi: float = 0.05,
        theta: float = 0.7,
        momentum: float = 0.0,
        initial_gain: float = 1.0,
        gain_min: float = 0.01,
        gain_max: float = 100.0,
        weight_decay: float = 0.0,
    ) -> None:
        _check("lr", lr, low=0.0)
        _check("kappa", kappa, low=0.0)
        _check("phi", phi, low=0.0, high=1.0, high_open=True)
        _check("theta", theta, low=0.0, high=1.0, high_open=True)
        _check("momentum", momentum, low=0.0, high=1.0, high_open=True)
        _check("weight_decay", weight_decay, low=0.0)
        _check("gain_min", gain_min, low=0.0)
        if not gain_min <= initial_gain <= gain_max:
            raise ValueError(
                f"need gain_min <= initial_gain <= gain_max, got {gain_min}, {initial_gain}, {gain_max}"
            )
        defaults = {
            "lr": lr,
            "kappa": kappa,
            "phi": phi,
            "theta": theta,
            "momentum": momentum,
            "initial_gain": initial_gain,
            "gain_min": gain_min,
            "gain_max": gain_max,
            "weight_decay": weight_decay,
        }
        super().__init__(params, defaults)

    def _update(self, param: torch.Tensor, group: dict[str, Any]) -> None:
        grad = param.grad
        if grad.is_sparse:
            raise RuntimeError("DeltaBarDelta does not support sparse gradients")
        if group["weight_decay"]:
            grad = grad.add(param, alpha=group["weight_decay"])
        state = self.state[param]
        if not state:
            state["step"] = torch.tensor(0.0)
            state["gain"] = torch.full_like(param, group["initial_gain"], memory_format=torch.preserve_format)
            state["bar"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            if group["momentum"]:
                state["momentum_buffer"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        gain, bar = state["gain"], state["bar"]
        agreement = bar * grad
        grown = gain + group["kappa"]
        shrunk = gain * (1.0 - group["phi"])
        gain.copy_(torch.where(agreement > 0, grown, torch.where(agreement < 0, shrunk, gain)))
        gain.clamp_(group["gain_min"], group["gain_max"])
        bar.mul_(group["theta"]).add_(grad, alpha=1.0 - group["theta"])
        update = grad * gain
        if group["momentum"]:
            buffer = state.setdefault("momentum_buffer", torch.zeros_like(param))
            buffer.mul_(group["momentum"]).add_(update)
            update = buffer
        param.add_(update, alpha=-group["lr"])
        state["step"] += 1


def _check(
    name: str, value: float, *, low: float, high: float | None = None, high_open: bool = False
) -> None:
    ok = value >= low and (high is None or (value < high if high_open else value <= high))
    if not ok:
        allowed = f">= {low}" if high is None else f"in [{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
