"""μP (the maximal-update parametrization) for a task built at a given width.

Under the standard parametrization the optimal learning rate of Adam moves as the model
widens (an MLP's optimum falls about as width^-0.6); under μP (Yang et al., "Tensor
Programs V", arXiv 2203.03466) it stays put, so an LR tuned on a narrow proxy holds at
the width one cannot afford to sweep. μP changes three things relative to the factory's
model, all measured against a *base* width (where μP and the standard parametrization
agree):

- the readout (the layer that maps a width dimension to a fixed one, e.g. the logits)
  divides its input by ``width_mult`` (its fan-in over the base's) and starts from its
  standard init times ``sqrt(width_mult)``;
- every other Linear/Conv bias whose fan-in grows starts from its init times
  ``sqrt(fan_in_mult)``;
- per-parameter learning-rate multipliers: for the Adam family a matrix-like weight (two
  width dimensions) gets ``1 / fan_in_mult``; for SGD a vector-like parameter (one width
  dimension: input weights, biases, the readout) gets ``width_mult`` and a matrix-like one
  ``fan_out_mult / fan_in_mult``.

Two ways to get there, with the same numbers:

- ``method="mup"``: microsoft's ``mup`` package (the ``mup`` extra). The readout, an
  ``nn.Linear``, is swapped for ``mup.MuReadout`` (its weights copied) and
  ``mup.set_base_shapes`` is given base shapes made from the factory's model at two widths
  (the base and a delta); the multipliers are the ones ``mup.MuAdam`` / ``mup.MuSGD`` apply,
  read off each parameter's ``infshape``.
- ``method="lrlab"``: the same rules applied by lrlab itself (a forward pre-hook on the
  readout for the output multiplier), for models mup cannot take (a readout that is not an
  ``nn.Linear``) or where the package is not installed.

In both cases the multipliers travel as ``RunConfig.lr_mult`` (lrlab's param groups: each
group's LR is ``schedule(t) * lr_mult``), so the stored run says what every layer got, and
any optimizer of the family built by lrlab's grammar trains the μP model. Weight decay is
not rescaled (``mup.MuAdamW`` keeps ``lr * weight_decay`` fixed per layer); runs with
weight decay are refused rather than silently changed.

The entry point for :mod:`lrlab.transfer`::

    mup_setup(factory, axis, value, *, base, delta=None, optimizer="adam",
              readout=None, method="auto") -> MupSetup

``factory(**{axis: value})`` returns a :class:`~lrlab.training.tasks.Task`, the model
function form of ``lrlab.study`` (``(model_fn, train, val)`` or a dict of its keywords) or
an ``nn.Module``; the result carries ``task`` (a copy whose models are built in μP),
``lr_mult`` (``{parameter name: multiplier}`` for ``RunConfig.lr_mult``), ``width_mult``,
``readout`` and ``method``. ``mup_model(model, base_model, delta_model, ...)`` does the
same for a model built by hand (a user's own loop), returning the model and the multipliers.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from lrlab.core.grammar import read_optimizer
from lrlab.training.tasks import Task
from lrlab.training.trial_task import is_trainable
from lrlab.transfer.proxies import task_of

__all__ = ["MupSetup", "WidthShape", "family_of", "mup_lr_mult", "mup_model", "mup_setup", "width_shapes"]

_ADAM_FAMILY = frozenset({"adam", "adamw", "nadam", "radam", "adamax"})
_SGD_FAMILY = frozenset({"sgd", "nesterov", "momentum"})
METHODS = ("auto", "mup", "lrlab")


@dataclass(frozen=True)
class WidthShape:
    """A parameter's shape against the base: ``base`` is the base size of each width
    dimension (None for a fixed one), ``size`` its size here."""

    base: tuple[int | None, ...]
    size: tuple[int, ...]

    def width_dims(self) -> int:
        return sum(b is not None for b in self.base)

    def mult(self, dim: int) -> float:
        base = self.base[dim]
        return 1.0 if base is None else self.size[dim] / base

    def main_mult(self) -> float:
        """The multiplier of the last width dimension (the fan-in of a matrix), as mup's."""
        for dim in reversed(range(len(self.size))):
            if self.base[dim] is not None:
                return self.mult(dim)
        return 1.0


@dataclass(frozen=True)
class MupSetup:
    """A task in μP at one width, and the per-parameter LR multipliers its runs need."""

    task: Task | None
    lr_mult: dict[str, float]
    width_mult: float
    readout: str
    method: str
    optimizer_family: str
    shapes: dict[str, WidthShape] = field(repr=False, default_factory=dict)

    def describe(self) -> str:
        """One line per parameter whose multiplier is not 1, then the readout's."""
        lines = [f"{name}: lr x {mult:.4g}" for name, mult in self.lr_mult.items() if mult != 1.0]
        lines.append(f"readout {self.readout}: output / {self.width_mult:g} ({self.method})")
        return "\n".join(lines)


def family_of(optimizer: str) -> str:
    """``"adam"`` or ``"sgd"``: which μP rule the optimizer ``spec`` follows; a ValueError
    naming the optimizer (and what is allowed) otherwise, or when it decays weights."""
    read = read_optimizer(optimizer) if isinstance(optimizer, str) else None
    if read is None:
        raise ValueError(f"optimizer must be an optimizer spec such as 'adam', got {optimizer!r}")
    name, arguments = read
    if float(arguments.get("weight_decay", 0.0) or 0.0) != 0.0:
        raise ValueError(
            f"μP with weight decay is not supported ({optimizer!r}): lrlab's multipliers scale the LR only; "
            "drop weight_decay or use the standard parametrization"
        )
    if name in _ADAM_FAMILY:
        return "adam"
    if name in _SGD_FAMILY:
        return "sgd"
    allowed = ", ".join(sorted(_ADAM_FAMILY | _SGD_FAMILY))
    raise ValueError(f"μP multipliers are defined for the Adam and SGD families ({allowed}), got {name!r}")


def width_shapes(base: nn.Module, delta: nn.Module, model: nn.Module) -> dict[str, WidthShape]:
    """Each parameter of ``model`` against ``base``: the dimensions that differ between
    ``base`` and ``delta`` are width dimensions. Names must agree across the three."""
    base_shapes = {n: tuple(p.shape) for n, p in base.named_parameters()}
    delta_shapes = {n: tuple(p.shape) for n, p in delta.named_parameters()}
    shapes: dict[str, WidthShape] = {}
    for name, param in model.named_parameters():
        if name not in base_shapes or name not in delta_shapes:
            raise ValueError(f"parameter {name!r} is missing from the model at the base or delta width")
        b, d, size = base_shapes[name], delta_shapes[name], tuple(param.shape)
        if not len(b) == len(d) == len(size):
            raise ValueError(f"parameter {name!r} changes rank with width ({b} vs {d} vs {size})")
        shapes[name] = WidthShape(tuple(bi if bi != di else None for bi, di in zip(b, d)), size)
    if not any(s.width_dims() for s in shapes.values()):
        raise ValueError("no parameter changes shape between the base and delta widths: nothing to scale")
    return shapes


def mup_lr_mult(shapes: Mapping[str, WidthShape], family: str) -> dict[str, float]:
    """The LR multiplier of each parameter, as ``mup.MuAdam`` (``family="adam"``) or
    ``mup.MuSGD`` (``"sgd"``) would set it."""
    out: dict[str, float] = {}
    for name, shape in shapes.items():
        ninf = shape.width_dims()
        if ninf > 2:
            raise ValueError(f"parameter {name!r} has {ninf} width dimensions; μP handles at most 2")
        if family == "adam":
            out[name] = 1.0 / shape.main_mult() if ninf == 2 else 1.0
        elif ninf == 1:
            out[name] = shape.main_mult()
        elif ninf == 2:
            out[name] = shape.mult(0) / shape.mult(1)
        else:
            out[name] = 1.0
    return out


def _find_readout(model: nn.Module, shapes: Mapping[str, WidthShape], readout: str | None) -> str:
    """The module mapping a width dimension to a fixed one: named, or the only such one."""
    candidates = []
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        key = f"{name}.weight" if name else "weight"
        if not isinstance(weight, torch.Tensor) or key not in shapes or weight.dim() < 2:
            continue
        shape = shapes[key]
        if shape.base[1] is not None and shape.base[0] is None:
            candidates.append(name)
    if readout is not None:
        if readout not in dict(model.named_modules()):
            raise ValueError(
                f"readout {readout!r} is not a module of the model (readouts found: {candidates})"
            )
        return readout
    if len(candidates) != 1:
        found = ", ".join(candidates) or "none"
        raise ValueError(
            f"μP needs exactly one readout (a layer from a width dimension to a fixed one), found {found}; "
            "name it with readout="
        )
    return candidates[0]


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def _with_mup_package(model: nn.Module, base: nn.Module, delta: nn.Module, readout: str) -> nn.Module:
    """The readout swapped for ``MuReadout`` (same weights) and ``set_base_shapes`` applied."""
    from mup import MuReadout, make_base_shapes, set_base_shapes

    old = model.get_submodule(readout)
    new = MuReadout(old.in_features, old.out_features, bias=old.bias is not None)
    with torch.no_grad():
        new.weight.copy_(old.weight)
        if old.bias is not None:
            new.bias.copy_(old.bias)
    _set_module(model, readout, new)
    set_base_shapes(model, make_base_shapes(base, delta))
    return model


class _DivideInput:
    """A forward pre-hook dividing the readout's input by the width multiplier (picklable)."""

    def __init__(self, width_mult: float) -> None:
        self.width_mult = width_mult

    def __call__(self, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return (args[0] / self.width_mult, *args[1:])


def _with_lrlab(model: nn.Module, shapes: Mapping[str, WidthShape], readout: str) -> nn.Module:
    """mup's init rescaling and readout multiplier, applied by lrlab."""
    width_mult = shapes[f"{readout}.weight"].main_mult()
    with torch.no_grad():
        for name, module in model.named_modules():
            bias = getattr(module, "bias", None)
            if name == readout:
                module.weight.mul_(math.sqrt(width_mult))
                if isinstance(bias, torch.Tensor):
                    bias.mul_(math.sqrt(width_mult))
            elif isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)) and isinstance(bias, torch.Tensor):
                bias.mul_(math.sqrt(shapes[f"{name}.weight"].mult(1)))
    model.get_submodule(readout).register_forward_pre_hook(_DivideInput(width_mult))
    return model


def _method(method: str, readout_module: nn.Module) -> str:
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "lrlab":
        return method
    fits = type(readout_module) is nn.Linear
    try:
        import mup  # noqa: F401
    except ImportError:
        if method == "mup":
            raise ValueError("method='mup' needs the mup package: pip install 'lrlab[mup]'") from None
        return "lrlab"
    if method == "mup" and not fits:
        raise ValueError(
            f"method='mup' needs an nn.Linear readout, got {type(readout_module).__name__}; use method='lrlab'"
        )
    return "mup" if fits else "lrlab"


def mup_model(
    model: nn.Module,
    base: nn.Module,
    delta: nn.Module,
    *,
    optimizer: str = "adam",
    readout: str | None = None,
    method: str = "auto",
) -> tuple[nn.Module, MupSetup]:
    """``model`` (changed in place) in μP against ``base`` (``delta``: the same model at
    another width, which tells the width dimensions), and its :class:`MupSetup` (no task).

    Example:
        >>> from torch import nn
        >>> mlp = lambda w: nn.Sequential(nn.Linear(8, w), nn.ReLU(), nn.Linear(w, w), nn.ReLU(), nn.Linear(w, 3))
        >>> model, setup = mup_model(mlp(256), mlp(64), mlp(128))
        >>> setup.readout, setup.width_mult, setup.lr_mult["2.weight"], setup.lr_mult["4.weight"]
        ('4', 4.0, 0.25, 1.0)
    """
    family = family_of(optimizer)
    shapes = width_shapes(base, delta, model)
    name = _find_readout(model, shapes, readout)
    chosen = _method(method, model.get_submodule(name))
    if chosen == "mup":
        _with_mup_package(model, base, delta, name)
    else:
        _with_lrlab(model, shapes, name)
    width_mult = shapes[f"{name}.weight"].main_mult()
    setup = MupSetup(None, mup_lr_mult(shapes, family), width_mult, name, chosen, family, shapes)
    return model, setup


def _as_task(built: object, factory: Callable[..., Any]) -> object:
    """A Task or an nn.Module as it is; ``lrlab.study``'s model-function forms as their Task
    (the transfer's own reading of them); a trainable refused: it builds its own model."""
    if isinstance(built, (Task, nn.Module)):
        return built
    if is_trainable(built):
        raise ValueError(
            "μP needs a model lrlab builds, and a trainable builds its own: call "
            "lrlab.transfer.mup.mup_model(model, base, delta) inside it and train with its lr_mult"
        )
    return task_of(built, factory)  # the transfer's one reading of the forms a factory returns


def _model_of(built: object, what: str) -> nn.Module:
    if isinstance(built, nn.Module):
        return built
    if isinstance(built, Task):
        with torch.random.fork_rng(devices=[]):
            return built.make_model(0)
    raise ValueError(
        f"the factory must return a Task or an nn.Module for μP, got {type(built).__name__} ({what})"
    )


class _MupModels:
    """A task's ``make_model`` wrapped so every model it builds is in μP (picklable)."""

    def __init__(self, make_model: Callable[[int], nn.Module], base: nn.Module, delta: nn.Module,
                 optimizer: str, readout: str, method: str) -> None:  # fmt: skip
        self.make_model, self.base, self.delta = make_model, base, delta
        self.optimizer, self.readout, self.method = optimizer, readout, method

    def __call__(self, seed: int) -> nn.Module:
        model, _ = mup_model(self.make_model(seed), self.base, self.delta,
                             optimizer=self.optimizer, readout=self.readout, method=self.method)  # fmt: skip
        return model


def _mup_task(task: Task, models: _MupModels, base_value: object) -> Task:
    out = copy.copy(task)
    out.options = {**task.options, "parametrization": "mup", "mup_base": base_value}
    out.make_model = models  # type: ignore[method-assign]
    return out


def mup_setup(
    factory: Callable[..., Any],
    axis: str,
    value: int,
    *,
    base: int,
    delta: int | None = None,
    optimizer: str = "adam",
    readout: str | None = None,
    method: str = "auto",
) -> MupSetup:
    """The factory's task at ``axis=value`` in μP against ``axis=base`` (``delta``, default
    ``2 * base``, tells the width dimensions apart), with its LR multipliers.

    ``optimizer`` is the run's optimizer spec (its family picks the multipliers);
    ``readout`` names the output layer when more than one layer maps a width to a fixed
    size. The returned ``task`` builds every model in μP; give ``lr_mult`` to the run's
    :class:`~lrlab.core.records.RunConfig`.
    """
    for name, number in (("value", value), ("base", base)):
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {number!r}")
    delta = 2 * base if delta is None else delta
    if delta == base:
        raise ValueError(f"delta must differ from base ({base}) so the width dimensions show")
    built = _as_task(factory(**{axis: value}), factory)
    base_model = _model_of(_as_task(factory(**{axis: base}), factory), f"{axis}={base}")
    delta_model = _model_of(_as_task(factory(**{axis: delta}), factory), f"{axis}={delta}")
    probe, setup = mup_model(_model_of(built, f"{axis}={value}"), base_model, delta_model,
                             optimizer=optimizer, readout=readout, method=method)  # fmt: skip
    del probe
    if not isinstance(built, Task):
        return setup
    models = _MupModels(built.make_model, base_model, delta_model, optimizer, setup.readout, setup.method)
    return MupSetup(_mup_task(built, models, base), setup.lr_mult, setup.width_mult, setup.readout,
                    setup.method, setup.optimizer_family, setup.shapes)  # fmt: skip
