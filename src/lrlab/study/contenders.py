"""The study's LR-free contenders (schedule-free optimizers, Prodigy, D-Adaptation): the best
configuration of each promoted to every seed when it missed the cut, and what the store says
of them for the verdict (their optimizer steps against the whole study's, each estimator's
path of its own LR)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lrlab.core.records import FinderRecord, RunRecord, RunStatus
from lrlab.store.sqlite import Store
from lrlab.study.recommend import Recommendation
from lrlab.study.summary import EstimatePath, LrFreeEvidence, estimate_path, lr_free_family

__all__ = ["contenders", "lr_free_evidence", "range_test_steps"]


def contenders(runs: Sequence[RunRecord], epochs_by_run: Any, chosen: Sequence[RunRecord]) -> list[RunRecord]:
    """The first-rung run of the best configuration of each LR-free optimizer none of whose
    configurations is among ``chosen`` (the finalists): promoted to every seed as well, so
    that the verdict can judge it against the recommendation within the paired seed noise."""
    from lrlab.core.ranking import rank

    finished = [r for r in runs if r.status is RunStatus.DONE]
    present = {r.config.optimizer for r in chosen}
    out: list[RunRecord] = []
    for spec in dict.fromkeys(r.config.optimizer for r in finished):
        if spec in present or lr_free_family(spec) is None:
            continue
        ranked = rank([r for r in finished if r.config.optimizer == spec], epochs_by_run)
        if ranked:
            out.append(ranked[0].runs[0])
    return out


def range_test_steps(finder: FinderRecord) -> int:
    """The optimizer steps a range test took (its recorded iterations, else its curve's points)."""
    iterations = finder.config.get("iterations_run")
    return int(iterations) if iterations is not None else len(finder.lrs)


def lr_free_evidence(
    store: Store,
    specs: Sequence[str],
    runs: Sequence[RunRecord],
    finders: dict[str, FinderRecord],
    rec: Recommendation,
    promoted: set[str],
) -> LrFreeEvidence:
    """What the store says of the study's LR-free optimizers: the optimizer steps of each and
    of the whole study (runs as stored, range tests included), and each estimator's path on
    its best configuration's first seed."""
    steps = {r.id: store.step_count(r.id) for r in runs}
    by_spec = {spec: sum(steps[r.id] for r in runs if r.config.optimizer == spec) for spec in specs}
    for spec in specs:
        if spec in finders:
            by_spec[spec] += range_test_steps(finders[spec])
    study_steps = sum(steps.values()) + sum(range_test_steps(f) for f in finders.values())
    estimates: dict[str, EstimatePath] = {}
    for spec in specs:
        cand = next((c for c in rec.candidates if c.optimizer == spec and c.seeds > 0), None)
        if lr_free_family(spec) != "estimator" or cand is None:
            continue
        first = min((r for r in runs if r.id in cand.run_ids), key=lambda r: r.config.seed)
        series = store.steps(first.id)
        path = estimate_path(series.lr, cand.schedule(series.step.astype(float)), first.config.seed)
        if path is not None:
            estimates[spec] = path
    return LrFreeEvidence(study_steps, by_spec, estimates, frozenset(promoted))
