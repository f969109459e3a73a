"""Optimizer param groups for fine-tuning: discriminative learning rates.

Caffe's recipe for fine-tuning: lower the solver's ``base_lr`` and raise ``lr_mult`` on
the new layers, so that the pretrained network changes slowly while the new head learns
fast (rule of thumb: new layers at least 10x the rest). Here every param group carries an
``lr_mult``; :class:`lrlab.torch.LRScheduler` gives each group ``schedule(t) * lr_mult``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from lrlab.finetune._patterns import (
    check_patterns,
    matches,
    no_decay_match,
    top_level_layers,
    unmatched,
)

__all__ = ["ParamGroups", "ParamInfo", "param_groups"]


@dataclass(frozen=True)
class ParamInfo:
    """What :func:`param_groups` decided for one parameter."""

    name: str
    shape: tuple[int, ...]
    group: int
    lr_mult: float
    weight_decay: float | None  # None: the optimizer's own setting
    frozen: bool
    rule: str | None  # the rule pattern that set the multiplier, if any
    layer: str | None  # the layer group used for layer decay, if any


class ParamGroups(list[dict[str, Any]]):
    """A list of param-group dicts, ready for any ``torch.optim`` optimizer.

    Each dict has ``params``, ``names`` (qualified parameter names), ``lr``
    (``base_lr * lr_mult``), ``lr_mult`` and, unless the optimizer's own setting applies,
    ``weight_decay``. ``rows`` holds one :class:`ParamInfo` per parameter.
    """

    def __init__(self, groups: list[dict[str, Any]], rows: list[ParamInfo], base_lr: float) -> None:
        super().__init__(groups)
        self.rows = rows
        self.base_lr = base_lr

    def describe(self) -> str:
        """A plain-text table: every parameter with its group, multiplier, learning
        rate, weight decay, frozen flag and the rule or layer that decided it."""
        header = ("parameter", "shape", "group", "lr_mult", "lr", "weight_decay", "frozen", "why")
        body = [
            (
                r.name,
                "x".join(str(d) for d in r.shape) or "scalar",
                str(r.group),
                f"{r.lr_mult:g}",
                f"{self.base_lr * r.lr_mult:.4g}",
                "optimizer" if r.weight_decay is None else f"{r.weight_decay:g}",
                "yes" if r.frozen else "no",
                _why(r),
            )
            for r in self.rows
        ]
        widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *body]]
        lines.insert(1, "  ".join("-" * w for w in widths))
        frozen = sum(r.frozen for r in self.rows)
        lines.append(
            f"{len(self)} param groups, {len(self.rows)} parameters ({frozen} frozen), base_lr {self.base_lr:g}"
        )
        return "\n".join(lines)


def _why(row: ParamInfo) -> str:
    parts = []
    if row.rule is not None:
        parts.append(f"rule {row.rule}")
    if row.layer is not None:
        parts.append(f"layer {row.layer or '<root>'}")
    return ", ".join(parts) or "-"


def param_groups(
    model: nn.Module,
    base_lr: float,
    rules: Mapping[str, float] | None = None,
    layer_decay: float | None = None,
    freeze: Sequence[str] = (),
    weight_decay: float | None = None,
    no_decay: Sequence[str] = ("bias", "norm"),
    *,
    layers: Sequence[str] | None = None,
    keep_frozen: bool = True,
) -> ParamGroups:
    """Param groups with per-parameter learning-rate multipliers (Caffe's ``lr_mult``).

    A parameter's multiplier is ``rule_mult * layer_decay**depth_from_top``:

    - ``rules`` maps fnmatch patterns on qualified parameter names to multipliers
      (``{"head.*": 10.0}``); a pattern naming a module also matches everything inside
      it (``"head"`` is ``"head.*"``). Unmatched parameters get 1. A pattern that matches
      nothing, or a parameter matched by two patterns with different multipliers, is a
      ValueError naming them.
    - ``layer_decay`` in (0, 1] scales each layer group by ``layer_decay**depth`` where
      depth counts layer groups down from the output (the last one has depth 0). Layer
      groups are the model's top-level children that own parameters, input side first
      (parameters set on the model itself count as the first), or the patterns of
      ``layers``, input side first.
    - ``freeze`` patterns set ``requires_grad=False``. Frozen parameters (these and any
      that already had ``requires_grad=False``) stay in their groups, so that unfreezing
      them later (:class:`~lrlab.finetune.GradualUnfreezer`) makes them train with their
      multiplier; torch optimizers skip parameters whose ``grad`` is None. With
      ``keep_frozen=False`` they are left out of the groups altogether.
    - ``weight_decay`` is set on every group, except that parameters matched by
      ``no_decay`` (``"bias"``: biases, ``"norm"``: normalisation layers, or any pattern)
      get 0. With ``weight_decay=None`` the optimizer's own setting applies to the rest.

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential()
        >>> model.add_module("body", torch.nn.Linear(4, 8))
        >>> model.add_module("head", torch.nn.Linear(8, 2))
        >>> groups = param_groups(model, 0.01, rules={"head.*": 10.0}, weight_decay=1e-4)
        >>> [(g["names"], g["lr_mult"], g["weight_decay"]) for g in groups]
        [(['body.weight'], 1.0, 0.0001), (['body.bias'], 1.0, 0.0), (['head.weight'], 10.0, 0.0001), (['head.bias'], 10.0, 0.0)]
        >>> opt = torch.optim.SGD(groups, lr=0.01)
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    base_lr = _nonnegative("base_lr", base_lr)
    rules = _check_rules(rules)
    if layer_decay is not None:
        layer_decay = _nonnegative("layer_decay", layer_decay)
        if not 0 < layer_decay <= 1:
            raise ValueError(f"layer_decay must be in (0, 1], got {layer_decay!r}")
    freeze = check_patterns("freeze", freeze)
    no_decay = check_patterns("no_decay", no_decay)
    if weight_decay is not None:
        weight_decay = _nonnegative("weight_decay", weight_decay)

    named = list(model.named_parameters())
    if not named:
        raise ValueError(f"model {type(model).__name__} has no parameters")
    names = [n for n, _ in named]
    _no_dead_patterns("rules", list(rules), names)
    _no_dead_patterns("freeze", freeze, names)
    depth = _depths(model, names, layers) if layer_decay is not None else {}

    groups: dict[tuple[float, float | None], dict[str, Any]] = {}
    rows: list[ParamInfo] = []
    for name, param in named:
        if any(matches(name, p) for p in freeze):
            param.requires_grad_(False)
        frozen = not param.requires_grad
        if frozen and not keep_frozen:
            continue
        rule, rule_mult = _rule_for(name, rules)
        layer, layer_depth = depth.get(name, (None, 0))
        lr_mult = rule_mult * (layer_decay**layer_depth if layer_decay is not None else 1.0)
        decay = 0.0 if no_decay_match(model, name, no_decay) else weight_decay
        key = (lr_mult, decay)
        if key not in groups:
            groups[key] = {"params": [], "names": [], "lr": base_lr * lr_mult, "lr_mult": lr_mult}
            if decay is not None:
                groups[key]["weight_decay"] = decay
        group = groups[key]
        group["params"].append(param)
        group["names"].append(name)
        index = list(groups).index(key)
        rows.append(ParamInfo(name, tuple(param.shape), index, lr_mult, decay, frozen, rule, layer))
    return ParamGroups(list(groups.values()), rows, base_lr)


def _nonnegative(parameter: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{parameter} must be a finite number >= 0, got {value!r}")
    return float(value)


def _check_rules(rules: Mapping[str, float] | None) -> dict[str, float]:
    if rules is None:
        return {}
    if not isinstance(rules, Mapping):
        raise ValueError(f"rules must map name patterns to multipliers, got {rules!r}")
    out = {}
    for pattern, mult in rules.items():
        check_patterns("rules", [pattern])
        out[pattern] = _nonnegative(f"rules[{pattern!r}]", mult)
    return out


def _no_dead_patterns(parameter: str, patterns: list[str], names: list[str]) -> None:
    dead = unmatched(patterns, names)
    if dead:
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        raise ValueError(
            f"{parameter}: {', '.join(repr(p) for p in dead)} {'matches' if len(dead) == 1 else 'match'} "
            f"no parameter (the model has: {shown})"
        )


def _rule_for(name: str, rules: dict[str, float]) -> tuple[str | None, float]:
    hits = [(p, m) for p, m in rules.items() if matches(name, p)]
    if not hits:
        return None, 1.0
    if len({m for _, m in hits}) > 1:
        listed = " and ".join(f"{p!r} (x{m:g})" for p, m in hits)
        raise ValueError(f"rules: parameter {name!r} is matched by {listed} with different multipliers")
    return hits[0]


def _depths(model: nn.Module, names: list[str], layers: Sequence[str] | None) -> dict[str, tuple[str, int]]:
    """parameter name -> (layer group, depth counted from the output, 0 = last)."""
    if layers is None:
        found = top_level_layers(model)
    else:
        patterns = check_patterns("layers", layers)
        _no_dead_patterns("layers", patterns, names)
        found = [(p, [n for n in names if matches(n, p)]) for p in patterns]
        placed: dict[str, str] = {}
        for pattern, inside in found:
            for n in inside:
                if n in placed:
                    raise ValueError(f"layers: parameter {n!r} is in both {placed[n]!r} and {pattern!r}")
                placed[n] = pattern
        missing = [n for n in names if n not in placed]
        if missing:
            raise ValueError(f"layers: parameters {', '.join(map(repr, missing))} are in no layer")
    last = len(found) - 1
    return {n: (layer, last - i) for i, (layer, inside) in enumerate(found) for n in inside}
