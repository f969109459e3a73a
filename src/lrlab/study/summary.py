"""The study's verdict in words: the lines the CLI prints and ``recommendation.md``.

Pure functions of a :class:`~lrlab.study.run.StudyResult`; the code to paste comes from
``lrlab.study.codegen``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lrlab.formatting import num, pct
from lrlab.schedules import Schedule
from lrlab.schedules.summary import key_points

if TYPE_CHECKING:
    from lrlab.study.run import StudyResult

__all__ = ["code_snippets", "markdown", "metric_name", "peak", "verdict_lines"]


def peak(schedule: Schedule, total_steps: int) -> float:
    """The largest LR ``schedule`` reaches over ``total_steps`` steps."""
    return key_points(schedule, total_steps).peak


def metric_name(metric: str) -> str:
    return "validation error" if metric == "val_error" else "validation loss (nats)"


def verdict_lines(result: StudyResult) -> list[str]:
    """The recommendation, its score and its margins over the runner-up and the best constant LR."""
    rec = result.recommendation
    best = rec.best
    what = metric_name(rec.metric)
    lines = [
        f"Recommended: {best.optimizer} with {best.schedule_name} peaking at "
        f"lr={peak(best.schedule, result.total_steps):.4g}: {best.schedule}",
        f"final {what} {num(best.score)}"
        + (f" (accuracy {pct(best.accuracy)})" if best.accuracy is not None else "")
        + f", mean of {best.seeds} seed(s)",
    ]
    if rec.runner_up is not None:
        up = rec.runner_up
        if rec.margin_over_runner_up == 0 and best.val_loss is not None and up.val_loss is not None:
            lines.append(
                f"ties with the runner-up ({up.optimizer}, {up.schedule_name}) on {what}; chosen for its "
                f"lower validation loss ({num(best.val_loss)} vs {num(up.val_loss)})"
            )
        else:
            lines.append(
                f"margin over the runner-up ({up.optimizer}, {up.schedule_name}): {num(rec.margin_over_runner_up)}"
            )
    if rec.best_constant is not None:
        c = rec.best_constant
        lines.append(
            f"margin over the best constant LR ({c.optimizer}, lr={c.lr:.4g}): {num(rec.margin_over_constant)}"
        )
    if rec.diverged:
        lines.append(f"{rec.diverged} run(s) diverged")
    return lines


def code_snippets(result: StudyResult) -> tuple[str, str]:
    """PyTorch and Keras code for the recommended optimizer and schedule."""
    from lrlab.study.codegen import keras_snippet, torch_snippet

    best = result.recommendation.best
    return torch_snippet(best.optimizer, str(best.schedule)), keras_snippet(best.optimizer, str(best.schedule))


def markdown(result: StudyResult) -> str:
    """``recommendation.md``: the verdict, the code, and every configuration ranked."""
    rec = result.recommendation
    torch_code, keras_code = code_snippets(result)
    rows = "\n".join(
        f"| {c.optimizer} | {c.schedule_name} | {peak(c.schedule, result.total_steps):.4g} | {num(c.score)} "
        f"| {pct(c.accuracy)} | `{c.schedule}` |"
        for c in rec.candidates
    )
    metric = "val error" if rec.metric == "val_error" else "val loss"
    verdict = "\n".join(f"- {line}" for line in verdict_lines(result))
    return (
        f"# Study {result.name}\n\nTask `{result.task}`, budget `{result.budget}`, {result.epochs} epochs "
        f"({result.total_steps} steps) per run, {len(result.runs)} runs.\n\n## Recommendation\n\n{verdict}\n\n"
        f"## PyTorch\n\n```python\n{torch_code}```\n\n## Keras\n\n```python\n{keras_code}```\n\n"
        f"## All configurations\n\n| optimizer | schedule | peak lr | {metric} | accuracy | spec |\n|---|---|---|---|---|---|\n"
        f"{rows}\n\nThe figures are in `report.html` and `figures/`.\n"
    )
