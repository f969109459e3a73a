"""The update-to-weight ratio ``||w_after - w_before|| / ||w_before||`` of each param group
(or each tensor), measured around ``optimizer.step()``.

About 1e-3 per step is the usual healthy value for networks trained with Adam or SGD with
momentum (Karpathy's rule of thumb; the step moves a weight by a thousandth of its size):
ten times that is an LR too large for that group, a hundredth of it an LR too small. The
ratio reads what the optimizer did, so it sees an LR multiplier gone wrong, a readout layer
at ten times its intended LR or Adam's oversized first steps without warmup, whatever the
schedule says.

It is taken by a step pre-hook (the weights copied into buffers kept from step to step, and
their fused norms) and a post-hook (the difference taken in place in those buffers, and its
fused norms); the values stay tensors on the device and are read in batches by
:meth:`UpdateRatio.take`. A tensor of more than 16,384 elements is read at an even stride
(about 4,096 of its elements, its sums of squares scaled back up), which bounds the cost of
a step's reading whatever the model's size; smaller tensors are read whole, exactly.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["UpdateRatio", "update_ratios"]


def update_ratios(
    before: list[torch.Tensor], after: list[torch.Tensor], groups: list[int], count: int
) -> torch.Tensor:
    """Per group ``||after - before|| / ||before||`` for tensors ``before``/``after`` whose
    group index is ``groups[i]`` (``count`` groups): a float64 tensor of ``count`` values
    (NaN for a group with no tensor, or all its weights zero)."""
    if not before:
        return torch.full((count,), float("nan"), dtype=torch.float64)
    weight = torch.stack(torch._foreach_norm(before))
    delta = torch.stack(torch._foreach_norm(torch._foreach_sub(after, before)))
    return _per_group(delta, weight, groups, count)


def _per_group(
    delta: torch.Tensor,
    weight: torch.Tensor,
    groups: list[int],
    count: int,
    scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-tensor norms of the step and of the weights summed (in squares, each times its
    ``scale``: the inverse of the share of a tensor read) per group, divided."""
    index = torch.as_tensor(groups, device=delta.device)
    zeros = torch.zeros(count, dtype=torch.float64, device=delta.device)
    delta_sq, weight_sq = delta.double().pow(2), weight.double().pow(2)
    if scale is not None:
        delta_sq, weight_sq = delta_sq * scale, weight_sq * scale
    delta_sum = zeros.index_add(0, index, delta_sq)
    weight_sum = zeros.index_add(0, index, weight_sq)
    ratio = (delta_sum / weight_sum).sqrt()  # NaN for a group with nothing to move (frozen, empty)
    blown = ~(torch.isfinite(delta_sum) & torch.isfinite(weight_sum))  # weights or step gone inf/NaN
    return torch.where(blown, torch.full_like(ratio, float("inf")), ratio)


SAMPLE_ABOVE = 16_384  # elements: a larger tensor is read at an even stride ...
SAMPLE_SIZE = 4_096  # ... of about this many elements


def _sampled(param: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The elements of ``param`` the ratio reads: all of a small or non-contiguous tensor, an
    even stride of about ``SAMPLE_SIZE`` of a large one (its sum of squares times the stride
    estimates the whole one's); and the stride."""
    if param.numel() <= SAMPLE_ABOVE or not param.is_contiguous():
        return param, 1
    stride = param.numel() // SAMPLE_SIZE
    return param.view(-1)[::stride], stride


class UpdateRatio:
    """Hooks on an optimizer that measure every ``every``-th step's update ratio per param
    group (``per_tensor``: per parameter tensor too, for per-layer readings).

    :meth:`take` returns the steps measured since the last call and a
    ``(steps, groups)`` float64 array; the step is the optimizer's own count of steps,
    from ``start_step`` (the schedule's step index of the first one)."""

    def __init__(self, every: int = 1, *, per_tensor: bool = False, start_step: int = 0) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a whole number >= 1 (measure every n-th step), got {every!r}")
        self.every, self.per_tensor = every, per_tensor
        self.step = start_step  # the schedule index of the next optimizer step
        self.optimizer: torch.optim.Optimizer | None = None
        self._hooks: list[Any] = []
        self._weight: torch.Tensor | None = None  # per-tensor weight norms before the step
        self._buffers: list[torch.Tensor] = []  # the weights before the step, reused
        self._scale = torch.ones(0, dtype=torch.float64)  # per tensor: the inverse of the share read
        self._params: list[torch.Tensor] = []
        self._groups: list[int] = []
        self._count = 0
        self._pending: list[tuple[int, torch.Tensor]] = []

    @property
    def columns(self) -> int:
        """Values per measured step: one per group, then one per tensor with ``per_tensor``."""
        return self._count + (len(self._params) if self.per_tensor else 0)

    @property
    def attached(self) -> bool:
        return bool(self._hooks)

    def attach(self, optimizer: torch.optim.Optimizer) -> None:
        self.detach()
        self.optimizer = optimizer
        self._hooks = [
            optimizer.register_step_pre_hook(self._pre),
            optimizer.register_step_post_hook(self._post),
        ]

    def detach(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks, self._weight, self._buffers = [], None, []

    def _snapshot_params(self) -> None:
        assert self.optimizer is not None
        groups = self.optimizer.param_groups
        self._params = [p for g in groups for p in g["params"] if p.requires_grad]
        self._groups = [i for i, g in enumerate(groups) for p in g["params"] if p.requires_grad]
        self._count = len(groups)

    def _pre(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self.step % self.every:
            self._weight = None
            return
        self._snapshot_params()  # groups may change (gradual unfreezing)
        with torch.no_grad():
            read = [_sampled(p.detach()) for p in self._params]
            params = [r for r, _stride in read]
            if [b.shape for b in self._buffers] != [p.shape for p in params]:
                self._buffers = [torch.empty_like(p) for p in params]  # kept: no large allocation per step
                self._scale = torch.tensor([float(s) for _r, s in read], dtype=torch.float64)
            torch._foreach_copy_(self._buffers, params)
            self._weight = torch.stack(torch._foreach_norm(params))

    def _post(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        weight, self._weight = self._weight, None
        step, self.step = self.step, self.step + 1
        if weight is None:
            return
        with torch.no_grad():
            after = [_sampled(p.detach())[0] for p in self._params]
            torch._foreach_sub_(self._buffers, after)  # before - after, in place
            delta = torch.stack(torch._foreach_norm(self._buffers))
            scale = self._scale.to(delta.device)
            values = _per_group(delta, weight, self._groups, self._count, scale)
            if self.per_tensor:
                each = list(range(len(self._params)))
                values = torch.cat([values, _per_group(delta, weight, each, len(each), scale)])
        self._pending.append((step, values))

    def take(self) -> tuple[list[int], list[list[float]]]:
        """The steps measured since the last call and their values (copied to the host at once)."""
        pending, self._pending = self._pending, []
        if not pending:
            return [], []
        width = max(v.numel() for _s, v in pending)
        rows = [
            torch.nn.functional.pad(v.cpu(), (0, width - v.numel()), value=float("nan")) for _s, v in pending
        ]
        return [s for s, _v in pending], torch.stack(rows).tolist()
