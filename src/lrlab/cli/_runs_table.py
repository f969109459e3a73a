"""The run table of ``lrlab runs list``: one line per run at any width, the task's own metrics.

At 80 columns a study's runs keep one line each: the schedule is its shape (``warmup-cosine``,
``cyclic(sine)``, a cyclic mode by its own name: ``triangular2``), the optimizer its name (or its alias, ``sgdm``, where two listed
optimizers share a name), the LR the peak the schedule reaches (a cyclic or one-cycle run's
``lr`` is not the LR it trained at), the metrics the task's objective first and one more; a
column every listed run shares (sweep, task, optimizer) is named in the title instead; names
that still do not fit end in an ellipsis, never fold onto a second line. ``--wide`` gives the
whole specs and every metric the runs recorded, ``--full-ids`` the whole ids.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from rich import box
from rich.table import Table
from rich.text import Text

from lrlab.cli._common import safe
from lrlab.core.grammar import OPTIMIZER_ALIASES
from lrlab.core.records import EpochRecord, Objective, RunRecord
from lrlab.formatting import num
from lrlab.schedules.cyclic import MODES, Cyclic
from lrlab.schedules.summary import key_points
from lrlab.store.sqlite import Store

__all__ = [
    "ListOptions",
    "fit_widths",
    "metric_columns",
    "optimizer_labels",
    "peak_lr",
    "recorded_lrs",
    "runs_table",
    "short_optimizer",
    "short_schedule",
]

STATUS_STYLE = {"done": "green", "diverged": "yellow", "failed": "red", "running": "cyan", "queued": "dim"}
NARROW_METRICS = 2  # metric columns at the default width: the objective and one more
ID_CHARS = 8
_COMPLEMENT = frozenset({"val_accuracy"})  # 1 - val_error: its column comes last
_CYCLIC_MODES = {f"cyclic({mode})": mode for mode in MODES if mode != Cyclic.mode}  # the default reads "cyclic"
_CALL = re.compile(r"[A-Za-z_]\w*(?=\s*\()|[(),\[\]]|\"[^\"]*\"|'[^']*'")


@dataclass(frozen=True)
class ListOptions:
    """What the table shows: whole specs and every metric (``wide``), whole ids."""

    wide: bool = False
    full_ids: bool = False


def short_schedule(spec: str) -> str:
    """A schedule spec as its shape: the functions it nests and their text arguments (a
    cyclic schedule's mode or shape), without their numbers; a cyclic schedule with a mode
    other than the default reads as that mode (``triangular2``, ``exp_range``: torch's
    ``CyclicLR`` names, and the study's family), which fits the narrow table whole.

    >>> short_schedule("warmup(cosine(lr=0.1, total_steps=100), steps=10)")
    'warmup-cosine'
    >>> short_schedule('cyclic(base_lr=0.01, max_lr=0.1, step_size=38, mode="triangular2")')
    'triangular2'
    >>> short_schedule('cyclic(base_lr=0.01, max_lr=0.1, step_size=38, shape="sine")')
    'cyclic(sine)'
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
        if token[0] in "\"'":
            stack[-1].append(token[1:-1])
        elif token == "(":
            stack.append([])
        elif token == ")":
            inner, name = stack.pop(), names.pop() if names else ""
            stack[-1].append(f"{name}({', '.join(inner)})" if inner else name)
        else:
            names.append(token)
    parts = stack[0]
    shape = ", ".join(parts) if parts else spec
    # a warmup of one schedule reads as the study names it (warmup-cosine): a character shorter
    if shape.startswith("warmup(") and shape.endswith(")") and "," not in shape and shape.count("(") == 1:
        return "warmup-" + shape[len("warmup(") : -1]
    if shape in _CYCLIC_MODES:
        return _CYCLIC_MODES[shape]
    return shape


def short_optimizer(spec: str) -> str:
    """An optimizer spec's name (``adamw(weight_decay=0.01)`` -> ``adamw``)."""
    return spec.split("(", 1)[0].strip() or spec


def _compact(spec: str) -> str:
    return "".join(spec.split()).lower()


def optimizer_labels(specs: Sequence[str]) -> dict[str, str]:
    """Each optimizer spec's label in the narrow table: its name where no other listed spec
    has that name; else its alias or the spec without spaces, so that ``sgd`` and
    ``sgd(momentum=0.9)`` never read alike.

    >>> optimizer_labels(["sgd", "sgd(momentum=0.9)", "adamw(weight_decay=0.01)"])
    {'sgd': 'sgd', 'sgd(momentum=0.9)': 'sgdm', 'adamw(weight_decay=0.01)': 'adamw'}
    >>> optimizer_labels(["adamw", "adamw(weight_decay=0.01)"])
    {'adamw': 'adamw', 'adamw(weight_decay=0.01)': 'adamw(weight_decay=0.01)'}
    """
    specs = list(dict.fromkeys(specs))
    names = [short_optimizer(spec) for spec in specs]
    aliases = {}
    for alias, full in OPTIMIZER_ALIASES.items():
        aliases.setdefault(_compact(full), alias)
    labels = {}
    for spec, name in zip(specs, names):
        if names.count(name) == 1 or "(" not in spec:
            labels[spec] = name
            continue
        alias = aliases.get(_compact(spec))
        labels[spec] = alias if alias is not None and alias not in names else "".join(spec.split())
    return labels


def peak_lr(run: RunRecord, recorded: np.ndarray | None = None) -> float | None:
    """The largest LR ``run`` reached: for a run lrlab trained, the peak of its schedule over
    the steps it was planned for; for a run recorded from a user's own trainer (its schedule
    may be torch's, which lrlab does not know), the largest LR ``recorded`` at its steps.
    None when neither is known (a run stored before the planned steps were kept)."""
    if run.extras.get("source") == "track":
        finite = np.asarray([] if recorded is None else recorded, dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        return float(finite.max()) if len(finite) else None
    steps = run.extras.get("total_steps")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1 or run.config.schedule is None:
        return None
    return key_points(run.config.schedule, steps).peak


def recorded_lrs(store: Store, runs: Sequence[RunRecord]) -> dict[str, np.ndarray]:
    """The LR of the first param group at every recorded step, of the runs recorded from a
    user's own trainer (the only ones whose peak is read from their steps)."""
    return {r.id: store.steps(r.id).lr for r in runs if r.extras.get("source") == "track"}


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
NARROW_HEADERS = {"optimizer": "opt"}  # a header longer than its labels (sgd, adam) takes room from schedule
MIN_NAME = 5  # a name column keeps at least this many characters (an ellipsis included)


def runs_table(
    runs: Sequence[RunRecord],
    finals: Mapping[str, EpochRecord | None],
    options: ListOptions,
    width: int = 80,
    recorded: Mapping[str, np.ndarray] | None = None,
) -> tuple[Table, list[str]]:
    """The table at ``width`` characters (ignored with ``wide``), and the metric columns left
    out of it (to name under it). ``recorded``: the LRs recorded at the steps of runs from a
    user's own trainer (:func:`recorded_lrs`), their peak."""
    tasks = {r.config.task for r in runs}
    sweeps = {r.sweep for r in runs}
    optimizers = optimizer_labels([str(r.config.optimizer) for r in runs])
    peaks = {r.id: peak_lr(r, (recorded or {}).get(r.id)) for r in runs}
    known = bool(runs) and all(p is not None for p in peaks.values())
    metrics = metric_columns(runs, finals)
    shown = metrics if options.wide else metrics[:NARROW_METRICS]
    lrs = (["lr"] if options.wide or not known else []) + (["peak_lr"] if known else [])
    names = ["id", *(["sweep"] if options.wide or len(sweeps) > 1 else []), "status",
             *(["task"] if options.wide or len(tasks) > 1 else []),
             *(["optimizer"] if options.wide or len(optimizers) > 1 else []), "schedule", *lrs, "seed",
             *shown]  # fmt: skip
    prefix = "" if options.wide else _shared_prefix([r.sweep or "-" for r in runs])
    context = _Context(options, prefix, optimizers, peaks)
    rows = [_cells(run, finals.get(run.id), names, shown, context) for run in runs]
    headers = {name: name if options.wide else NARROW_HEADERS.get(name, name) for name in names}
    natural = {name: max([len(headers[name]), *(len(row[i]) for row in rows)]) for i, name in enumerate(names)}
    widths = dict(natural) if options.wide else fit_widths(natural, width)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, padding=0)  # one space between columns
    for name in names:
        numeric = name in ("lr", "peak_lr", "seed") or name in shown
        table.add_column(headers[name], justify="right" if numeric else "left", no_wrap=True, overflow="ellipsis",
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


@dataclass(frozen=True)
class _Context:
    """What every row's cells are made with: the options, the prefix the listed sweeps share,
    the optimizers' labels and the runs' peak LRs."""

    options: ListOptions
    prefix: str
    optimizers: Mapping[str, str]
    peaks: Mapping[str, float | None]


def _cells(
    run: RunRecord, last: EpochRecord | None, names: list[str], shown: list[str], context: _Context
) -> list[str]:
    """The row's cells as plain text (control characters made visible); a sweep's name
    without the prefix every listed sweep shares (an ellipsis in its place)."""
    config, options, prefix = run.config, context.options, context.prefix
    sweep = run.sweep or "-"
    optimizer = str(config.optimizer)
    cell = {
        "id": safe(run.id if options.full_ids else run.id[:ID_CHARS]),
        "sweep": safe("\u2026" + sweep[len(prefix) :] if prefix and sweep.startswith(prefix) else sweep),
        "status": str(run.status),
        "task": safe(config.task),
        "optimizer": safe(optimizer if options.wide else context.optimizers.get(optimizer, optimizer)),
        "schedule": safe(config.schedule if options.wide else short_schedule(str(config.schedule))),
        "lr": num(config.lr),
        "peak_lr": num(context.peaks.get(run.id)),
        "seed": str(run.seed),
    }
    for metric in shown:
        value = None if last is None else last.value(metric)
        cell[metric] = num(value, 3 if metric in ("val_error", "val_accuracy") else 4)
    return [cell[name] for name in names]
