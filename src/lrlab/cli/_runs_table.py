"""The run table of ``lrlab runs list``: one line per run at any width, the task's own metrics.

At 80 columns a study's runs keep one line each: the schedule is its shape (``warmup(cosine)``),
the optimizer its name, the metrics the task's objective first and one more; names that
still do not fit end in an ellipsis, never fold onto a second line. ``--wide`` gives the
whole specs and every metric the runs recorded, ``--full-ids`` the whole ids.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rich import box
from rich.markup import escape
from rich.table import Table

from lrlab.cli._common import safe
from lrlab.core.records import EpochRecord, Objective, RunRecord
from lrlab.formatting import num

__all__ = ["ListOptions", "metric_columns", "runs_table", "short_optimizer", "short_schedule"]

STATUS_STYLE = {"done": "green", "diverged": "yellow", "failed": "red", "running": "cyan", "queued": "dim"}
NARROW_METRICS = 2  # metric columns at the default width: the objective and one more
ID_CHARS = 8
_COMPLEMENT = frozenset({"val_accuracy"})  # 1 - val_error: its column comes last
_CALL = re.compile(r"[A-Za-z_]\w*(?=\s*\()|[(),\[\]]")


@dataclass(frozen=True)
class ListOptions:
    """What the table shows: whole specs and every metric (``wide``), whole ids."""

    wide: bool = False
    full_ids: bool = False


def short_schedule(spec: str) -> str:
    """A schedule spec as its shape: the functions it nests, without their arguments.

    >>> short_schedule("warmup(cosine(lr=0.1, total_steps=100), steps=10)")
    'warmup(cosine)'
    >>> short_schedule("sequence([constant(lr=0.1), cosine(lr=0.1, total_steps=9)], boundaries=[5])")
    'sequence(constant, cosine)'
    >>> short_schedule("constant(lr=0.1)")
    'constant'
    """
    stack: list[list[str]] = [[]]
    names: list[str] = []
    for token in _CALL.findall(spec):
        if token in ",[]":
            continue
        if token == "(":
            stack.append([])
        elif token == ")":
            inner, name = stack.pop(), names.pop() if names else ""
            stack[-1].append(f"{name}({', '.join(inner)})" if inner else name)
        else:
            names.append(token)
    parts = stack[0]
    return ", ".join(parts) if parts else spec


def short_optimizer(spec: str) -> str:
    """An optimizer spec's name (``adamw(weight_decay=0.01)`` -> ``adamw``)."""
    return spec.split("(", 1)[0].strip() or spec


def _objectives(runs: Sequence[RunRecord]) -> list[Objective]:
    seen: dict[str, Objective] = {}
    for run in runs:
        objective = run.objective
        if objective is not None and objective.metric not in seen:
            seen[objective.metric] = objective
    return list(seen.values())


def metric_columns(runs: Sequence[RunRecord], finals: Mapping[str, EpochRecord | None]) -> list[str]:
    """The metrics to show, best first: each objective the runs' tasks declared, their other
    declared metrics (but the accuracy, one minus the error beside it), then ``val_loss``,
    ``val_error``, ``val_accuracy`` and any other named metric; only those some run recorded.
    Runs stored without an objective: ``val_loss`` first."""
    order: list[str] = []
    for objective in _objectives(runs):
        order += [objective.metric, *(m for m in objective.metrics if m not in _COMPLEMENT)]
    order += ["val_loss", "val_error", "val_accuracy"]
    order += sorted({name for last in finals.values() if last is not None for name in last.metrics})
    recorded = [name for name in dict.fromkeys(order) if any(_has(last, name) for last in finals.values())]
    return recorded


def _has(last: EpochRecord | None, name: str) -> bool:
    return last is not None and last.value(name) is not None


def _text(value: object) -> str:
    return escape(safe(value))


def runs_table(
    runs: Sequence[RunRecord], finals: Mapping[str, EpochRecord | None], options: ListOptions
) -> tuple[Table, list[str]]:
    """The table, and the metric columns left out of it (to name under it)."""
    tasks = {r.config.task for r in runs}
    sweeps = {r.sweep for r in runs}
    metrics = metric_columns(runs, finals)
    shown = metrics if options.wide else metrics[:NARROW_METRICS]
    names = ["id", *(["sweep"] if options.wide or len(sweeps) > 1 else []), "status",
             *(["task"] if options.wide or len(tasks) > 1 else []), "optimizer", "schedule", "lr", "seed",
             *shown]  # fmt: skip
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, padding=0)  # one space between columns
    for name in names:
        numeric = name in ("lr", "seed") or name in shown
        whole = numeric or name in ("id", "status")
        overflow = "fold" if options.wide else "ellipsis"
        table.add_column(name, justify="right" if numeric else "left", no_wrap=whole or not options.wide,
                         overflow="fold" if whole else overflow, min_width=_min_width(name, options))  # fmt: skip
    for run in runs:
        table.add_row(*_cells(run, finals.get(run.id), names, shown, options))
    return table, [m for m in metrics if m not in shown]


def _min_width(name: str, options: ListOptions) -> int | None:
    if name == "id":
        return None
    if name in ("optimizer", "schedule", "sweep", "task"):
        return None if options.wide else min(len(name), 6)
    return len(name)


def _cells(
    run: RunRecord, last: EpochRecord | None, names: list[str], shown: list[str], options: ListOptions
) -> list[str]:
    config = run.config
    style = STATUS_STYLE.get(run.status.value, "")
    cell = {
        "id": _text(run.id if options.full_ids else run.id[:ID_CHARS]),
        "sweep": _text(run.sweep or "-"),
        "status": f"[{style}]{run.status}[/]",
        "task": _text(config.task),
        "optimizer": _text(config.optimizer if options.wide else short_optimizer(str(config.optimizer))),
        "schedule": _text(config.schedule if options.wide else short_schedule(str(config.schedule))),
        "lr": num(config.lr),
        "seed": str(run.seed),
    }
    for metric in shown:
        value = None if last is None else last.value(metric)
        cell[metric] = num(value, 3 if metric in ("val_error", "val_accuracy") else 4)
    return [cell[name] for name in names]
