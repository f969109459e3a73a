"""Snapshot and restore everything a range test touches, in memory, bit for bit.

A range test trains the caller's own model and optimizer, so afterwards it must put back
the parameters, buffers, gradients, train/eval flags, the optimizer's state and
hyperparameters, the global random generators and any generator the loader owns (a
shuffling loader advances it). Copies are ``copy.deepcopy`` of state dicts: nothing is
written to disk (unlike fastai, which saves the model to a file).
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

# Attributes an optimizer step sets on the optimizer itself: torch's LRScheduler wraps
# ``optimizer.step`` to set ``_opt_called`` (older torch counted ``_step_count``).
_FLAG_NAMES = ("_opt_called", "_step_count")


def _loader_generators(loader: Iterable[Any]) -> list[torch.Generator]:
    """Generators a DataLoader advances while it is iterated: its own and those of its
    samplers, however nested (a BatchSampler over a RandomSampler, ...)."""
    found: list[torch.Generator] = []
    pending: list[Any] = [loader]
    seen: set[int] = set()
    while pending:
        obj = pending.pop()
        if obj is None or id(obj) in seen:
            continue
        seen.add(id(obj))
        gen = getattr(obj, "generator", None)
        if isinstance(gen, torch.Generator) and all(gen is not g for g in found):
            found.append(gen)
        pending.extend(getattr(obj, attr, None) for attr in ("sampler", "batch_sampler"))
    return found


@dataclass
class TrainingState:
    """What ``capture`` saved; ``restore()`` puts it all back (and may be called again)."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    model_state: dict[str, Any]
    other_buffers: dict[str, torch.Tensor]
    grads: list[torch.Tensor | None]
    training: list[bool]
    optimizer_groups: list[dict[str, Any]]
    group_tensors: list[dict[str, torch.Tensor]]
    optimizer_flags: dict[str, Any]
    optimizer_state: dict[Any, Any]
    python_rng: object
    numpy_rng: dict[str, Any]
    torch_rng: torch.Tensor
    cuda_rng: list[torch.Tensor] | None
    generators: list[tuple[torch.Generator, torch.Tensor]]

    def restore(self) -> None:
        with torch.no_grad():
            # load_state_dict copies in place: the caller's parameter objects stay the same
            # (their optimizer keeps pointing at them).
            self.model.load_state_dict(self.model_state)
            for name, value in self.other_buffers.items():
                self.model.get_buffer(name).copy_(value)
            for param, grad in zip(self.model.parameters(), self.grads):
                param.grad = None if grad is None else grad.clone()
        for module, flag in zip(self.model.modules(), self.training):
            module.training = flag
        # In place, so that references the caller holds to param groups stay valid.
        for group, saved, tensors in zip(self.optimizer.param_groups, self.optimizer_groups, self.group_tensors):
            params = group["params"]
            group.clear()
            group.update(copy.deepcopy(saved))
            group["params"] = params
            # A tensor hyperparameter (a tensor ``lr``) is the caller's own object: put that
            # very tensor back, with its value.
            for key, tensor in tensors.items():
                with torch.no_grad():
                    tensor.copy_(group[key])
                group[key] = tensor
        # Private call-order flags (``_opt_called``, set by optimizer.step() once an LR
        # scheduler wrapped it; torch's scheduler warns from it): as they were.
        for name in _FLAG_NAMES:
            if name in self.optimizer_flags:
                setattr(self.optimizer, name, self.optimizer_flags[name])
            elif name in vars(self.optimizer):
                delattr(self.optimizer, name)
        self.optimizer.state.clear()
        for param, state in self.optimizer_state.items():
            self.optimizer.state[param] = copy.deepcopy(state)
        random.setstate(self.python_rng)  # type: ignore[arg-type]
        np.random.set_state(self.numpy_rng)
        torch.set_rng_state(self.torch_rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)
        for gen, state in self.generators:
            gen.set_state(state)


def capture(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, loaders: Iterable[Any] = ()
) -> TrainingState:
    """Deep-copy, in memory, all the state a short training on ``model`` would change."""
    generators = [(gen, gen.get_state()) for loader in loaders for gen in _loader_generators(loader)]
    cuda_rng = (
        torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    )
    state_keys = set(model.state_dict().keys())
    return TrainingState(
        model=model,
        optimizer=optimizer,
        model_state=copy.deepcopy(model.state_dict()),
        # Non-persistent buffers are not in the state dict but training may change them.
        other_buffers={
            name: buf.detach().clone() for name, buf in model.named_buffers() if name not in state_keys
        },
        grads=[None if p.grad is None else p.grad.detach().clone() for p in model.parameters()],
        training=[m.training for m in model.modules()],
        optimizer_groups=[
            {key: copy.deepcopy(value) for key, value in group.items() if key != "params"}
            for group in optimizer.param_groups
        ],
        group_tensors=[
            {key: value for key, value in group.items() if isinstance(value, torch.Tensor)}
            for group in optimizer.param_groups
        ],
        optimizer_flags={name: vars(optimizer)[name] for name in _FLAG_NAMES if name in vars(optimizer)},
        optimizer_state={param: copy.deepcopy(state) for param, state in optimizer.state.items()},
        python_rng=random.getstate(),
        numpy_rng=np.random.get_state(legacy=False),
        torch_rng=torch.get_rng_state(),
        cuda_rng=cuda_rng,
        generators=generators,
    )
