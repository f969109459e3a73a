"""The study's verdict: the best optimizer + schedule + LR, with its margins and its noise.

Pure functions of stored records; the order comes from the one scorer,
:func:`lrlab.core.ranking.rank`, so the recommendation, the report and the CLI agree.

A study trains in two rungs (successive halving): every configuration with one seed, then
the best of them (the *finalists*) with more seeds. The winner is the best finalist by its
mean over seeds. Its margin over the runner-up is compared with the *paired* seed noise:
seed ``s`` of both configurations sees the same batches and the same initial weights, so the
noise of the margin is the standard error of the per-seed differences,
``sd(d_s) / sqrt(n)``. A margin within :data:`NOISE_SE` standard errors is a tie, and a
tie goes to the simpler configuration (:func:`simplicity`).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from lrlab.core.ranking import Ranked, final_metric, rank
from lrlab.core.records import EpochRecord, RunRecord, RunStatus
from lrlab.core.verdict import NOISE_SE, TIE_RULE
from lrlab.formatting import num
from lrlab.schedules import Constant, Schedule

__all__ = [
    "NOISE_SE",
    "SIMPLER",
    "TIE_RULE",
    "Candidate",
    "Recommendation",
    "paired_noise",
    "recommend",
    "rounded_margin",
    "simplicity",
]

SIMPLER = (
    "constant", "cosine", "exponential", "step", "warmup-cosine", "one-cycle",
    "triangular", "triangular2", "sine-decay",
)  # fmt: skip
"""The study's schedules from the fewest knobs to the most: constant has one (the LR),
cosine two (LR, length), exponential and step a decay rate too, warmup-cosine a warmup,
one-cycle a peak, a rise and a floor; the cyclic ones bounds and a cycle length, and
triangular2 and sine-decay a per-cycle decay on top."""


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
    per_seed: tuple[tuple[int, float], ...] = ()
    finalist: bool = True
    diverged: int = 0  # seeds of this configuration whose run diverged (not in score, sd or per_seed)

    @property
    def is_constant(self) -> bool:
        return isinstance(self.schedule, Constant)


def simplicity(candidate: Candidate) -> tuple[int, int, float, float]:
    """The tie-break key, smaller is simpler and steadier: the seeds that diverged (a
    configuration's score is the mean of the seeds that finished, so it says nothing of
    them), the schedule's place in :data:`SIMPLER` (unknown names last), then the sd over
    seeds, then the LR."""
    name = candidate.schedule_name
    place = SIMPLER.index(name) if name in SIMPLER else len(SIMPLER)
    return candidate.diverged, place, candidate.sd, candidate.lr


def paired_noise(a: Candidate, b: Candidate) -> tuple[float, float, int]:
    """``(mean difference b - a, its standard error, n)`` over the seeds both trained.

    The standard error is ``sd(differences, ddof=1) / sqrt(n)``; NaN with fewer than two
    shared seeds (the noise cannot be estimated)."""
    first, second = dict(a.per_seed), dict(b.per_seed)
    shared = sorted(set(first) & set(second))
    diffs = np.asarray([second[s] - first[s] for s in shared], dtype=float)
    if len(diffs) == 0:
        return b.score - a.score, math.nan, 0
    se = float(diffs.std(ddof=1) / math.sqrt(len(diffs))) if len(diffs) > 1 else math.nan
    return float(diffs.mean()), se, len(diffs)


@dataclass(frozen=True)
class Recommendation:
    """The recommended candidate, the runner-up, the best constant-LR candidate, and noise.

    ``metric`` is the task's objective (``val_error`` for classifiers, ``val_loss`` for
    language models and regression); ``higher_is_better`` its direction. Margins are in that
    metric, positive when ``top`` (the best-scored finalist) is better. ``noise`` is
    :data:`NOISE_SE` paired standard errors of the margin (NaN: fewer than two shared seeds).
    When the margin is within a known noise, ``tie`` is true and ``best`` is the simpler of
    the two (:data:`TIE_RULE`), so it may be the second-scored; ``runner_up`` is then the other.
    When the top two reach the very same objective on every shared seed (a saturated metric:
    every finalist at 0% validation error), the objective cannot tell them apart and the
    noise is 0: ``saturated`` is true and ``best`` is the one of lower validation loss.
    """

    metric: str
    best: Candidate
    runner_up: Candidate | None
    best_constant: Candidate | None
    candidates: tuple[Candidate, ...]
    diverged: int
    higher_is_better: bool = False
    top: Candidate | None = None
    margin: float | None = None
    noise: float = math.nan
    shared_seeds: int = 0
    tie: bool = False
    saturated: bool = False

    def _better_by(self, worse: Candidate, better: Candidate) -> float:
        sign = -1.0 if self.higher_is_better else 1.0
        return sign * (worse.score - better.score)

    @property
    def margin_over_runner_up(self) -> float | None:
        """``best``'s score advantage over ``runner_up`` (negative when a tie went to the
        simpler, second-scored configuration)."""
        return None if self.runner_up is None else self._better_by(self.runner_up, self.best)

    @property
    def margin_over_constant(self) -> float | None:
        return None if self.best_constant is None else self._better_by(self.best_constant, self.best)

    @property
    def noise_known(self) -> bool:
        """False when the top two share fewer than two seeds (no noise estimate)."""
        return math.isfinite(self.noise)


def _per_seed(entry: Ranked, epochs: Mapping[str, Sequence[EpochRecord]]) -> tuple[tuple[int, float], ...]:
    out = []
    for run in entry.runs:
        value = final_metric(epochs.get(run.id, ()), entry.metric)
        if value is not None:
            out.append((int(run.config.seed), value))
    return tuple(sorted(out))


def _candidate(
    entry: Ranked, names: Mapping[Schedule, str], epochs: Mapping[str, Sequence[EpochRecord]], finalist: bool
) -> Candidate:
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
        per_seed=_per_seed(entry, epochs),
        finalist=finalist,
        diverged=entry.diverged,
    )


def recommend(
    runs: Sequence[RunRecord],
    epochs: Mapping[str, Sequence[EpochRecord]],
    schedule_names: Mapping[Schedule, str] | None = None,
    *,
    finalists: Collection[str] | None = None,
    break_ties: bool = False,
) -> Recommendation:
    """Rank every configuration (:func:`~lrlab.core.ranking.rank`) and name the best.

    ``schedule_names`` maps a schedule to a short name (``"cosine"``); a schedule missing
    from it is named by its family. ``finalists`` (configuration keys,
    ``RunRecord.configuration``) are the configurations of the last halving rung: they are
    ranked first, among themselves, and the winner is one of them; the others follow in
    their own order. With ``break_ties`` a margin within the paired seed noise goes to the
    simpler of the two (:data:`TIE_RULE`). Raises ``ValueError`` when no run finished.
    """
    names = dict(schedule_names or {})
    if not any(r.status is RunStatus.DONE for r in runs):
        raise ValueError(f"no finished runs to recommend from ({len(runs)} runs, none done)")
    scored = [r for r in runs if r.status in (RunStatus.DONE, RunStatus.DIVERGED)]  # rank counts diverged seeds
    ranked_first, ranked_rest = _rungs(scored, epochs, finalists)
    candidates = [_candidate(e, names, epochs, True) for e in ranked_first]
    candidates += [_candidate(e, names, epochs, False) for e in ranked_rest]
    higher = ranked_first[0].higher_is_better
    top = candidates[0]
    judged = _judge(top, candidates[1] if len(candidates) > 1 else None, higher, break_ties)
    constants = [c for c in candidates if c.is_constant]
    return Recommendation(
        metric=ranked_first[0].metric,
        candidates=tuple(candidates),
        best_constant=constants[0] if constants and constants[0] is not judged.best else None,
        diverged=sum(1 for r in runs if r.status is RunStatus.DIVERGED),
        higher_is_better=higher,
        top=top,
        **judged._asdict(),
    )


def _rungs(
    scored: Sequence[RunRecord], epochs: Mapping[str, Sequence[EpochRecord]], finalists: Collection[str] | None
) -> tuple[list[Ranked], list[Ranked]]:
    """The finalists ranked among themselves, then the others in their own order (on the
    finalists' metric); everything ranked together when there are no finalists or none of
    them finished. Raises ``ValueError`` when no run reported a validation metric."""
    keys = set(finalists or ())
    ranked_first = rank([r for r in scored if r.configuration in keys], epochs)
    rest = [r for r in scored if r.configuration not in keys]
    if not ranked_first:  # no finalists, or none of them finished: rank everything together
        ranked_first, rest = rank(scored, epochs), []
    if not ranked_first:
        raise ValueError("no finished run reported a validation metric")
    return ranked_first, rank(rest, epochs, ranked_first[0].metric) if rest else []


class _Judgement(NamedTuple):
    best: Candidate
    runner_up: Candidate | None
    margin: float | None = None
    noise: float = math.nan
    shared_seeds: int = 0
    tie: bool = False
    saturated: bool = False


def _judge(top: Candidate, second: Candidate | None, higher: bool, break_ties: bool) -> _Judgement:
    """The best and the runner-up, the margin of the top two against the paired seed noise
    and whether it is a tie (which, with ``break_ties``, goes to the simpler of the two)."""
    if second is None:
        return _Judgement(top, None)
    diff, se, shared = paired_noise(top, second)
    margin = -diff if higher else diff
    noise = NOISE_SE * se
    tie = math.isfinite(noise) and margin <= noise
    if tie and _saturated(top, second):
        # The objective says nothing here: the validation loss decides (rank has ordered
        # equal means by it already; checked again here).
        best, runner_up = (second, top) if second.val_loss < top.val_loss else (top, second)  # type: ignore[operator]
        return _Judgement(best, runner_up, margin, noise, shared, tie, saturated=True)
    swap = tie and break_ties and simplicity(second) < simplicity(top)
    best, runner_up = (second, top) if swap else (top, second)
    return _Judgement(best, runner_up, margin, noise, shared, tie)


def _saturated(a: Candidate, b: Candidate) -> bool:
    """Whether ``a`` and ``b`` reach the very same objective on each of at least two shared
    seeds (and on no other), so that their margin and its noise are both 0, while their
    validation losses differ: the objective is saturated and the loss can still tell."""
    first, second = dict(a.per_seed), dict(b.per_seed)
    return (
        len(first) >= 2
        and first == second
        and a.diverged == b.diverged
        and a.val_loss is not None
        and b.val_loss is not None
        and math.isfinite(a.val_loss)
        and math.isfinite(b.val_loss)
        and a.val_loss != b.val_loss
    )


def _fmt(value: float, digits: int = 4) -> str:
    return num(value, digits)


def _peak(c: Candidate) -> float:
    """The largest LR the candidate's schedule reaches (its ``total_steps`` when it has one),
    as the study's table shows it; the config's LR when the schedule cannot say."""
    steps = int(getattr(c.schedule, "total_steps", None) or 20_000)
    try:
        values = np.asarray(c.schedule(np.arange(steps)), dtype=np.float64)
        return float(values.max()) if values.size and np.isfinite(values).all() else c.lr
    except (ValueError, TypeError):
        return c.lr


def _label(c: Candidate) -> str:
    spread = f" ± {_fmt(c.sd, 2)}" if c.seeds > 1 else ""
    return f"{c.optimizer} + {c.schedule_name} peaking at lr={_peak(c):.3g} ({_fmt(c.score)}{spread})"


def tie_reason(rec: Recommendation) -> str:
    """Why ``rec.best`` was chosen over ``rec.runner_up`` in a tie, by :data:`TIE_RULE`."""
    best, other = rec.best, rec.runner_up
    assert other is not None
    if rec.saturated:
        return (
            f"both reach {rec.metric} {_fmt(best.score)} on each of the {rec.shared_seeds} shared seeds, so the "
            f"lower validation loss decides ({_fmt(best.val_loss or 0.0)} vs {_fmt(other.val_loss or 0.0)})"
        )
    mine, theirs = simplicity(best), simplicity(other)
    if mine[0] < theirs[0]:
        why = (f"{other.schedule_name} at lr={_peak(other):.3g} diverged on {other.diverged} seed(s), "
               f"{best.schedule_name} on {best.diverged or 'none'}")  # fmt: skip
    elif mine[:2] < theirs[:2]:
        why = f"{best.schedule_name} has fewer schedule knobs than {other.schedule_name}"
    elif mine[:2] == theirs[:2] and best.sd < other.sd:
        why = f"the same schedule family, and a lower sd over seeds ({_fmt(best.sd)} vs {_fmt(other.sd)})"
    elif mine[:3] == theirs[:3] and best.lr < other.lr:
        why = "equally simple and steady, and the smaller LR"
    else:
        why = "it scored best and is at least as simple"
    return f"{why} (a tie goes to {TIE_RULE})"


def rounded_margin(margin: float, score: float) -> float:
    """``margin``, or 0 where it is only the rounding of a difference of equal means (so a
    tie of equal scores reads 0, not -5.551e-17)."""
    return 0.0 if abs(margin) < 1e-12 * max(1.0, abs(score)) else margin


def margin_lines(rec: Recommendation, what: str) -> list[str]:
    """The runner-up line of a verdict: the margin against the paired seed noise, in words."""
    if rec.runner_up is None:
        return []
    up = rec.runner_up
    margin = rounded_margin(rec.margin if rec.margin is not None else 0.0, rec.top.score if rec.top else 0.0)
    if not rec.noise_known:
        return [
            f"margin over the runner-up {_label(up)}: {_fmt(margin)}; they share {rec.shared_seeds} seed(s), "
            "too few to estimate the seed noise"
        ]
    noise = (
        f"the paired seed noise {_fmt(rec.noise)} ({NOISE_SE:g} standard errors of the per-seed differences "
        f"over {rec.shared_seeds} shared seeds)"
    )
    if not rec.tie:
        return [f"beats the runner-up {_label(up)} by {_fmt(margin)} in {what}, more than {noise}"]
    if rec.saturated:
        best = rec.best
        return [
            f"ties with {_label(up)} in {what}: both reach {_fmt(best.score)} on each of the {rec.shared_seeds} "
            "shared seeds (the metric is saturated)",
            f"so the validation loss decides: {_fmt(best.val_loss or 0.0)} vs {_fmt(up.val_loss or 0.0)} for the "
            "runner-up",
        ]
    return [
        f"ties with {_label(up)}: the margin {_fmt(margin)} in {what} is within {noise}",
        f"so it recommends the simpler or steadier of the two: {tie_reason(rec)}",
    ]
