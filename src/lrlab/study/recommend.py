"""The study's verdict: the best optimizer + schedule + LR, with its margins. Pure functions
of stored records."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lrlab.experiments.records import EpochRecord, RunRecord


@dataclass(frozen=True)
class Candidate:
    """One configuration of the study (its runs differ only in seed) and its score."""

    optimizer: str
    schedule: str
    schedule_name: str
    lr: float
    score: float
    accuracy: float | None
    val_loss: float | None
    seeds: int
    run_ids: tuple[str, ...]


@dataclass(frozen=True)
class Recommendation:
    """The best candidate, the runner-up and the best constant-LR candidate.

    ``metric`` is ``val_error`` for classifiers (lower is better) and ``val_loss`` for
    language models; margins are in that metric (positive: the best is better).
    """

    metric: str
    best: Candidate
    runner_up: Candidate | None
    best_constant: Candidate | None
    candidates: tuple[Candidate, ...]
    diverged: int

    @property
    def margin_over_runner_up(self) -> float | None:
        return None if self.runner_up is None else self.runner_up.score - self.best.score

    @property
    def margin_over_constant(self) -> float | None:
        return None if self.best_constant is None else self.best_constant.score - self.best.score


def _final(epochs: Sequence[EpochRecord], name: str) -> float | None:
    for record in reversed(epochs):
        value = getattr(record, name)
        if value is not None and math.isfinite(value):
            return float(value)
    return None


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def recommend(
    runs: Sequence[RunRecord],
    epochs: Mapping[str, Sequence[EpochRecord]],
    schedule_names: Mapping[str, str] | None = None,
) -> Recommendation:
    """Score every configuration by its mean final validation metric over finished seeds.

    ``schedule_names`` maps a schedule spec to a short name (``"cosine"``); a spec missing
    from it is named by its family. Raises ``ValueError`` when no run finished.
    """
    names = dict(schedule_names or {})
    finished = [r for r in runs if r.status == "done"]
    if not finished:
        raise ValueError(f"no finished runs to recommend from ({len(runs)} runs, none done)")
    classify = any(_final(epochs.get(r.id, ()), "val_error") is not None for r in finished)
    metric = "val_error" if classify else "val_loss"
    groups: dict[tuple[str, str, float], list[RunRecord]] = {}
    for run in finished:
        key = (str(run.config["optimizer"]), str(run.config["schedule"]), float(run.config["lr"]))
        groups.setdefault(key, []).append(run)
    candidates = []
    for (optimizer, schedule, lr), members in groups.items():
        scores = [_final(epochs.get(r.id, ()), metric) for r in members]
        score = _mean(scores)
        if score is None:
            continue
        accuracy = _mean([_final(epochs.get(r.id, ()), "val_accuracy") for r in members])
        val_loss = _mean([_final(epochs.get(r.id, ()), "val_loss") for r in members])
        name = names.get(schedule, schedule.split("(", 1)[0])
        ids = tuple(r.id for r in members)
        candidates.append(
            Candidate(optimizer, schedule, name, lr, score, accuracy, val_loss, len(members), ids)
        )
    if not candidates:
        raise ValueError(f"no finished run reported {metric}")
    # Ties (common for error rates on small validation sets) go to the lower validation loss.
    candidates.sort(key=lambda c: (c.score, c.val_loss if c.val_loss is not None else math.inf))
    constants = [c for c in candidates if c.schedule.startswith("constant(")]
    return Recommendation(
        metric=metric,
        best=candidates[0],
        runner_up=candidates[1] if len(candidates) > 1 else None,
        best_constant=constants[0] if constants and constants[0] is not candidates[0] else None,
        candidates=tuple(candidates),
        diverged=sum(1 for r in runs if r.status == "diverged"),
    )
