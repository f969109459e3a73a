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
from rich.table import Table
from rich.text import Text

from lrlab.cli._common import safe
from lrlab.core.records import EpochRecord, Objective, RunRecord
from lrlab.formatting import num

__all__ = ["ListOptions", "fit_widths", "metric_columns", "runs_table", "short_optimizer", "short_schedule"]

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


NAMES = ("sweep", "task", "optimizer", "schedule")  # the columns that give way at a narrow width
MIN_NAME = 5  # a name column keeps at least this many characters (an ellipsis included)


def runs_table(
    runs: Sequence[RunRecord], finals: Mapping[str, EpochRecord | None], options: ListOptions, width: int = 80
) -> tuple[Table, list[str]]:
    """The table at ``width`` characters (ignored with ``wide``), and the metric columns left
    out of it (to name under it)."""
    tasks = {r.config.task for r in runs}
    sweeps = {r.sweep for r in runs}
    metrics = metric_columns(runs, finals)
    shown = metrics if options.wide else metrics[:NARROW_METRICS]
    names = ["id", *(["sweep"] if options.wide or len(sweeps) > 1 else []), "status",
             *(["task"] if options.wide or len(tasks) > 1 else []), "optimizer", "schedule", "lr", "seed",
             *shown]  # fmt: skip
    prefix = "" if options.wide else _shared_prefix([r.sweep or "-" for r in runs])
    rows = [_cells(run, finals.get(run.id), names, shown, options, prefix) for run in runs]
    natural = {name: max([len(name), *(len(row[i]) for row in rows)]) for i, name in enumerate(names)}
    widths = dict(natural) if options.wide else fit_widths(natural, width)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, padding=0)  # one space between columns
    for name in names:
        numeric = name in ("lr", "seed") or name in shown
        table.add_column(name, justify="right" if numeric else "left", no_wrap=True, overflow="ellipsis",
                         width=widths[name])  # fmt: skip
    for run, row in zip(runs, rows):
        style = STATUS_STYLE.get(run.status.value, "")
        table.add_row(
            *(Text(cell, style=style if name == "status" else "") for name, cell in zip(names, row))
        )
    return table, [m for m in metrics if m not in shown]


def fit_widths(natural: Mapping[str, int], width: int) -> dict[str, int]:
    """Column widths that fit ``width`` (one space between columns): ids, statuses and numbers
    whole; the name columns share what is left, the shortest first, none under ``MIN_NAME``.

    >>> fit_widths({"id": 8, "schedule": 30, "lr": 6}, 30)
    {'id': 8, 'schedule': 14, 'lr': 6}
    """
    widths = dict(natural)
    flexible = sorted((n for n in natural if n in NAMES), key=lambda n: natural[n])
    room = width - (len(natural) - 1) - sum(w for n, w in natural.items() if n not in NAMES)
    for index, name in enumerate(flexible):
        share = max(room // (len(flexible) - index), MIN_NAME)
        widths[name] = min(natural[name], share)
        room -= widths[name]
    return widths


def _shared_prefix(sweeps: Sequence[str]) -> str:
    """What the names of several sweeps share at their start, up to a ``-`` (a study's sweeps
    are ``study-digits-mlp-small-sgd``, ``...-adam``): left out of the column, which then tells
    them apart at 80 columns.

    >>> _shared_prefix(["study-a-sgd", "study-a-adam-x3", "study-a-seed1"])
    'study-a-'
    """
    names = set(sweeps)
    if len(names) < 2:
        return ""
    first, last = min(names), max(names)  # what these two share, every name between shares
    length = next((i for i, (a, b) in enumerate(zip(first, last)) if a != b), min(len(first), len(last)))
    common = first[:length]
    return common[: common.rfind("-") + 1]


def _cells(
    run: RunRecord,
    last: EpochRecord | None,
    names: list[str],
    shown: list[str],
    options: ListOptions,
    prefix: str = "",
) -> list[str]:
    """The row's cells as plain text (control characters made visible); a sweep's name
    without the ``prefix`` every listed sweep shares (an ellipsis in its place)."""
    config = run.config
    sweep = run.sweep or "-"
    cell = {
        "id": safe(run.id if options.full_ids else run.id[:ID_CHARS]),
        "sweep": safe("\u2026" + sweep[len(prefix) :] if prefix and sweep.startswith(prefix) else sweep),
        "status": str(run.status),
        "task": safe(config.task),
        "optimizer": safe(config.optimizer if options.wide else short_optimizer(str(config.optimizer))),
        "schedule": safe(config.schedule if options.wide else short_schedule(str(config.schedule))),
        "lr": num(config.lr),
        "seed": str(run.seed),
    }
    for metric in shown:
        value = None if last is None else last.value(metric)
        cell[metric] = num(value, 3 if metric in ("val_error", "val_accuracy") else 4)
    return [cell[name] for name in names]
