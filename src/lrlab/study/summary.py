"""The study's verdict in words: the lines the CLI prints and ``recommendation.md``.

Pure functions of a :class:`~lrlab.study.run.StudyResult`; the code to paste comes from
``lrlab.study.codegen``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from lrlab.formatting import num, pct
from lrlab.schedules import Schedule
from lrlab.schedules.summary import key_points

if TYPE_CHECKING:
    from lrlab.core.records import Objective
    from lrlab.study.run import StudyResult

__all__ = [
    "all_snippets",
    "code_snippets",
    "markdown",
    "metric_name",
    "objective_of",
    "peak",
    "verdict_lines",
    "verdict_record",
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
    from lrlab.core.records import Objective

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
    from lrlab.study.codegen import step_template
    from lrlab.study.recommend import margin_lines

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
    from lrlab.study.codegen import hf_snippet, keras_snippet, lightning_snippet, torch_snippet

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


def markdown(result: StudyResult) -> str:
    """``recommendation.md``: the verdict, the code, and every configuration ranked."""
    rec = result.recommendation
    code = all_snippets(result)
    rows = "\n".join(
        f"| {c.optimizer} | {c.schedule_name} | {peak(c.schedule, result.total_steps):.4g} | {num(c.score)}"
        f"{f' ± {num(c.sd, 2)}' if c.seeds > 1 else ''} | {c.seeds} | {pct(c.accuracy)} | `{c.schedule}` |"
        for c in rec.candidates
    )
    metric = {"val_error": "val error", "val_loss": "val loss"}.get(rec.metric, rec.metric)
    verdict = "\n".join(f"- {line}" for line in verdict_lines(result))
    return (
        f"# Study {result.name}\n\nTask `{result.task}`, budget `{result.budget}`, {result.epochs} epochs "
        f"({result.total_steps} steps) per run, {len(result.runs)} runs.\n\n## Recommendation\n\n{verdict}\n\n"
        + "".join(f"## {where}\n\n```python\n{text}```\n\n" for where, text in code.items()) +
        f"## All configurations\n\n| optimizer | schedule | peak lr | {metric} (mean ± sd) | seeds | accuracy | spec |\n|---|---|---|---|---|---|---|\n"
        f"{rows}\n\nThe figures are in `report.html` and `figures/`.\n"
    )


def verdict_record(result: StudyResult) -> dict[str, Any]:
    """The study's verdict as plain JSON values, for the store and the report page.

    The same verdict the CLI prints and ``recommendation.md`` holds: its ``lines`` are
    :func:`verdict_lines`, and ``leaderboard`` lists every configuration in the study's
    order (finalists first), each with its margin to the next judged against the paired
    seed noise (:func:`lrlab.study.recommend.paired_noise`), as the tie rule judges the top two.
    """
    from lrlab.study.recommend import NOISE_SE, TIE_RULE, paired_noise, rounded_margin, tie_reason

    rec = result.recommendation
    candidates = rec.candidates
    rows = []
    for position, cand in enumerate(candidates):
        row: dict[str, Any] = {
            "optimizer": cand.optimizer, "schedule": cand.schedule_name, "spec": str(cand.schedule),
            "peak_lr": peak(cand.schedule, result.total_steps), "score": cand.score, "sd": cand.sd,
            "seeds": cand.seeds, "accuracy": cand.accuracy, "finalist": cand.finalist,
            "run_ids": list(cand.run_ids), "recommended": cand is rec.best, "diverged": cand.diverged,
            "margin": None, "noise": None, "shared_seeds": 0, "within_noise": None, "next_diverged": False,
        }  # fmt: skip
        following = candidates[position + 1] if position + 1 < len(candidates) else None
        if following is not None and following.diverged > cand.diverged:
            row["next_diverged"] = True  # ranked below for its diverged seed, whatever its mean
        elif following is not None and following.finalist == cand.finalist:
            diff, se, shared = paired_noise(cand, following)
            diff = rounded_margin(diff, cand.score)
            noise = NOISE_SE * se
            known = math.isfinite(noise)
            row |= {
                "margin": -diff if rec.higher_is_better else diff, "noise": noise if known else None,
                "shared_seeds": shared, "within_noise": (-diff if rec.higher_is_better else diff) <= noise if known else None,
            }  # fmt: skip
        rows.append(row)
    kind_metric = metric_name(rec.metric, objective_of(result))
    return {
        "name": result.name, "task": result.task, "budget": result.budget, "epochs": result.epochs,
        "total_steps": result.total_steps, "metric": rec.metric, "metric_words": kind_metric,
        "higher_is_better": rec.higher_is_better, "lines": verdict_lines(result), "leaderboard": rows,
        "tie": rec.tie, "tie_rule": TIE_RULE, "tie_reason": tie_reason(rec) if rec.tie and rec.runner_up else None,
        "tie_broken": rec.top is not None and rec.top is not rec.best,
        "margin": rec.margin, "noise": rec.noise if rec.noise_known else None, "noise_se": NOISE_SE,
        "shared_seeds": rec.shared_seeds, "diverged": rec.diverged, "runs": len(result.runs),
        "run_ids": [r.id for r in result.runs], "sweeps": list(result.sweeps),
        "finalists": result.extras.get("finalists"), "seeds": result.extras.get("seeds"),
        "range_tests": {name: {"lr": f.lr, "rule": f.config.get("rule"), "iterations": f.config.get("iterations_run")}
                        for name, f in result.finders.items()},
    }  # fmt: skip
