"""The study's verdict in words: the lines the CLI prints and ``recommendation.md``.

Pure functions of a :class:`~lrlab.study.run.StudyResult`; the code to paste comes from
``lrlab.study.codegen``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from lrlab.core.records import Objective, RunRecord, RunStatus
from lrlab.core.verdict import (
    NOISE_SE,
    TIE_RULE,
    Compute,
    LeaderboardRow,
    LrFreeLine,
    Margin,
    RangeTestLine,
    StudyVerdict,
    TieRule,
)
from lrlab.formatting import num, pct
from lrlab.optim.grammar import parse_optimizer
from lrlab.optim.lr_free import LR_ESTIMATORS, SCHEDULE_FREE
from lrlab.report.optima import optimum_words
from lrlab.schedules import Schedule
from lrlab.schedules.summary import key_points
from lrlab.study.codegen import (
    TRAINABLE_ONLY,
    hf_snippet,
    keras_snippet,
    lightning_snippet,
    step_template,
    torch_snippet,
    trainable_snippet,
)
from lrlab.study.recommend import (
    Candidate,
    Recommendation,
    margin_lines,
    paired_noise,
    rounded_margin,
    tie_reason,
)

if TYPE_CHECKING:
    from lrlab.study.run import StudyResult

__all__ = [
    "EstimatePath",
    "LrFreeEvidence",
    "all_snippets",
    "bracketing_line",
    "code_snippets",
    "column_name",
    "estimate_path",
    "lr_free_family",
    "lr_free_lines",
    "markdown",
    "metric_name",
    "no_range_test_line",
    "objective_of",
    "optimum_line",
    "peak",
    "study_verdict",
    "verdict_lines",
]


def peak(schedule: Schedule, total_steps: int) -> float:
    """The largest LR ``schedule`` reaches over ``total_steps`` steps."""
    return key_points(schedule, total_steps).peak


def metric_name(metric: str, objective: Objective | None = None) -> str:
    """How ``metric`` reads in a sentence, in the task's own loss name and unit.

    >>> from lrlab.core.records import Objective
    >>> metric_name("val_loss", Objective.for_kind("regression")), metric_name("val_mae")
    ('validation loss (MSE)', 'val_mae')
    """
    if metric == "val_error":
        return "validation error"
    if metric == "val_accuracy":
        return "validation accuracy"
    if metric == "val_loss":
        return f"validation loss ({objective.loss_label if objective is not None else 'cross-entropy, nats'})"
    return metric


def objective_of(result: StudyResult) -> Objective:
    """The objective the study's runs declared (their task's), else the one of its metric."""
    for run in result.runs:
        if run.objective is not None:
            return run.objective
    metric = result.recommendation.metric
    return Objective.for_kind("classification") if metric == "val_error" else Objective(metric)


def _kind(result: StudyResult) -> str:
    return next(
        (str(r.extras["task_kind"]) for r in result.runs if "task_kind" in r.extras), "classification"
    )


def verdict_lines(result: StudyResult) -> list[str]:
    """The recommendation, its score and its margins over the runner-up and the best constant LR."""
    rec = result.recommendation
    best = rec.best
    what = metric_name(rec.metric, objective_of(result))
    lines = [
        f"Recommended: {best.optimizer} with {best.schedule_name} peaking at "
        f"lr={peak(best.schedule, result.total_steps):.4g}: {best.schedule}",
        f"final {what} {num(best.score)}"
        + (f" ± {num(best.sd, 2)} (sd)" if best.seeds > 1 else "")
        + (f" (accuracy {pct(best.accuracy)})" if best.accuracy is not None else "")
        + f", mean of {best.seeds} seed(s)",
    ]
    template = step_template(best.schedule, result.total_steps)
    if template.startswith("f"):  # step counts: say them as fractions of the user's run
        steps = "epochs * steps_per_epoch" if trainable_name(result.runs) else "len(train_loader) * epochs"
        lines.append(f"for your run of total_steps optimizer steps ({steps}): {template}")
    lines += optimum_line(result)
    lines += margin_lines(rec, what)
    if rec.best_constant is not None:
        c = rec.best_constant
        seeds = f", {c.seeds} seed(s) against {rec.best.seeds}" if c.seeds != rec.best.seeds else ""
        lines.append(
            f"margin over the best constant LR ({c.optimizer}, lr={c.lr:.4g}{seeds}): {num(rec.margin_over_constant)}"
        )
    if rec.diverged:
        lines.append(f"{rec.diverged} run(s) diverged")
    failed = failed_line(result.runs)
    if failed is not None:
        lines.append(failed)
    lines += bracketing_line(result)
    lines += [line.text for line in lr_free_lines(result)]
    return lines


def failed_line(runs: Sequence[RunRecord]) -> str | None:
    """How many runs failed and why, in one line (None when none did): a failed run is left
    out of every ranking, so the reader is told it happened. The study's verdict (what
    ``print(lrlab.study(...))`` and the CLI show) and ``tune`` say it with this line."""
    reasons = Counter((r.error or "no reason recorded") for r in runs if r.status is RunStatus.FAILED)
    if not reasons:
        return None
    count = sum(reasons.values())
    shown = "; ".join(f"{reason} ({n}x)" for reason, n in reasons.most_common(2))
    more = f"; {len(reasons) - 2} other reason(s)" if len(reasons) > 2 else ""
    return (
        f"{count} of {len(runs)} runs failed and are left out of the ranking: {shown}{more} "
        "(lrlab runs list --status failed)"
    )


def optimum_line(result: Any) -> list[str]:
    """The recommendation's optimum LR as an interval, or why it is open (none without a fit)."""
    mine = next((o for o in getattr(result, "optima", ()) or () if o.recommended), None)
    if mine is None:
        return []
    line = f"optimum of {mine.text}"
    lr = peak(result.recommendation.best.schedule, result.total_steps)
    if mine.bracketed and mine.low is not None and mine.high is not None and not (
        mine.low * (1 - 5e-3) <= lr <= mine.high * (1 + 5e-3)  # at an end as printed (3 digits): inside
    ):
        side = "above" if lr > mine.high else "below"
        line += (
            f"; the recommended peak LR {lr:.4g} lies {side} it: it is the best LR tried, and the fit puts the "
            "optimum between the LRs tried, where no run measured it"
        )
    return [line]


def bracketing_line(result: Any) -> list[str]:
    """What the bracketing did, naming the families it could not bracket (none without)."""
    bracketing = getattr(result, "bracketing", None)
    if bracketing is None:
        return []
    line = bracketing.words()
    still = [o for o in getattr(result, "optima", ()) or () if not o.bracketed and o.edge is not None]
    if still:
        line += "; not bracketed: " + ", ".join(
            f"{o.optimizer} + {o.schedule} (the optimum may lie {'higher' if o.edge == 'high' else 'lower'})"
            for o in still
        )
    return [line]


def trainable_name(runs: Any) -> str | None:
    """The trial function's name when ``runs`` are a trainable's (``@lrlab.trainable``), else None."""
    return next((str(r.extras["trainable"]) for r in runs if r.extras.get("trainable")), None)


def all_snippets(result: StudyResult) -> dict[str, str]:
    """PyTorch, Lightning, Hugging Face and Keras code for the recommended optimizer and
    schedule, each computing the schedule from the user's own number of steps; for a
    trainable's study, the optimizer and scheduler lines for its function (PyTorch) and one
    line saying why the other frameworks' code is left out (Keras)."""
    best = result.recommendation.best
    spec, steps = str(best.schedule), result.total_steps
    fn = trainable_name(result.runs)
    if fn is not None:
        code = trainable_snippet(best.optimizer, spec, trainable=fn, study_steps=steps)
        return {"PyTorch": code, "Keras": TRAINABLE_ONLY}
    objective, kind = objective_of(result), _kind(result)
    builtin = objective.loss in ("cross-entropy", "MSE")
    return {
        "PyTorch": torch_snippet(best.optimizer, spec, study_steps=steps),
        "Lightning": lightning_snippet(best.optimizer, spec, study_steps=steps),
        "Hugging Face": hf_snippet(best.optimizer, spec, study_steps=steps),
        "Keras": keras_snippet(
            best.optimizer, spec, study_steps=steps, kind=kind, loss=None if builtin else "loss_fn"
        ),
    } | _contender_snippets(result)


def _contender_snippets(result: Any) -> dict[str, str]:
    """PyTorch code for each LR-free contender's best configuration that is not the
    recommendation (from its own library)."""
    rec, evidence = result.recommendation, getattr(result, "lr_free", None)
    out: dict[str, str] = {}
    for spec in evidence.steps if evidence is not None else ():
        cand = next((c for c in rec.candidates if c.optimizer == spec and c.seeds > 0), None)
        if cand is not None and cand is not rec.best:
            out[f"PyTorch: {spec}, the LR-free contender"] = torch_snippet(
                spec, str(cand.schedule), study_steps=result.total_steps
            )
    return out


def code_snippets(result: StudyResult) -> tuple[str, str]:
    """PyTorch and Keras code for the recommended optimizer and schedule."""
    code = all_snippets(result)
    return code["PyTorch"], code["Keras"]


def column_name(metric: str) -> str:
    """How ``metric`` heads a table column.

    >>> column_name("val_error"), column_name("val_mae")
    ('val error', 'val_mae')
    """
    return {"val_error": "val error", "val_loss": "val loss"}.get(metric, metric)


def markdown(result: StudyResult) -> str:
    """``recommendation.md``: the verdict, the code, and every configuration ranked."""
    verdict = result.verdict
    code = all_snippets(result)
    rows = "\n".join(
        f"| {c.optimizer} | {c.schedule} | {c.peak_lr:.4g} | {num(c.score)}"
        f"{f' ± {num(c.sd, 2)}' if c.seeds > 1 else ''} | {c.seeds} | {pct(c.accuracy)} | `{c.spec}` |"
        for c in verdict.leaderboard
    )
    lines = "\n".join(f"- {line}" for line in verdict.lines)
    return (
        f"# Study {verdict.name}\n\nTask `{verdict.task}`, budget `{verdict.budget}`, {verdict.epochs} epochs "
        f"({verdict.total_steps} steps) per run, {verdict.compute.runs} runs.\n\n## Recommendation\n\n{lines}\n\n"
        + "".join(f"## {where}\n\n```python\n{text}```\n\n" for where, text in code.items())
        + f"## All configurations\n\n| optimizer | schedule | peak lr | {column_name(verdict.metric)} (mean ± sd) | seeds "
        f"| accuracy | spec |\n|---|---|---|---|---|---|---|\n{rows}\n\n{optima_markdown(verdict)}"
        "The figures are in `report.html` and `figures/`.\n"
    )


def optima_markdown(verdict: StudyVerdict) -> str:
    """``recommendation.md``'s table of each family's optimum LR (empty for a study without)."""
    if not verdict.optima:
        return ""
    rows = "\n".join(
        f"| {o.optimizer} | {o.schedule}{' (recommended)' if o.recommended else ''} | {optimum_words(o)} | "
        f"{o.seeds} | {len(o.tried)} ({o.extra} added) | {o.reason} |"
        for o in verdict.optima
    )
    return (
        "## Optimum LR per family\n\nThe vertex of a fit in log LR over the LRs tried (two half-parabolas over five LRs, a parabola over three), with its "
        f"{verdict.optima[0].level:.0%} interval: bootstrapped over every seed for the recommendation's family, "
        "the grid's resolution for the others (one seed).\n\n| optimizer | schedule | optimum peak lr (interval) "
        f"| seeds | LRs tried | how |\n|---|---|---|---|---|---|\n{rows}\n\n"
    )


def study_verdict(result: StudyResult) -> StudyVerdict:
    """The study's verdict as a typed record, for the store, the report page and every printer.

    The same verdict the CLI prints and ``recommendation.md`` holds: its ``lines`` are
    :func:`verdict_lines`, and its ``leaderboard`` lists every configuration in the study's
    order (finalists first), each with its margin to the next judged against the paired
    seed noise (:func:`lrlab.study.recommend.paired_noise`), as the tie rule judges the top two.
    """
    rec = result.recommendation
    return StudyVerdict(
        name=result.name, task=result.task, budget=result.budget, epochs=result.epochs,
        total_steps=result.total_steps, metric=rec.metric, metric_words=metric_name(rec.metric, objective_of(result)),
        higher_is_better=rec.higher_is_better, lines=tuple(verdict_lines(result)),
        leaderboard=tuple(_rows(rec, result.total_steps)),
        tie=TieRule(NOISE_SE, TIE_RULE, rec.tie, rec.top is not None and rec.top is not rec.best,
                    tie_reason(rec) if rec.tie and rec.runner_up else None),
        top_two=Margin(rec.margin, rec.noise if rec.noise_known else None, rec.shared_seeds),
        compute=Compute(tuple(r.id for r in result.runs), tuple(result.sweeps), result.extras.get("finalists"),
                        tuple(result.extras.get("seeds") or ()), rec.diverged),
        range_tests=tuple(RangeTestLine(name, f.lr, f.config.get("rule"), f.config.get("iterations_run"))
                          for name, f in result.finders.items()),
        lr_free=tuple(lr_free_lines(result)),
        optima=tuple(getattr(result, "optima", ()) or ()),
    )  # fmt: skip


def _rows(rec: Recommendation, total_steps: int) -> list[LeaderboardRow]:
    """Every candidate as a leaderboard row, with its margin to the next in the same rung."""
    candidates = rec.candidates
    rows = []
    for position, cand in enumerate(candidates):
        following = candidates[position + 1] if position + 1 < len(candidates) else None
        next_diverged = following is not None and following.diverged > cand.diverged
        to_next = Margin()
        if following is not None and not next_diverged and following.finalist == cand.finalist:
            to_next = _margin_to(cand, following, rec.higher_is_better)
        rows.append(LeaderboardRow(
            optimizer=cand.optimizer, schedule=cand.schedule_name, spec=str(cand.schedule),
            peak_lr=peak(cand.schedule, total_steps), score=cand.score, sd=cand.sd, seeds=cand.seeds,
            accuracy=cand.accuracy, finalist=cand.finalist, run_ids=tuple(cand.run_ids),
            recommended=cand is rec.best, diverged=cand.diverged, to_next=to_next, next_diverged=next_diverged,
        ))  # fmt: skip
    return rows


def _margin_to(cand: Candidate, following: Candidate, higher_is_better: bool) -> Margin:
    """``cand``'s margin over ``following`` against their paired seed noise."""
    diff, se, shared = paired_noise(cand, following)
    diff = rounded_margin(diff, cand.score)
    noise = NOISE_SE * se
    return Margin(-diff if higher_is_better else diff, noise if math.isfinite(noise) else None, shared)


# ------------------------------------------------------------------ LR-free contenders

TAIL = 0.1
"""The last tenth of a run: where an LR estimate still rising is told from one settled."""
STILL_RISING = 1.05
"""An estimate that grew by more than 5% over the last tenth of the run is still rising."""
STUCK = 2.0
"""An estimate that ended below twice its start never left it (Prodigy's d0 is 1e-6)."""


def lr_free_family(spec: str) -> str | None:
    """``"schedule-free"`` or ``"estimator"`` for an LR-free optimizer spec, else None.

    >>> lr_free_family("prodigy"), lr_free_family("schedulefree_adamw(warmup_steps=10)"), lr_free_family("adam")
    ('estimator', 'schedule-free', None)
    """
    try:
        key = parse_optimizer(spec)[0]
    except ValueError:
        key = spec.split("(")[0].strip().lower()
    if key in SCHEDULE_FREE:
        return "schedule-free"
    return "estimator" if key in LR_ESTIMATORS else None


def no_range_test_line(spec: str, total_steps: int) -> str:
    """What the study says where the range tests are listed, for an LR estimator."""
    return (
        f"{spec}: no range test (it estimates its own LR, so a range test over its lr, a multiplier on that "
        f"estimate, means nothing); trained at lr=1 with constant(lr=1.0) and cosine(lr=1.0, total_steps="
        f"{total_steps}), as its authors recommend"
    )


@dataclass(frozen=True)
class EstimatePath:
    """How an LR estimator's estimate moved over one run: the LR it used at the first and
    the last step (the recorded LR over the schedule's multiplier), and its growth over the
    last :data:`TAIL` of the run; ``seed`` is the run's."""

    first: float
    last: float
    tail: float
    seed: int = 0

    @property
    def ratio(self) -> float:
        return self.last / self.first if self.first > 0 else math.inf

    def words(self) -> str:
        """``"still rising at the end (x1.3 over the last tenth of the run)"``, ``"settled ..."``
        or ``"stayed near its start"``."""
        if self.ratio < STUCK:
            return "stayed near its start (the estimate never grew)"
        over = f"(x{self.tail:.2f} over the last tenth of the run)"
        return f"still rising at the end {over}" if self.tail > STILL_RISING else f"settled {over}"


def _times(ratio: float) -> str:
    """``x8,300`` for a large factor, ``x1.6`` for a small one."""
    return f"x{ratio:,.0f}" if ratio >= 100 else f"x{ratio:.2g}"


def estimate_path(lrs: Sequence[float], multipliers: Sequence[float], seed: int = 0) -> EstimatePath | None:
    """The estimate's path from a run's recorded per-step LRs (``d * lr``) and the schedule's
    value at each of those steps (the ``lr`` multiplier): their ratio, the estimate alone,
    where the multiplier is > 0. None when no step qualifies.

    >>> p = estimate_path([1e-6, 1e-3, 2e-3, 2e-3 * 0.5], [1.0, 1.0, 1.0, 0.5])
    >>> p.first, p.last, p.tail
    (1e-06, 0.002, 1.0)
    """
    lr, mult = np.asarray(lrs, dtype=np.float64), np.asarray(multipliers, dtype=np.float64)
    keep = np.isfinite(lr) & np.isfinite(mult) & (mult > 0)
    d = lr[keep] / mult[keep]
    if d.size == 0:
        return None
    start = d[min(d.size - 1, math.floor(d.size * (1 - TAIL)))]
    tail = float(d[-1] / start) if start > 0 else math.inf
    return EstimatePath(float(d[0]), float(d[-1]), tail, seed)


@dataclass(frozen=True)
class LrFreeEvidence:
    """What the store holds of a study's LR-free optimizers, gathered once by the study:
    the optimizer steps of each (its runs and its range test) and of the whole study, the
    estimators' paths (their best configuration's first seed), and which ones were promoted
    to every seed as contenders (their best configuration missed the cut)."""

    study_steps: int
    steps: Mapping[str, int] = field(default_factory=dict)
    estimates: Mapping[str, EstimatePath] = field(default_factory=dict)
    promoted: frozenset[str] = frozenset()


def _short(c: Candidate) -> str:
    spread = f" ± {num(c.sd, 2)}" if c.seeds > 1 else ""
    return f"{c.optimizer} + {c.schedule_name} at lr={c.lr:.3g}: {num(c.score)}{spread}"


def _reference(rec: Recommendation, cand: Candidate, specs: Collection[str]) -> Candidate | None:
    """What an LR-free configuration is judged against: the recommendation, or, when it is
    the recommendation, the best configuration of an ordinary optimizer (a finalist first)."""
    if cand is not rec.best:
        return rec.best
    others = [c for c in rec.candidates if c.optimizer not in specs and c.seeds > 0]
    return next((c for c in others if c.finalist), others[0] if others else None)


def _judged(rec: Recommendation, cand: Candidate, ref: Candidate) -> tuple[Margin, str]:
    """``ref``'s advantage over ``cand`` against the paired seed noise, and the verdict word."""
    diff, se, shared = paired_noise(ref, cand)  # mean over shared seeds of cand - ref
    diff = rounded_margin(diff, ref.score)
    advantage = -diff if rec.higher_is_better else diff
    noise = NOISE_SE * se
    if not math.isfinite(noise):
        return Margin(advantage, None, shared), "unknown"
    if abs(advantage) <= noise:
        return Margin(advantage, noise, shared), "ties"
    return Margin(advantage, noise, shared), "behind" if advantage > 0 else "ahead"


def _verdict_words(verdict: str, margin: Margin, ref: Candidate, is_best: bool) -> str:
    value = num(abs(margin.value or 0.0))
    whom = (
        f"the best configuration of the other optimizers ({_short(ref)})" if is_best
        else f"the recommendation ({_short(ref)})"
    )  # fmt: skip
    lead = "is the recommendation; " if is_best else ""
    if verdict == "unknown":
        side = "behind" if (margin.value or 0.0) > 0 else "ahead of"
        return (f"{lead}{value} {side} {whom}; they share {margin.shared_seeds} seed(s), too few to estimate "
                "the seed noise")  # fmt: skip
    noise = f"the paired seed noise {num(margin.noise or 0.0)} ({NOISE_SE:g} standard errors over {margin.shared_seeds} shared seeds)"
    if verdict == "ties":
        return f"{lead}ties with {whom} within the paired seed noise: margin {value} <= {noise}"
    side = "behind" if verdict == "behind" else "ahead of"
    return f"{lead}is {side} {whom} by {value}, more than {noise}"


def _compute_words(steps: int, study_steps: int) -> str:
    share = f"{steps / study_steps:.1%}" if study_steps else "?"
    return f"{steps:,} optimizer steps, {share} of the study's {study_steps:,} (range tests included)"


def _lr_free_line(result: Any, spec: str, evidence: LrFreeEvidence, what: str) -> LrFreeLine:
    rec: Recommendation = result.recommendation
    family = lr_free_family(spec) or "estimator"
    specs = set(evidence.steps)
    steps = evidence.steps.get(spec, 0)
    compute = _compute_words(steps, evidence.study_steps)
    cand = next((c for c in rec.candidates if c.optimizer == spec and c.seeds > 0), None)
    kind = "schedule-free" if family == "schedule-free" else "estimates its own LR"
    if cand is None:
        text = f"LR-free {spec} ({kind}): no configuration finished; {compute}"
        return LrFreeLine(spec, family, steps=steps, study_steps=evidence.study_steps, text=text)
    ref = _reference(rec, cand, specs)
    margin, verdict = (Margin(), "none") if ref is None else _judged(rec, cand, ref)
    lr = "lr=1 x its estimate" if family == "estimator" else f"lr={cand.lr:.3g}"
    spread = f" ± {num(cand.sd, 2)}" if cand.seeds > 1 else ""
    promoted = spec in evidence.promoted
    parts = [
        f"LR-free {spec} ({kind}): best {cand.schedule_name} at {lr}, final {what} {num(cand.score)}{spread} over "
        f"{cand.seeds} seed(s)" + (" (promoted to every seed as a contender)" if promoted else ""),
    ]
    if ref is not None:
        parts.append(_verdict_words(verdict, margin, ref, cand is rec.best))
    parts.append(compute)
    path = evidence.estimates.get(spec)
    if path is not None:
        parts.append(
            f"its LR estimate (d*lr at lr=1) moved from {path.first:.3g} to {path.last:.3g} "
            f"({_times(path.ratio)}, seed {path.seed}), {path.words()}"
        )
    return LrFreeLine(
        spec, family, cand.schedule_name, cand.lr, cand.score, cand.sd, cand.seeds,
        "" if ref is None else _short(ref), margin, verdict, promoted, steps, evidence.study_steps,
        None if path is None else path.first, None if path is None else path.last,
        None if path is None else path.tail, "; ".join(parts),
    )  # fmt: skip


def lr_free_lines(result: Any) -> list[LrFreeLine]:
    """One :class:`~lrlab.core.verdict.LrFreeLine` per LR-free optimizer of the study (none
    without): its best configuration against the recommendation within the paired seed
    noise (:func:`~lrlab.study.recommend.paired_noise`, as the tie rule judges the top two),
    its compute against the study's, and an estimator's path."""
    evidence = getattr(result, "lr_free", None)
    if evidence is None or not evidence.steps:
        return []
    what = metric_name(result.recommendation.metric, objective_of(result))
    return [_lr_free_line(result, spec, evidence, what) for spec in evidence.steps]
