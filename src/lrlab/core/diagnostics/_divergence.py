"""Diverged runs, and per family the peak LR where divergence starts."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from lrlab.core.diagnostics._common import Finding, display, family_key, peak_lr
from lrlab.core.grouping import Configuration
from lrlab.core.records import RunRecord


def divergence(
    configs: Sequence[Configuration], planned_steps: Mapping[str, int] | None = None
) -> list[Finding]:
    """Diverged runs, and per family (same everything but LR) the LR where divergence starts:
    the smallest diverged peak LR (the largest LR its schedule reached), next to the largest
    peak LR below it that never diverged."""
    families: dict[str, list[Configuration]] = {}
    for cfg in configs:
        families.setdefault(family_key(cfg), []).append(cfg)
    findings = [_family_divergence(members, planned_steps) for members in families.values()]
    return [f for f in findings if f is not None]


def _family_divergence(members: Sequence[Configuration], planned_steps: Mapping[str, int] | None) -> Finding | None:
    """The finding of one family (same everything but LR), None when none of it diverged."""
    bad = [c for c in members if c.diverged]
    if not bad:
        return None
    runs = [r for c in bad for r in c.diverged]
    numbers = _numbers(members, bad, runs, planned_steps)
    message = (
        f"{len(runs)} of {numbers['runs']} runs{_family_words(members)} diverged"
        f"; divergence starts at lr={display(numbers['divergence_lr'])}, the peak of its schedule"
    )
    largest_stable = numbers["largest_stable_lr"]
    message += (
        f" (largest stable peak lr={display(largest_stable)})"
        if largest_stable is not None
        else " (no smaller peak LR in this sweep was stable)"
    )
    if numbers["first_diverged_step"] is not None:
        message += f"; the earliest blew up at step {numbers['first_diverged_step']}"
    return Finding(
        "divergence", "warning", message + ".", numbers, tuple(c.label for c in bad), tuple(r.id for r in runs)
    )


def _numbers(
    members: Sequence[Configuration],
    bad: Sequence[Configuration],
    runs: Sequence[RunRecord],
    planned_steps: Mapping[str, int] | None,
) -> dict[str, Any]:
    """The family's divergence in numbers: the smallest diverged peak LR, the largest stable
    one below it, the earliest step that blew up."""
    peak = {c.key: peak_lr(c, planned_steps) for c in members}
    lrs_bad = sorted(peak[c.key] for c in bad)
    stable = [peak[c.key] for c in members if not c.diverged and peak[c.key] < lrs_bad[0]]
    steps = [r.diverged_step for r in runs if r.diverged_step is not None]
    return {
        "diverged_runs": len(runs),
        "runs": sum(len(c.runs) for c in members),
        "divergence_lr": lrs_bad[0],
        "largest_stable_lr": max(stable) if stable else None,
        "diverged_lrs": lrs_bad,
        "first_diverged_step": min(steps) if steps else None,
    }


_LR_VALUE = re.compile(r"\b\w*lr=[-+0-9.eE]+(, )?")


def _family_words(members: Sequence[Configuration]) -> str:
    """What the family shares, from its first label with every LR value taken out (a
    cycle's bounds too): ``with schedule=cyclic(step_size=38), optimizer=adam``."""
    rest = _LR_VALUE.sub("", members[0].label).replace("()", "").replace(", )", ")").strip(", ")
    return f" with {rest}" if rest and rest != "all runs" else ""
