"""The coordinate check: does each layer's activation scale stay put as the model widens?

A parametrization under which the optimal LR transfers across width keeps every layer's
activations, and their change over the first steps, of the same size at every width
(Yang et al., "Tensor Programs V", the coordinate check of microsoft's ``mup``). This
module trains the factory's model at a few widths for a few steps on one fixed batch and
records, per layer and step, ``mean |x|`` of the layer's output (mup's ``l1``) and
``mean |f(W_t, x_t) - f(W_1, x_t)|``, the change its own parameters' updates made to its
output at that step's input (the whole model, named ``""``, counts all of them). The
*growth exponent* of a layer is the slope of the log of that change against ``log width``
(the check takes the largest in size over steps 2..T): about 0 under a correct μP; about +1 for hidden layers under the
standard parametrization with Adam (their update grows with fan-in); about -1 for a
readout whose LR is scaled down by the width twice. (The change of the output itself is a
weaker test: in μP the hidden features' change reaches the logits at full size whatever
the readout's own LR, so a readout scaled twice barely shows there.) :meth:`CoordCheck.check` raises a ``ValueError`` of one line naming the
worst layer and its exponent when any exponent lies outside ``±tolerance``.

``coord_data(build, widths, batch, loss_fn)`` is the measurement for any
``build(width) -> (model, optimizer)``; ``coord_check(factory, axis, widths, lr=...)``
builds those from a task factory in μP (:func:`~lrlab.transfer.mup.mup_setup`) or in the
standard parametrization, with lrlab's optimizer grammar and param groups.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lrlab.finetune import param_groups
from lrlab.optim.grammar import make_optimizer
from lrlab.training.tasks import Task
from lrlab.transfer.mup import mup_setup

__all__ = ["CoordCheck", "coord_check", "coord_data", "growth_exponent"]

DEFAULT_TOLERANCE = 0.4
PARAMETRIZATIONS = ("mup", "standard")
Build = Callable[[int], tuple[nn.Module, torch.optim.Optimizer]]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def growth_exponent(widths: Sequence[float], scales: Sequence[float]) -> float:
    """The least-squares slope of ``log scale`` against ``log width`` (NaN when any scale
    is not positive and finite).

    >>> round(growth_exponent([64, 128, 256], [1.0, 2.0, 4.0]), 6)
    1.0
    """
    x, y = np.log(np.asarray(widths, float)), np.asarray(scales, float)
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        return float("nan")
    return float(np.polyfit(x, np.log(y), 1)[0])


@dataclass(frozen=True)
class CoordCheck:
    """Per layer (module name) arrays of shape ``(steps, widths)``, means over seeds:
    ``l1`` the mean |output| at each step, ``update`` the mean change of the output that
    the layer's own parameter updates made (at that step's input)."""

    widths: tuple[int, ...]
    steps: int
    l1: dict[str, np.ndarray]
    update: dict[str, np.ndarray]
    tolerance: float = DEFAULT_TOLERANCE
    label: str = ""

    def exponents(self, step: int | None = None) -> dict[str, float]:
        """Each layer's growth exponent of its change at ``step`` (1-based; the last by default)."""
        index = (self.steps if step is None else step) - 1
        if not 1 <= index < self.steps:
            raise ValueError(f"step must be in 2..{self.steps} (step 1 is the start), got {step}")
        return {name: growth_exponent(self.widths, d[index]) for name, d in self.update.items()}

    def worst_exponents(self) -> dict[str, float]:
        """Each layer's exponent of largest size over steps 2..``steps`` (NaN if any is NaN)."""
        per_step = [self.exponents(step) for step in range(2, self.steps + 1)]
        return {name: max((e[name] for e in per_step), key=lambda v: np.inf if np.isnan(v) else abs(v))
                for name in self.update}  # fmt: skip

    def failures(self) -> list[tuple[str, float]]:
        """``(layer, exponent)`` outside ``±tolerance`` (or not finite) at some step, worst first."""
        bad = [(n, e) for n, e in self.worst_exponents().items() if not abs(e) <= self.tolerance]
        return sorted(bad, key=lambda item: -abs(item[1]) if np.isfinite(item[1]) else -np.inf)

    def check(self) -> CoordCheck:
        """Self when every layer passes; else a one-line ``ValueError`` naming the worst."""
        bad = self.failures()
        if bad:
            layer, exponent = bad[0]
            more = f" (and {len(bad) - 1} more layer(s))" if len(bad) > 1 else ""
            raise ValueError(
                f"coordinate check failed{' for ' + self.label if self.label else ''}: layer {layer!r} changes as "
                f"width^{exponent:+.2f} within {self.steps - 1} steps over widths {self.widths[0]}..{self.widths[-1]} "
                f"(allowed |exponent| <= {self.tolerance}){more}; the learning rate will not transfer across "
                "width: check the readout multiplier and the per-layer LR multipliers"
            )
        return self

    def table(self) -> str:
        """A plain-text table: each layer's mean |x| at the last step per width, and its
        worst growth exponent over the steps."""
        header = ["layer", *(f"w={w}" for w in self.widths), "exponent"]
        rows = [header]
        for name, exponent in self.worst_exponents().items():
            values = [f"{v:.3g}" for v in self.l1[name][-1]]
            rows.append([name or "<model>", *values, f"{exponent:+.2f}"])
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules that own parameters directly, and the whole model (named ``""``)."""
    own = [(n, m) for n, m in model.named_modules() if n and any(True for _ in m.parameters(recurse=False))]
    return [*own, ("", model)]


def _first_tensor(output: object) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return None


class _Recorder:
    """Forward hooks recording, per layer and forward pass, ``mean |output|`` and the
    change its own parameters' updates made: ``f(W_t, x_t) - f(W_1, x_t)`` at today's input.
    The second is computed by :meth:`measure` after the backward pass (swapping weights
    in place before it would break autograd), with the random state the layer saw (the
    same dropout masks) and its buffers kept (BatchNorm's running statistics untouched):
    recording does not change the training it watches."""

    def __init__(self, model: nn.Module) -> None:
        self.l1: dict[str, list[float]] = {}
        self.update: dict[str, list[float]] = {}
        self._modules = dict(_layers(model))
        self._initial = {
            name: {k: v.detach().clone() for k, v in module.named_parameters()}
            for name, module in self._modules.items()
        }
        self._seen: list[tuple[str, tuple[object, ...], dict[str, object], torch.Tensor, torch.Tensor]] = []
        self._rng: dict[str, torch.Tensor] = {}
        self._busy = False
        self._handles = [
            handle
            for name, module in self._modules.items()
            for handle in (
                module.register_forward_pre_hook(self._pre_hook(name)),
                module.register_forward_hook(self._hook(name), with_kwargs=True),
            )
        ]

    def _pre_hook(self, name: str) -> Callable[..., None]:
        def pre_hook(module: nn.Module, args: tuple[object, ...]) -> None:
            if not self._busy:
                self._rng[name] = torch.get_rng_state()

        return pre_hook

    def _hook(self, name: str) -> Callable[..., None]:
        def hook(
            module: nn.Module, args: tuple[object, ...], kwargs: dict[str, object], output: object
        ) -> None:
            tensor = _first_tensor(output)
            if self._busy or tensor is None:
                return
            self.l1.setdefault(name, []).append(float(tensor.detach().abs().mean()))
            # copies: a later in-place operation (ReLU(inplace=True)) must not change them
            self._seen.append(
                (name, _copied(args), _copied(kwargs), tensor.detach().clone(), self._rng[name])
            )

        return hook

    def measure(self) -> None:
        """The update-made change of each layer seen since the last call."""
        self._busy = True  # the calls below run the hooks again
        try:
            for name, args, kwargs, output, rng in self._seen:
                with torch.random.fork_rng(devices=[]):
                    torch.set_rng_state(rng)
                    before = _first_tensor(_call_with(self._modules[name], self._initial[name], args, kwargs))
                self.update.setdefault(name, []).append(float((output - before).abs().mean()))
        finally:
            self._busy = False
            self._seen = []

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def _copied(value: object) -> object:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, tuple):
        return tuple(_copied(v) for v in value)
    if isinstance(value, dict):
        return {k: _copied(v) for k, v in value.items()}
    return value


def _call_with(module: nn.Module, values: dict[str, torch.Tensor], args: tuple[object, ...],
               kwargs: dict[str, object]) -> object:  # fmt: skip
    """``module(*args, **kwargs)`` with its parameters' values swapped for ``values`` (the
    parameter objects are kept, so attributes such as mup's ``infshape`` stay), its
    parameters and buffers as they were afterwards."""
    params = dict(module.named_parameters())
    buffers = dict(module.named_buffers())
    saved = {name: p.detach().clone() for name, p in params.items()}
    saved_buffers = {name: b.clone() for name, b in buffers.items()}
    with torch.no_grad():
        try:
            for name, p in params.items():
                p.copy_(values[name])
            return module(*args, **kwargs)
        finally:
            for name, p in params.items():
                p.copy_(saved[name])
            for name, b in buffers.items():
                b.copy_(saved_buffers[name])


def _train_recording(build: Build, width: int, batch: tuple[torch.Tensor, torch.Tensor], loss_fn: LossFn,
                     steps: int) -> _Recorder:  # fmt: skip
    """Each layer's scales at each of ``steps`` forward passes (one update after each)."""
    model, optimizer = build(width)
    recorder = _Recorder(model)
    try:
        inputs, targets = batch
        for _ in range(steps):
            loss = loss_fn(model(inputs), targets)
            optimizer.zero_grad()
            loss.backward()
            recorder.measure()
            optimizer.step()
    finally:
        recorder.remove()
    return recorder


def coord_data(build: Build, widths: Sequence[int], batch: tuple[torch.Tensor, torch.Tensor], loss_fn: LossFn, *,
               steps: int = 4, seeds: Sequence[int] = (0, 1), tolerance: float = DEFAULT_TOLERANCE,
               label: str = "") -> CoordCheck:  # fmt: skip
    """Train ``build(width)`` for ``steps`` steps on ``batch`` at each width and seed
    (``torch.manual_seed(seed)`` before each build) and record every layer's scale."""
    widths = tuple(sorted(widths))
    if len(widths) < 3 or len(set(widths)) != len(widths):
        raise ValueError(f"widths must be at least 3 distinct sizes, got {list(widths)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be a whole number >= 2, got {steps!r}")
    l1: dict[str, np.ndarray] = {}
    update: dict[str, np.ndarray] = {}
    for s, seed in enumerate(seeds):
        for w, width in enumerate(widths):
            torch.manual_seed(seed)
            recorder = _train_recording(build, width, batch, loss_fn, steps)
            for name in recorder.l1:
                shape = (len(seeds), steps, len(widths))
                l1.setdefault(name, np.zeros(shape))[s, :, w] = recorder.l1[name][:steps]
                update.setdefault(name, np.zeros(shape))[s, :, w] = recorder.update[name][:steps]
    return CoordCheck(widths, steps, {n: a.mean(0) for n, a in l1.items()},
                      {n: a.mean(0) for n, a in update.items()}, tolerance, label)  # fmt: skip


def _task_build(factory: Callable[..., Task], axis: str, lr: float, optimizer: str, parametrization: str,
                base: int, readout: str | None) -> Build:  # fmt: skip
    def build(width: int) -> tuple[nn.Module, torch.optim.Optimizer]:
        seed = int(torch.initial_seed())
        if parametrization == "standard":
            task = factory(**{axis: width})
            rules = None
        else:
            setup = mup_setup(factory, axis, width, base=base, optimizer=optimizer, readout=readout)
            task, rules = setup.task, setup.lr_mult
        if not isinstance(task, Task):
            raise ValueError(f"the factory must return a Task, got {type(task).__name__}")
        model = task.make_model(seed)
        groups = param_groups(model, lr, rules=rules) if rules else model.parameters()
        return model, make_optimizer(optimizer, groups, lr)

    return build


def coord_check(
    factory: Callable[..., Task],
    axis: str,
    widths: Sequence[int],
    *,
    lr: float,
    optimizer: str = "adam",
    parametrization: str = "mup",
    base: int | None = None,
    readout: str | None = None,
    steps: int = 4,
    seeds: Sequence[int] = (0, 1),
    batch_size: int = 64,
    tolerance: float = DEFAULT_TOLERANCE,
) -> CoordCheck:
    """The coordinate check of ``factory(**{axis: width})`` at ``widths``, trained at ``lr``
    with ``optimizer`` for ``steps`` steps on the task's first training batch, in μP against
    ``base`` (default: the smallest width) or in the standard parametrization. Call
    ``.check()`` on the result to fail loudly."""
    if parametrization not in PARAMETRIZATIONS:
        raise ValueError(
            f"parametrization must be one of {', '.join(PARAMETRIZATIONS)}, got {parametrization!r}"
        )
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    if any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
        raise ValueError(f"widths must be whole numbers >= 1, got {list(widths)}")
    widths = sorted(widths)
    task = factory(**{axis: widths[0]})
    if not isinstance(task, Task):
        raise ValueError(f"the factory must return a Task, got {type(task).__name__}")
    batch = next(iter(task.train_loader(batch_size, 0)))
    build = _task_build(factory, axis, lr, optimizer, parametrization, base or widths[0], readout)
    label = f"{parametrization} {optimizer} lr={lr:g}"
    return coord_data(
        build, widths, batch, task.loss_fn, steps=steps, seeds=seeds, tolerance=tolerance, label=label
    )
