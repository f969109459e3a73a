"""Which runs train together: runs whose configs differ only in ``lr``, ``schedule``,
``momentum`` and ``seed`` share an architecture and are stacked into one group."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

from lrlab.core.records import RunConfig
from lrlab.schedules.plateau import find_plateaus
from lrlab.training.vectorized.optim import supports

__all__ = ["DEFAULT_MAX_GROUP", "GROUP_AXES", "group_key", "plan_groups", "why_not_vectorized"]

GROUP_AXES = ("lr", "schedule", "momentum", "seed")
DEFAULT_MAX_GROUP = 32


class Plan(Protocol):
    id: str
    config: RunConfig


def why_not_vectorized(config: RunConfig) -> str | None:
    """``None`` when the run can join a vectorised group, else the reason."""
    if config.lr_mult:
        return "config key 'lr_mult' is not vectorised"
    if config.finetune:
        return "config key 'finetune' is not vectorised"
    if find_plateaus(config.schedule):
        # The stacked trainer evaluates each member's schedule at the step, with no metric:
        # a plateau would run as a constant. It trains alone, driven by its validation metric.
        return "a plateau(...) schedule is driven by each run's own metric, one run at a time"
    return supports(config.optimizer)


def group_key(config: RunConfig) -> str | None:
    """What members of a group share: the config without ``lr``, ``schedule``,
    ``momentum`` and ``seed`` (``None``: the run cannot be vectorised)."""
    if why_not_vectorized(config) is not None:
        return None
    return config.key(without=GROUP_AXES)


def _split(items: list[Any], max_group: int) -> list[list[Any]]:
    """Near-equal chunks of at most ``max_group`` (17 by 16 -> 9 + 8, not 16 + 1)."""
    chunks = math.ceil(len(items) / max_group)
    size, extra = divmod(len(items), chunks)
    out, start = [], 0
    for index in range(chunks):
        end = start + size + (1 if index < extra else 0)
        out.append(items[start:end])
        start = end
    return out


def plan_groups(
    plans: Sequence[Plan], max_group: int | None = DEFAULT_MAX_GROUP
) -> tuple[list[tuple[int, list[Plan]]], list[Plan]]:
    """Split runs into vectorised groups and runs trained alone.

    Returns ``(groups, alone)``: each group is ``(data_seed, members)`` with at least two
    members and at most ``max_group`` (a larger group is split into near-equal parts that
    keep the whole group's data seed, so every part sees the same batches); ``alone`` keeps
    the input order.
    """
    if max_group is not None and (
        isinstance(max_group, bool) or not isinstance(max_group, int) or max_group < 1
    ):
        raise ValueError(f"max_group must be an integer >= 1 or None, got {max_group!r}")
    by_key: dict[str, list[Plan]] = {}
    alone: list[Plan] = []
    for plan in plans:
        key = group_key(plan.config)
        if key is None:
            alone.append(plan)
        else:
            by_key.setdefault(key, []).append(plan)
    groups: list[tuple[int, list[Plan]]] = []
    for members in by_key.values():
        data_seed = min(p.config.seed for p in members)
        parts = _split(members, max_group) if max_group else [members]
        for part in parts:
            if len(part) >= 2:
                groups.append((data_seed, part))
            else:
                alone.extend(part)
    order = {id(p): i for i, p in enumerate(plans)}
    alone.sort(key=lambda p: order[id(p)])
    return groups, alone
