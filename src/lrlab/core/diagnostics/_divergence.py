"""Diverged runs, and per family the peak LR where divergence starts."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from lrlab.core.diagnostics._common import Finding, display, family_key, peak_lr
from lrlab.core.grouping import Configuration


def divergence(
    configs: Sequence[Configuration], planned_steps: Mapping[str, int] | None = None
) -> list[Finding]:
    """Diverged runs, and per family (same everything but LR) the LR where divergence starts:
    the smallest diverged peak LR (the largest LR its schedule reached), next to the largest
    peak LR below it that never diverged."""
    families: dict[str, list[Configuration]] = {}
    for cfg in configs:
        families.setdefault(family_key(cfg), []).append(cfg)
    findings = []
    for members in families.values():
        bad = [c for c in members if c.diverged]
        if not bad:
            continue
        runs = [r for c in bad for r in c.diverged]
        peak = {c.key: peak_lr(c, planned_steps) for c in members}
        lrs_bad = sorted(peak[c.key] for c in bad)
        start = lrs_bad[0] if lrs_bad else None
        stable = [peak[c.key] for c in members if not c.diverged and (start is None or peak[c.key] < start)]
        largest_stable = max(stable) if stable else None
        steps = [r.diverged_step for r in runs if r.diverged_step is not None]
        numbers: dict[str, Any] = {
            "diverged_runs": len(runs),
            "runs": sum(len(c.runs) for c in members),
            "divergence_lr": start,
            "largest_stable_lr": largest_stable,
            "diverged_lrs": lrs_bad,
            "first_diverged_step": min(steps) if steps else None,
        }
        where = _family_words(members)
        message = f"{len(runs)} of {numbers['runs']} runs{where} diverged"
        if start is not None:
            message += f"; divergence starts at lr={display(start)}, the peak of its schedule"
            message += (
                f" (largest stable peak lr={display(largest_stable)})"
                if largest_stable is not None
                else " (no smaller peak LR in this sweep was stable)"
            )
        if steps:
            message += f"; the earliest blew up at step {min(steps)}"
        findings.append(
            Finding(
                "divergence",
                "warning",
                message + ".",
                numbers,
                tuple(c.label for c in bad),
                tuple(r.id for r in runs),
            )
        )
    return findings


_LR_VALUE = re.compile(r"\b\w*lr=[-+0-9.eE]+(, )?")


def _family_words(members: Sequence[Configuration]) -> str:
    """What the family shares, from its first label with every LR value taken out (a
    cycle's bounds too): ``with schedule=cyclic(step_size=38), optimizer=adam``."""
    rest = _LR_VALUE.sub("", members[0].label).replace("()", "").replace(", )", ")").strip(", ")
    return f" with {rest}" if rest and rest != "all runs" else ""
