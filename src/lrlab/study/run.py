"""``run_study``: range test -> schedules derived from it -> sweeps -> recommendation -> report.

Every result goes into the store, so a study that is stopped resumes where it was: the
range tests are reused from the store and finished runs are skipped. The study builds
its runs as typed :class:`~lrlab.store.records.RunConfig` values with
:class:`~lrlab.schedules.Schedule` objects; spec strings appear only in what people read.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lrlab.optim.grammar import optimizer_key, resolve_optimizer
from lrlab.schedules import Schedule
from lrlab.store.records import FinderRecord, RunConfig, RunRecord
from lrlab.store.sqlite import Store
from lrlab.study.plan import BUDGETS, SCHEDULE_NAMES, Budget, study_schedules
from lrlab.study.recommend import Recommendation, recommend

__all__ = ["ANCHOR_RULE", "StudyEvent", "StudyFiles", "StudyResult", "anchor_lr", "run_study", "study_name"]

ANCHOR_RULE = "minimum/10"


@dataclass(frozen=True)
class StudyEvent:
    """A phase of the study for a ``progress`` callback: ``phase`` is ``"plan"`` (first:
    ``total`` is every step of the plan, one per range test and one per run), ``"finder"``,
    ``"sweep"``, ``"report"`` or ``"done"``; ``detail`` says which optimizer."""

    phase: str
    detail: str
    index: int
    total: int


@dataclass(frozen=True)
class StudyFiles:
    """What the study wrote: the HTML report, its figures and ``recommendation.md``."""

    report: Path
    figures: list[Path]
    recommendation: Path


@dataclass(frozen=True)
class StudyResult:
    name: str
    task: str
    budget: str
    finders: dict[str, FinderRecord]
    sweeps: list[str]
    runs: list[RunRecord]
    schedule_names: dict[Schedule, str]
    recommendation: Recommendation
    total_steps: int
    epochs: int
    files: StudyFiles | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def study_name(task: str, budget: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in task.split(":")[-1])
    return f"study-{safe}-{budget}"


def _finder(
    store: Store,
    task: Any,
    task_ref: str,
    optimizer: str,
    name: str,
    budget: Budget,
    batch_size: int,
    device: str,
) -> FinderRecord:
    """The stored range test of this study for ``optimizer``, or a new one."""
    for record in store.finder_results(sweep=name):
        if record.optimizer == optimizer and record.config.get("task") == task_ref:
            return record
    from lrlab.study.range_tests import task_range_test

    result, record = task_range_test(
        task, task_ref, optimizer, batch_size=batch_size, seed=0, device=device, sweep=name,
        num_iter=budget.finder_iters,
    )  # fmt: skip
    if not math.isfinite(result.lr):
        raise RuntimeError(f"the range test for {optimizer} could not suggest an LR: {result.reason}")
    store.save_finder_result(record)
    return record


def run_study(
    task: str,
    store: Store,
    *,
    budget: str = "small",
    optimizers: Sequence[str] = ("sgd", "sgdm", "adam"),
    jobs: int = 1,
    backend: str = "local",
    device: str = "cpu",
    address: str | None = None,
    epochs: int | None = None,
    out: str | Path | None = None,
    progress: Callable[[Any], None] | None = None,
) -> StudyResult:
    """Run the whole study of ``task`` and return what it found (see the module doc).

    With ``out`` (a folder) the study also writes ``report.html``, ``figures/*.png`` and
    ``recommendation.md`` there (``StudyResult.files``).
    """
    from lrlab.optim.grammar import parse_optimizer
    from lrlab.sweeps import RunPlan, run_plans
    from lrlab.training.resolve import steps_per_epoch
    from lrlab.training.tasks import get_task

    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {', '.join(BUDGETS)}, got {budget!r}")
    if not optimizers:
        raise ValueError("optimizers must name at least one optimizer (e.g. sgd,sgdm,adam)")
    out_dir = None if out is None else Path(out)
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"out must be a folder, got the file {str(out_dir)!r}")
    plan = BUDGETS[budget]
    specs = [resolve_optimizer(o) for o in optimizers]
    for spec in specs:
        parse_optimizer(spec)  # a bad name fails before any training
    the_task = get_task(task)
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
        raise ValueError(f"epochs must be a whole number >= 1, got {epochs!r}")
    epochs = epochs or plan.epochs(the_task.default_epochs)
    batch_size = the_task.default_batch_size
    total_steps = epochs * steps_per_epoch(the_task, batch_size)
    name = study_name(the_task.name if ":" in task else task, budget)  # a user task: its own name
    report = progress or (lambda _event: None)
    planned = len(specs) * len(plan.lr_factors) * len(SCHEDULE_NAMES) * len(plan.seeds)
    report(StudyEvent("plan", f"{len(specs)} range tests and {planned} runs", 0, len(specs) + planned))
    finders: dict[str, FinderRecord] = {}
    sweeps: list[str] = []
    runs: list[RunRecord] = []
    schedule_names: dict[Schedule, str] = {}
    for index, spec in enumerate(specs):
        report(StudyEvent("finder", spec, index, len(specs)))
        finder = _finder(store, the_task, task, spec, name, plan, batch_size, device)
        finders[spec] = finder
        base_lr, max_lr = _bounds(finder)
        report(StudyEvent("sweep", spec, index, len(specs)))
        anchor = anchor_lr(finder)
        for factor in plan.lr_factors:
            lr = anchor * factor
            named = study_schedules(lr, base_lr * factor, max_lr * factor, total_steps)
            schedule_names.update({v: k for k, v in named.items()})
            sweep = f"{name}-{optimizer_key(spec)}" + ("" if factor == 1.0 else f"-x{factor:g}")
            plans = [
                RunPlan.of(sweep, RunConfig(task=task, lr=lr, optimizer=spec, schedule=schedule, seed=seed,
                                            epochs=epochs, batch_size=batch_size))
                for schedule in named.values()
                for seed in plan.seeds
            ]  # fmt: skip
            described = {
                "name": sweep, "task": task, "epochs": epochs, "batch_size": batch_size,
                "seeds": list(plan.seeds),
                "grid": {"lr": [lr], "optimizer": [spec], "schedule": [str(s) for s in named.values()]},
            }  # fmt: skip
            runs += run_plans(plans, store, sweep, described, jobs=jobs, backend=backend, progress=progress,
                              device=device, address=address)  # fmt: skip
            sweeps.append(sweep)
    epochs_by_run = store.epochs_for([r.id for r in runs])
    verdict = recommend(runs, epochs_by_run, schedule_names)
    result = StudyResult(
        name, task, budget, finders, sweeps, runs, schedule_names, verdict, total_steps, epochs
    )
    if out_dir is not None:
        report(StudyEvent("report", name, len(specs), len(specs)))
        result = _write_outputs(result, store, out_dir)
    report(StudyEvent("done", name, len(specs), len(specs)))
    return result


def _write_outputs(result: StudyResult, store: Store, out: Path) -> StudyResult:
    from dataclasses import replace

    from lrlab.report import load_report_data, write_report
    from lrlab.study.summary import markdown

    out.mkdir(parents=True, exist_ok=True)
    data = load_report_data(store, run_ids=[r.id for r in result.runs])
    files = write_report(data, out / "report.html", image_dir=out / "figures")
    recommendation = out / "recommendation.md"
    recommendation.write_text(markdown(result), encoding="utf-8")
    return replace(result, files=StudyFiles(out / "report.html", files.images, recommendation))


def anchor_lr(finder: FinderRecord) -> float:
    """The LR a study's budget multiplies: the range test's ``minimum/10`` suggestion (its
    recommendation when that rule could not decide).

    The study was measured against a full grid with this anchor (``benchmarks/bench_study.py``).
    Every budget's factors include 1 and 3, so for SGD it also tries about ``find_lr``'s own
    SGD default, ``minimum/3``. ``find_lr``'s default for adaptive optimizers, ``minimum/30``,
    is tuned for a constant LR over a whole run; the study's schedules mostly decay from their
    peak, which tolerates a larger one.
    """
    value = finder.suggestions.get(ANCHOR_RULE)
    return float(value) if value is not None and math.isfinite(value) else float(finder.lr)


def _bounds(finder: FinderRecord) -> tuple[float, float]:
    if finder.base_lr and finder.max_lr and math.isfinite(finder.base_lr) and math.isfinite(finder.max_lr):
        return float(finder.base_lr), float(finder.max_lr)
    # Without bounds from the curve, cycle around the recommendation (Smith: a factor of 3-4).
    return finder.lr / 2, finder.lr * 2
