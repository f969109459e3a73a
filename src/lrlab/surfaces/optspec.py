"""Optimizer specs for trajectories: ``"name:key=value,key=value[@schedule]"``.

Every ``torch.optim`` optimizer that works on a dense parameter is available by its
lower-case class name, plus the aliases ``gd`` (plain SGD), ``momentum`` (SGD with
momentum 0.9), ``nesterov`` (SGD with Nesterov momentum 0.9), ``deltabardelta``
(:class:`lrlab.optim.DeltaBarDelta`) and ``adagradmean`` (:class:`lrlab.optim.AdaGradMean`). Values are numbers, ``true``/``false``, ``none``
or lists in brackets/parentheses (``betas=(0.9,0.99)``). An optional ``@SPEC`` suffix
drives the optimizer's learning rate with an lrlab schedule.

Example:
    >>> spec = parse_optimizer("sgd:lr=0.01,momentum=0.9,nesterov=true")
    >>> spec.name, spec.kwargs
    ('sgd', {'lr': 0.01, 'momentum': 0.9, 'nesterov': True})
    >>> parse_optimizer("adam:betas=(0.9,0.99)").kwargs
    {'betas': (0.9, 0.99)}
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from lrlab.schedules import Schedule, SpecError, parse

__all__ = ["OPTIMIZER_NAMES", "OptimizerSpec", "optimizer_class", "parse_optimizer"]

# Optimizers that cannot move one dense 2-vector: sparse gradients only, or matrices only.
_EXCLUDED = {"SparseAdam", "Muon", "Optimizer"}

# alias -> (torch.optim class name, default kwargs)
_ALIASES: dict[str, tuple[str, dict[str, Any]]] = {
    "gd": ("SGD", {}),
    "momentum": ("SGD", {"momentum": 0.9}),
    "nesterov": ("SGD", {"momentum": 0.9, "nesterov": True}),
    "nag": ("SGD", {"momentum": 0.9, "nesterov": True}),
}


def _torch_optimizers() -> dict[str, type[torch.optim.Optimizer]]:
    found = {}
    for attr in dir(torch.optim):
        obj = getattr(torch.optim, attr)
        if isinstance(obj, type) and issubclass(obj, torch.optim.Optimizer) and attr not in _EXCLUDED:
            found[attr.lower()] = obj
    return found


def _all_classes() -> dict[str, type[torch.optim.Optimizer]]:
    from lrlab.optim import AdaGradMean, DeltaBarDelta

    classes = _torch_optimizers()
    classes["deltabardelta"] = DeltaBarDelta
    classes["dbd"] = DeltaBarDelta
    classes["adagradmean"] = AdaGradMean
    return classes


OPTIMIZER_NAMES: tuple[str, ...] = tuple(
    sorted({*_torch_optimizers(), "deltabardelta", "dbd", "adagradmean", *_ALIASES})
)


def optimizer_class(name: str) -> tuple[type[torch.optim.Optimizer], dict[str, Any]]:
    """The optimizer class for ``name`` (case-insensitive) and the defaults its alias adds."""
    key = name.strip().lower()
    classes = _all_classes()
    if key in _ALIASES:
        class_name, defaults = _ALIASES[key]
        return classes[class_name.lower()], dict(defaults)
    if key not in classes:
        raise ValueError(f"unknown optimizer {name!r}; valid optimizers: {', '.join(OPTIMIZER_NAMES)}")
    return classes[key], {}


def accepted_kwargs(cls: type[torch.optim.Optimizer]) -> tuple[str, ...]:
    """Keyword arguments the optimizer's constructor takes (besides ``params``)."""
    parameters = inspect.signature(cls.__init__).parameters
    return tuple(n for n in parameters if n not in ("self", "params") and not n.startswith("_"))


@dataclass(frozen=True)
class OptimizerSpec:
    """A parsed optimizer spec: class key, keyword arguments and an optional schedule."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    schedule: Schedule | None = None
    label: str = ""

    def __post_init__(self) -> None:
        cls, defaults = optimizer_class(self.name)
        merged = {**defaults, **self.kwargs}
        allowed = accepted_kwargs(cls)
        for key in merged:
            if key not in allowed:
                raise ValueError(
                    f"optimizer {self.name!r} ({cls.__name__}) does not take {key!r}; "
                    f"it takes: {', '.join(allowed)}"
                )
        object.__setattr__(self, "kwargs", merged)
        if not self.label:
            object.__setattr__(self, "label", _label(self.name, self.kwargs, self.schedule))

    @property
    def optimizer_class(self) -> type[torch.optim.Optimizer]:
        return optimizer_class(self.name)[0]

    @property
    def lr(self) -> float | None:
        """The learning rate given in the spec (None: the optimizer's default)."""
        value = self.kwargs.get("lr")
        return None if value is None else float(value)

    def build(self, params: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
        """Construct the optimizer; torch's own argument errors become one-line ValueErrors."""
        try:
            return self.optimizer_class(params, **self.kwargs)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"optimizer {self.label!r}: {exc}") from None


def _label(name: str, kwargs: dict[str, Any], schedule: Schedule | None) -> str:
    text = name
    if kwargs:
        text += ":" + ",".join(f"{k}={_format(v)}" for k, v in kwargs.items())
    if schedule is not None:
        text += f"@{schedule}"
    return text


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "(" + ",".join(_format(v) for v in value) + ")"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def parse_optimizer(text: str | OptimizerSpec) -> OptimizerSpec:
    """Read ``"name:key=value,...[@schedule spec]"`` into an :class:`OptimizerSpec`."""
    if isinstance(text, OptimizerSpec):
        return text
    raw = str(text).strip()
    if not raw:
        raise ValueError("optimizer spec is empty; expected 'name:key=value,...', e.g. 'sgd:lr=0.01'")
    head, _, schedule_text = raw.partition("@")
    name, _, args = head.partition(":")
    schedule = None
    if schedule_text.strip():
        try:
            schedule = parse(schedule_text.strip())
        except SpecError as exc:
            raise ValueError(
                f"bad schedule spec in optimizer {raw!r}: {exc.reason} at position {exc.position}"
            ) from None
    kwargs = {}
    for item in _split_top_level(args):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"optimizer argument {item!r} in {raw!r} must look like key=value")
        kwargs[key.strip()] = _value(value.strip(), raw)
    return OptimizerSpec(name.strip().lower(), kwargs, schedule, label=raw)


def _split_top_level(args: str) -> list[str]:
    items, depth, current = [], 0, []
    for char in args:
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        if char == "," and depth == 0:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]


def _value(text: str, raw: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    if text[:1] in "([" and text[-1:] in ")]":
        return tuple(_value(v, raw) for v in _split_top_level(text[1:-1]))
    try:
        number = int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            raise ValueError(
                f"optimizer value {text!r} in {raw!r} is not a number, true/false, none or a list"
            ) from None
        if not math.isfinite(number):
            raise ValueError(f"optimizer value {text!r} in {raw!r} must be finite") from None
    return number
