"""The study's verdict in words: the lines the CLI prints and ``recommendation.md``.

Pure functions of a :class:`~lrlab.study.run.StudyResult`; the code to paste comes from
``lrlab.study.codegen``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from lrlab.core.records import Objective
from lrlab.core.verdict import (
    NOISE_SE,
    TIE_RULE,
    Compute,
    LeaderboardRow,
    Margin,
    RangeTestLine,
    StudyVerdict,
    TieRule,
)
from lrlab.formatting import num, pct
from lrlab.schedules import Schedule
from lrlab.schedules.summary import key_points
from lrlab.study.codegen import hf_snippet, keras_snippet, lightning_snippet, step_template, torch_snippet
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
    "all_snippets",
    "code_snippets",
    "column_name",
    "markdown",
    "metric_name",
    "objective_of",
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
    return next((str(r.extras["task_kind"]) for r in result.runs if "task_kind" in r.extras), "classification")


def verdict_lines(result: StudyResult) -> list[str]:
    """The recommendation, its score and its margins over the runner-up and the best constant LR."""
    rec = result.recommendation
    best = rec.best
    what = metric_name(rec.metric, objective_of(result))
    lines = [
        f"Recommended: {best.optimizer} with {best.schedule_name} peaking at "
        f"lr={peak(best.schedule, result.total_steps):.4g}: {best.schedule}",
        f"final {what} {num(best.score)}" + (f" ± {num(best.sd, 2)} (sd)" if best.seeds > 1 else "")
        + (f" (accuracy {pct(best.accuracy)})" if best.accuracy is not None else "")
        + f", mean of {best.seeds} seed(s)",
    ]
    template = step_template(best.schedule, result.total_steps)
    if template.startswith("f"):  # step counts: say them as fractions of the user's run
        lines.append(f"for your run of total_steps optimizer steps (len(train_loader) * epochs): {template}")
    lines += margin_lines(rec, what)
    if rec.best_constant is not None:
        c = rec.best_constant
        lines.append(
            f"margin over the best constant LR ({c.optimizer}, lr={c.lr:.4g}): {num(rec.margin_over_constant)}"
        )
    if rec.diverged:
        lines.append(f"{rec.diverged} run(s) diverged")
    return lines


def all_snippets(result: StudyResult) -> dict[str, str]:
    """PyTorch, Lightning, Hugging Face and Keras code for the recommended optimizer and
    schedule, each computing the schedule from the user's own number of steps."""
    best = result.recommendation.best
    spec, steps = str(best.schedule), result.total_steps
    objective, kind = objective_of(result), _kind(result)
    builtin = objective.loss in ("cross-entropy", "MSE")
    return {
        "PyTorch": torch_snippet(best.optimizer, spec, study_steps=steps),
        "Lightning": lightning_snippet(best.optimizer, spec, study_steps=steps),
        "Hugging Face": hf_snippet(best.optimizer, spec, study_steps=steps),
        "Keras": keras_snippet(best.optimizer, spec, study_steps=steps, kind=kind, loss=None if builtin else "loss_fn"),
    }


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
        + "".join(f"## {where}\n\n```python\n{text}```\n\n" for where, text in code.items()) +
        f"## All configurations\n\n| optimizer | schedule | peak lr | {column_name(verdict.metric)} (mean ± sd) | seeds "
        f"| accuracy | spec |\n|---|---|---|---|---|---|---|\n{rows}\n\nThe figures are in `report.html` and `figures/`.\n"
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
