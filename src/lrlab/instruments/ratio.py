"""The update-to-weight ratio ``||w_after - w_before|| / ||w_before||`` of each param group
(or each tensor), measured around ``optimizer.step()``.

About 1e-3 per step is the usual healthy value for networks trained with Adam or SGD with
momentum (Karpathy's rule of thumb; the step moves a weight by a thousandth of its size):
ten times that is an LR too large for that group, a hundredth of it an LR too small. The
ratio reads what the optimizer did, so it sees an LR multiplier gone wrong, a readout layer
at ten times its intended LR or Adam's oversized first steps without warmup, whatever the
schedule says.

It is taken by a step pre-hook (a copy of the weights) and a post-hook (one fused
``_foreach`` difference and two fused norms); the values stay tensors on the device and are
read in batches by :meth:`UpdateRatio.take`.
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
    diffs = torch._foreach_sub(after, before)
    delta = torch.stack(torch._foreach_norm(diffs)).double().pow(2)
    weight = torch.stack(torch._foreach_norm(before)).double().pow(2)
    index = torch.as_tensor(groups, device=delta.device)
    delta_sum = torch.zeros(count, dtype=torch.float64, device=delta.device).index_add_(0, index, delta)
    weight_sum = torch.zeros(count, dtype=torch.float64, device=delta.device).index_add_(0, index, weight)
    return (delta_sum / weight_sum).sqrt()


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
        self._before: list[torch.Tensor] | None = None
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
        self._hooks, self._before = [], None

    def _snapshot_params(self) -> None:
        assert self.optimizer is not None
        groups = self.optimizer.param_groups
        self._params = [p for g in groups for p in g["params"] if p.requires_grad]
        self._groups = [i for i, g in enumerate(groups) for p in g["params"] if p.requires_grad]
        self._count = len(groups)

    def _pre(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self.step % self.every:
            self._before = None
            return
        self._snapshot_params()  # groups may change (gradual unfreezing)
        with torch.no_grad():
            self._before = list(torch._foreach_mul([p.detach() for p in self._params], 1.0))

    def _post(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        before, self._before = self._before, None
        step, self.step = self.step, self.step + 1
        if before is None:
            return
        with torch.no_grad():
            after = [p.detach() for p in self._params]
            values = update_ratios(before, after, self._groups, self._count)
            if self.per_tensor:
                each = update_ratios(before, after, list(range(len(after))), len(after))
                values = torch.cat([values, each])
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
