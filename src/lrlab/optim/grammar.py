"""The one optimizer grammar: ``"sgd(momentum=0.9, nesterov=true)"``, ``"adam(betas=[0.9, 0.99])"``.

Sweeps, studies, the finder, codegen and surfaces all read optimizers here. The grammar
is the schedule spec grammar (``lrlab.schedules.spec``), read with its tokenizer and value
parser, never ``eval``: ``name`` or ``name(key=value, ...)`` where a value is a number, a
string, ``true``/``false``/``None`` or a list ``[0.9, 0.99]``. A name is, in any case:

- a ``torch.optim`` optimizer by its lower-case class name (all but ``SparseAdam``, which
  takes sparse gradients only), or lrlab's ``deltabardelta`` / ``adagradmean``
  (:class:`~lrlab.optim.DeltaBarDelta`, :class:`~lrlab.optim.AdaGradMean`);
- an LR-free optimizer (:data:`~lrlab.optim.lr_free.LR_FREE`): ``schedulefree_adamw``,
  ``schedulefree_sgd``, ``prodigy``, ``dadapt_adam``, ``dadapt_sgd``, present when its
  package is installed (``pip install lrlab[lrfree]``); a spec naming one whose package is
  missing says which to install. Their contract with a loop is in :mod:`lrlab.optim.lr_free`;
- an alias of :data:`OPTIMIZER_ALIASES` (``sgdm`` -> ``sgd(momentum=0.9)``); arguments
  written after an alias override its own: ``nesterov(lr=0.05, momentum=0.8)``. The table
  is written once, torch-free, in :mod:`lrlab.core.grammar` (the core reads specs too).

Where a spec is used decides two things, the caller says which:

- ``lr``: a run takes its learning rate from the run's ``lr`` and schedule, so ``lr`` in a
  spec is an error by default; surfaces give each optimizer its own (``allow_lr=True``).
- ``lbfgs`` calls ``optimizer.step(closure)`` to re-evaluate the loss, which training
  loops do not pass; only callers that do accept it (``allow_closure=True``).

Example:
    >>> parse_optimizer("nesterov")
    ('sgd', {'momentum': 0.9, 'nesterov': True})
    >>> parse_optimizer("adam(lr=0.1, betas=[0.8, 0.99])", allow_lr=True)
    ('adam', {'lr': 0.1, 'betas': (0.8, 0.99)})
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from lrlab.core.grammar import OPTIMIZER_ALIASES
from lrlab.optim.adagrad_mean import AdaGradMean
from lrlab.optim.delta_bar_delta import DeltaBarDelta
from lrlab.optim.lr_free import LR_FREE_OPTIMIZERS, installed_classes, is_schedule_free, missing_package
from lrlab.schedules.spec import SpecError, _Parser

__all__ = [
    "NEEDS_CLOSURE",
    "OPTIMIZER_ALIASES",
    "OPTIMIZER_CLASSES",
    "OPTIMIZER_NAMES",
    "accepted_arguments",
    "make_optimizer",
    "optimizer_key",
    "parse_optimizer",
    "resolve_optimizer",
]

# Takes sparse gradients only: no dense parameter can be trained with it.
_SPARSE_ONLY = {"sparseadam"}

NEEDS_CLOSURE = frozenset({"lbfgs"})
"""Optimizers whose ``step`` needs a closure that re-evaluates the loss."""


def _optimizer_classes() -> dict[str, type[torch.optim.Optimizer]]:
    found: dict[str, type[torch.optim.Optimizer]] = {}
    for name in dir(torch.optim):
        obj = getattr(torch.optim, name)
        if (
            inspect.isclass(obj)
            and issubclass(obj, torch.optim.Optimizer)
            and obj is not torch.optim.Optimizer
            and name.lower() not in _SPARSE_ONLY
        ):
            found[name.lower()] = obj
    found["adagradmean"] = AdaGradMean
    found["deltabardelta"] = DeltaBarDelta
    found.update(installed_classes())
    return dict(sorted(found.items()))


OPTIMIZER_CLASSES: dict[str, type[torch.optim.Optimizer]] = _optimizer_classes()
"""Every optimizer class the grammar knows, by lower-case class name (an LR-free one by
its grammar name, e.g. ``prodigy``, when its package is installed)."""

OPTIMIZER_NAMES: tuple[str, ...] = tuple(n for n in OPTIMIZER_CLASSES if n not in NEEDS_CLOSURE)
"""The class names a training loop can drive (every class but those needing a closure)."""

def resolve_optimizer(name: str) -> str:
    """An alias (``sgdm``) -> its spec (``"sgd(momentum=0.9)"``); any other spec unchanged.

    >>> resolve_optimizer("sgdm"), resolve_optimizer("sgd(momentum=0.95)")
    ('sgd(momentum=0.9)', 'sgd(momentum=0.95)')
    """
    key = name.strip()
    return OPTIMIZER_ALIASES.get(key.lower(), key)


def optimizer_key(spec: str) -> str:
    """A short name for an optimizer spec, usable in a sweep name: the first alias whose
    spec it is, else the spec with every run of other characters turned into ``-``.

    >>> optimizer_key("sgd(momentum=0.9)"), optimizer_key("sgd"), optimizer_key("adam(eps=1e-06)")
    ('sgdm', 'sgd', 'adam-eps-1e-06')
    """
    for alias, full in OPTIMIZER_ALIASES.items():
        # A bare class name is its own short name (not "gd" for "sgd").
        if full == spec and full not in OPTIMIZER_CLASSES:
            return alias
    return "".join(c if c.isalnum() else "-" for c in spec).strip("-").replace("--", "-")


def accepted_arguments(name: str, *, allow_lr: bool = False) -> tuple[str, ...]:
    """The keyword arguments optimizer ``name`` (a class name) takes in a spec."""
    parameters = inspect.signature(OPTIMIZER_CLASSES[name]).parameters
    skipped = {"self", "params"} | (set() if allow_lr else {"lr"})
    return tuple(p for p in parameters if p not in skipped and not p.startswith("_"))


def parse_optimizer(
    spec: str, *, allow_lr: bool = False, allow_closure: bool = False
) -> tuple[str, dict[str, Any]]:
    """``"adam(betas=[0.9, 0.99])"`` -> ``("adam", {"betas": (0.9, 0.99)})``.

    The name is resolved (aliases included) to a class name and the keyword names are
    checked against that class's constructor; lists become tuples. Raises
    :class:`~lrlab.schedules.SpecError` (a ``ValueError``) naming the problem and its position.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(
            f"an optimizer spec must be a non-empty string such as 'sgd(momentum=0.9)', got {spec!r}"
        )
    return _parse(spec, allow_lr=allow_lr, allow_closure=allow_closure, aliases=True)


def _parse(spec: str, *, allow_lr: bool, allow_closure: bool, aliases: bool) -> tuple[str, dict[str, Any]]:
    parser = _Parser(spec)
    kind, name, pos = parser.take()
    if kind != "name":
        raise SpecError("an optimizer spec starts with a name such as sgd or adam", spec, pos)
    key, kwargs = _resolve_name(name, spec, pos, allow_closure=allow_closure, aliases=aliases)
    given = _arguments(parser, key, allow_lr=allow_lr) if parser.peek()[1] == "(" else {}
    end_kind, end, end_pos = parser.peek()
    if end_kind != "end":
        raise SpecError(f"unexpected {end!r} after the optimizer", spec, end_pos)
    return key, {**kwargs, **given}


def _resolve_name(
    name: str, spec: str, pos: int, *, allow_closure: bool, aliases: bool
) -> tuple[str, dict[str, Any]]:
    lowered = name.lower()
    if aliases and lowered in OPTIMIZER_ALIASES:
        # Alias specs name classes, so reading them without aliases cannot loop.
        return _parse(OPTIMIZER_ALIASES[lowered], allow_lr=False, allow_closure=True, aliases=False)
    if lowered in NEEDS_CLOSURE and not allow_closure:
        raise SpecError(
            f"{lowered} re-evaluates the loss through optimizer.step(closure), which a training loop "
            "does not pass (it runs on error surfaces: lrlab surface)",
            spec,
            pos,
        )
    if lowered not in OPTIMIZER_CLASSES and lowered in LR_FREE_OPTIMIZERS:
        entry = LR_FREE_OPTIMIZERS[lowered]
        if missing_package(lowered):
            why = f"needs the {entry.package} package (pip install {entry.package})"
        else:  # installed, but a version without the class
            why = f"needs {entry.package}.{entry.class_name} (pip install -U {entry.package})"
        raise SpecError(f"{lowered} {why}", spec, pos)
    if lowered not in OPTIMIZER_CLASSES:
        known = OPTIMIZER_NAMES if not allow_closure else tuple(OPTIMIZER_CLASSES)
        extra = sorted(a for a in OPTIMIZER_ALIASES if a not in OPTIMIZER_CLASSES)
        raise SpecError(
            f"unknown optimizer {name!r} (known: {', '.join(known)}; aliases: {', '.join(extra)})", spec, pos
        )
    return lowered, {}


def _arguments(parser: _Parser, key: str, *, allow_lr: bool) -> dict[str, Any]:
    spec = parser.spec
    allowed = accepted_arguments(key, allow_lr=allow_lr)
    kwargs: dict[str, Any] = {}
    parser.expect("(")
    while parser.peek()[1] != ")":
        arg_kind, arg, arg_pos = parser.take()
        if arg_kind != "name" or parser.peek()[1] != "=":
            raise SpecError("optimizer arguments are written key=value", spec, arg_pos)
        parser.take()
        if arg == "lr" and not allow_lr:
            raise SpecError("lr comes from the run's lr and schedule, not the optimizer spec", spec, arg_pos)
        if arg not in allowed:
            raise SpecError(
                f"{key}() has no parameter {arg!r} (parameters: {', '.join(allowed)})", spec, arg_pos
            )
        if arg in kwargs:
            raise SpecError(f"{key}() got {arg!r} twice", spec, arg_pos)
        value_pos = parser.peek()[2]
        kwargs[arg] = _plain(parser.value(), f"{key}() argument {arg!r}", spec, value_pos)
        sep_kind, sep, sep_pos = parser.peek()
        if sep not in (",", ")") or sep_kind == "string":
            found = "the end" if sep_kind == "end" else repr(sep)
            raise SpecError(f"expected ',' or ')', found {found}", spec, sep_pos)
        if sep == ",":
            parser.take()
    parser.expect(")")
    return kwargs


def _plain(value: Any, what: str, spec: str, pos: int) -> Any:
    """A value an optimizer can take: numbers, strings, booleans, None, tuples of them (the
    schedule grammar would also read a schedule here)."""
    if isinstance(value, list):
        return tuple(_plain(v, what, spec, pos) for v in value)
    if not (value is None or isinstance(value, (bool, int, float, str))):
        raise SpecError(f"{what} must be a number, a string, true/false, None or a list", spec, pos)
    return value


def make_optimizer(
    spec: str,
    params: Any,
    lr: float | None = None,
    *,
    allow_lr: bool = False,
    allow_closure: bool = False,
) -> torch.optim.Optimizer:
    """Build the optimizer ``spec`` over ``params`` (tensors or param-group dicts).

    ``lr`` is the default learning rate: a param group with its own ``lr`` keeps it, and so
    does a spec that gives one (with ``allow_lr``); ``None`` leaves the class's default.
    Torch's own argument errors become one-line ``ValueError``\\ s naming the spec.

    The optimizer comes back ready to step: a schedule-free one in its train mode (its
    library builds it in eval mode and refuses to step there). Evaluating, and saving,
    still need ``optimizer.eval()`` first: see :mod:`lrlab.optim.lr_free`.

    >>> model = torch.nn.Linear(2, 1)
    >>> opt = make_optimizer("sgd(momentum=0.9, nesterov=true)", model.parameters(), lr=0.1)
    >>> type(opt).__name__, opt.param_groups[0]["momentum"], opt.param_groups[0]["nesterov"]
    ('SGD', 0.9, True)
    >>> make_optimizer("nesterov(lr=0.05)", model.parameters(), allow_lr=True).param_groups[0]["lr"]
    0.05
    """
    key, kwargs = parse_optimizer(spec, allow_lr=allow_lr, allow_closure=allow_closure)
    if lr is not None:
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr >= 0:
            raise ValueError(f"lr must be a number >= 0, got {lr!r}")
        kwargs.setdefault("lr", float(lr))
    try:
        optimizer = OPTIMIZER_CLASSES[key](params, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad optimizer spec {spec!r}: {exc}") from None
    if is_schedule_free(optimizer):
        optimizer.train()
    return optimizer
