"""The gradient norm of the gradients an optimizer last stepped with, for ``Run.log``.

The norm is taken inside ``optimizer.step()`` (a step pre-hook; a post-hook for a closure,
whose backward runs inside the step), just before the update, while the gradients are still
in the CPU's cache; when ``log`` comes before the step, or the gradients changed since, it is
the norm of ``.grad`` at the time of the call.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch

__all__ = ["StepNorms"]


class StepNorms:
    """Per-tensor gradient norms of an optimizer's last step (see the module doc)."""

    def __init__(self) -> None:
        self.optimizer: torch.optim.Optimizer | None = None
        self.params: list[torch.Tensor] = []
        self._hooks: list[Any] = []
        self._taken: tuple[Any, list[tuple[Any, int]]] | None = None
        self._wanted = True  # a log() since the last step: the next step's norms are wanted
        self._closure_step = False

    def attach(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        self.params = [p for g in optimizer.param_groups for p in g["params"]]

    def read(self) -> Any:
        """The per-tensor gradient norms of the last optimizer step when the gradients are
        still the ones it stepped with (or were let go since: ``zero_grad()``), else now."""
        if not self._hooks:
            self._watch()
        taken, self._taken = self._taken, None
        self._wanted = True
        if taken is not None:
            norms, seen = taken
            if self._same_grads(seen):
                return norms
            self.stop()  # log() comes before the step (or between micro-batches): read it here
        return self.now()

    def now(self) -> Any:
        grads = [p.grad for p in self.params if p.grad is not None]
        return tuple(torch._foreach_norm(grads)) if grads else 0.0

    def _watch(self) -> None:
        if self.optimizer is None:
            return
        self._hooks = [self.optimizer.register_step_pre_hook(self._before_step),
                       self.optimizer.register_step_post_hook(self._after_step)]  # fmt: skip

    def stop(self) -> None:
        """Remove the hooks (a later :meth:`read` puts them back)."""
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        self._taken = None

    def _before_step(self, optimizer: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        # the gradients, just written by backward (and any clipping), are read before the update
        # evicts them from the cache; with a closure they are computed inside step: read after
        self._closure_step = (len(args) > 1 and args[1] is not None) or kwargs.get("closure") is not None
        if not self._closure_step:
            self._take_norms()

    def _after_step(self, optimizer: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self._closure_step:
            self._closure_step = False
            self._take_norms()

    def _take_norms(self) -> None:
        if not self._wanted:  # no log() since the last step: steps not logged cost nothing
            self._taken = None
            return
        self._wanted = False
        grads = [p.grad for p in self.params]
        seen = [(None, 0) if g is None else (weakref.ref(g), g._version) for g in grads]
        present = [g for g in grads if g is not None]
        self._taken = (tuple(torch._foreach_norm(present)) if present else 0.0, seen)

    def _same_grads(self, seen: list[tuple[Any, int]]) -> bool:
        for param, (ref, version) in zip(self.params, seen):
            grad = param.grad
            if grad is not None and (ref is None or ref() is not grad or grad._version != version):
                return False
        return True
