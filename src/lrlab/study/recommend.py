"""The study's verdict: the best optimizer + schedule + LR, with its margins.

Pure functions of stored records; the order comes from the one scorer,
:func:`lrlab.report.ranking.rank`, so the recommendation, the report and the CLI agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lrlab.report.ranking import Ranked, rank
from lrlab.schedules import Constant, Schedule
from lrlab.store.records import EpochRecord, RunRecord, RunStatus


@dataclass(frozen=True)
class Candidate:
    """One configuration of the study (its runs differ only in seed) and its score."""

    optimizer: str
    schedule: Schedule
    schedule_name: str
    lr: float
    score: float
    sd: float
    accuracy: float | None
    val_loss: float | None
    seeds: int
    run_ids: tuple[str, ...]

    @property
    def is_constant(self) -> bool:
        return isinstance(self.schedule, Constant)


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


def _candidate(entry: Ranked, names: Mapping[Schedule, str]) -> Candidate:
    config = entry.config
    return Candidate(
        optimizer=config.optimizer,
        schedule=config.schedule,
        schedule_name=names.get(config.schedule, config.schedule.name),
        lr=config.lr,
        score=entry.mean,
        sd=entry.sd,
        accuracy=entry.accuracy,
        val_loss=entry.val_loss,
        seeds=entry.seeds,
        run_ids=entry.run_ids,
    )


def recommend(
    runs: Sequence[RunRecord],
    epochs: Mapping[str, Sequence[EpochRecord]],
    schedule_names: Mapping[Schedule, str] | None = None,
) -> Recommendation:
    """Rank every configuration (:func:`~lrlab.report.ranking.rank`) and name the best.

    ``schedule_names`` maps a schedule to a short name (``"cosine"``); a schedule missing
    from it is named by its family. Raises ``ValueError`` when no run finished.
    """
    names = dict(schedule_names or {})
    finished = [r for r in runs if r.status is RunStatus.DONE]
    if not finished:
        raise ValueError(f"no finished runs to recommend from ({len(runs)} runs, none done)")
    ranked = rank(finished, epochs)
    if not ranked:
        raise ValueError("no finished run reported a validation metric")
    candidates = [_candidate(entry, names) for entry in ranked]
    constants = [c for c in candidates if c.is_constant]
    return Recommendation(
        metric=ranked[0].metric,
        best=candidates[0],
        runner_up=candidates[1] if len(candidates) > 1 else None,
        best_constant=constants[0] if constants and constants[0] is not candidates[0] else None,
        candidates=tuple(candidates),
        diverged=sum(1 for r in runs if r.status is RunStatus.DIVERGED),
    )
