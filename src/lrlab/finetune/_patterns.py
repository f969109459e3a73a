"""Name patterns shared by param groups and the unfreezer.

A pattern is fnmatch-style (``*``, ``?``, ``[seq]``) and is matched against the
parameter's qualified name (``features.0.weight``). A pattern also matches every
parameter *inside* a module it names, so ``"head"`` is ``"head.*"``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase

from torch import nn

# Modules whose parameters are scales and shifts of a normalisation: no weight decay.
_NORM_TYPES: tuple[type[nn.Module], ...] = tuple(
    t
    for t in (
        getattr(nn.modules.batchnorm, "_NormBase", None),
        nn.LayerNorm,
        nn.GroupNorm,
        nn.LocalResponseNorm,
        getattr(nn, "RMSNorm", None),
    )
    if t is not None
)


def matches(name: str, pattern: str) -> bool:
    """True when parameter ``name`` matches ``pattern`` or lies inside the module it names."""
    return fnmatchcase(name, pattern) or fnmatchcase(name, pattern + ".*")


def check_patterns(parameter: str, patterns: object) -> list[str]:
    """``patterns`` as a list of non-empty strings, or a ValueError naming ``parameter``."""
    if isinstance(patterns, str):
        return [patterns]
    if not isinstance(patterns, Iterable):
        raise ValueError(f"{parameter} must be a list of name patterns, got {patterns!r}")
    out = list(patterns)
    for p in out:
        if not isinstance(p, str) or not p:
            raise ValueError(f"{parameter} must hold non-empty name patterns (strings), got {p!r}")
    return out


def unmatched(patterns: Sequence[str], names: Sequence[str]) -> list[str]:
    """The patterns of ``patterns`` that match none of ``names``."""
    return [p for p in patterns if not any(matches(n, p) for n in names)]


def top_level_layers(model: nn.Module) -> list[tuple[str, list[str]]]:
    """``(child name, its parameter names)`` for each top-level child that owns
    parameters, input side first. Parameters registered on ``model`` itself (position
    embeddings, class tokens) form a layer ``""`` placed first (deepest)."""
    names = [n for n, _ in model.named_parameters()]
    own = [n for n in names if "." not in n]
    layers: list[tuple[str, list[str]]] = [("", own)] if own else []
    for child, _ in model.named_children():
        inside = [n for n in names if n.startswith(child + ".")]
        if inside:
            layers.append((child, inside))
    return layers


def is_norm_parameter(model: nn.Module, name: str) -> bool:
    """True when ``name`` belongs to a normalisation layer (by type or by a module name
    containing ``norm``)."""
    module_name = name.rpartition(".")[0]
    if "norm" in module_name.lower():
        return True
    try:
        module = model.get_submodule(module_name) if module_name else model
    except AttributeError:
        return False
    return isinstance(module, _NORM_TYPES)


def no_decay_match(model: nn.Module, name: str, entries: Sequence[str]) -> bool:
    """True when one of ``entries`` exempts ``name`` from weight decay.

    ``"norm"`` means parameters of normalisation layers; any other entry matches the
    last part of the name (``"bias"`` matches ``conv1.bias``) or, as a pattern, the
    whole name.
    """
    leaf = name.rpartition(".")[2]
    for entry in entries:
        if entry == "norm" and is_norm_parameter(model, name):
            return True
        if leaf == entry or matches(name, entry):
            return True
    return False
