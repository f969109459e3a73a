"""Optimizers from spec strings: ``"sgd(momentum=0.9, nesterov=true)"``, ``"adam(betas=[0.9, 0.99])"``.

The grammar is the schedule spec grammar (``lrlab.schedules.spec``), read with its
tokenizer and value parser, never ``eval``: ``name`` or ``name(key=value, ...)`` where a
value is a number, a string, ``true``/``false``/``None`` or a list. Names are
``torch.optim`` class names in any case. The learning rate comes from the run (and the
schedule), so ``lr`` is not allowed in the spec.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from lrlab.schedules.spec import SpecError, _Parser

__all__ = ["OPTIMIZER_NAMES", "make_optimizer", "parse_optimizer"]

# Optimizers that cannot be driven by a plain ``optimizer.step()`` on dense gradients.
_EXCLUDED = {"lbfgs", "sparseadam"}


def _optimizer_classes() -> dict[str, type[torch.optim.Optimizer]]:
    found: dict[str, type[torch.optim.Optimizer]] = {}
    for name in dir(torch.optim):
        obj = getattr(torch.optim, name)
        if (
            inspect.isclass(obj)
            and issubclass(obj, torch.optim.Optimizer)
            and obj is not torch.optim.Optimizer
            and name.lower() not in _EXCLUDED
        ):
            found[name.lower()] = obj
    return dict(sorted(found.items()))


_CLASSES = _optimizer_classes()
OPTIMIZER_NAMES: tuple[str, ...] = tuple(_CLASSES)


def parse_optimizer(spec: str) -> tuple[str, dict[str, Any]]:
    """``"adam(betas=[0.9, 0.99])"`` -> ``("adam", {"betas": (0.9, 0.99)})``; validates the name
    and the keyword names against the torch class."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(
            f"an optimizer spec must be a non-empty string such as 'sgd(momentum=0.9)', got {spec!r}"
        )
    parser = _Parser(spec)
    kind, name, pos = parser.take()
    if kind != "name":
        raise SpecError("an optimizer spec starts with a name such as sgd or adam", spec, pos)
    key = name.lower()
    if key not in _CLASSES:
        raise SpecError(f"unknown optimizer {name!r} (known: {', '.join(OPTIMIZER_NAMES)})", spec, pos)
    allowed = [p for p in inspect.signature(_CLASSES[key]).parameters if p not in ("self", "params", "lr")]
    kwargs: dict[str, Any] = {}
    if parser.peek()[1] == "(":
        parser.take()
        while parser.peek()[1] != ")":
            arg_kind, arg, arg_pos = parser.take()
            if arg_kind != "name" or parser.peek()[1] != "=":
                raise SpecError("optimizer arguments are written key=value", spec, arg_pos)
            parser.take()
            if arg == "lr":
                raise SpecError(
                    "lr comes from the run's lr and schedule, not the optimizer spec", spec, arg_pos
                )
            if arg not in allowed:
                raise SpecError(
                    f"{key}() has no parameter {arg!r} (parameters: {', '.join(allowed)})", spec, arg_pos
                )
            if arg in kwargs:
                raise SpecError(f"{key}() got {arg!r} twice", spec, arg_pos)
            value = parser.value()
            kwargs[arg] = tuple(value) if isinstance(value, list) else value
            sep_kind, sep, sep_pos = parser.peek()
            if sep not in (",", ")") or sep_kind == "string":
                found = "the end" if sep_kind == "end" else repr(sep)
                raise SpecError(f"expected ',' or ')', found {found}", spec, sep_pos)
            if sep == ",":
                parser.take()
        parser.expect(")")
    end_kind, end, end_pos = parser.peek()
    if end_kind != "end":
        raise SpecError(f"unexpected {end!r} after the optimizer", spec, end_pos)
    return key, kwargs


def make_optimizer(spec: str, params: Any, lr: float) -> torch.optim.Optimizer:
    """Build the optimizer ``spec`` over ``params`` (tensors or param-group dicts).

    Param groups that carry their own ``lr`` keep it; ``lr`` is the default.

    >>> model = torch.nn.Linear(2, 1)
    >>> opt = make_optimizer("sgd(momentum=0.9, nesterov=true)", model.parameters(), lr=0.1)
    >>> type(opt).__name__, opt.param_groups[0]["momentum"], opt.param_groups[0]["nesterov"]
    ('SGD', 0.9, True)
    """
    key, kwargs = parse_optimizer(spec)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr >= 0:
        raise ValueError(f"lr must be a number >= 0, got {lr!r}")
    try:
        return _CLASSES[key](params, lr=float(lr), **kwargs)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad optimizer spec {spec!r}: {exc}") from None
