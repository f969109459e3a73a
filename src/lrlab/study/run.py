"""``run_study``: range test -> schedules derived from it -> sweeps -> recommendation -> report.

Every result goes into the store, so a study that is stopped resumes where it was: the
range tests are reused from the store and finished runs are skipped. The study builds
its runs as typed :class:`~lrlab.core.records.RunConfig` values with
:class:`~lrlab.schedules.Schedule` objects; spec strings appear only in what people read.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lrlab.core.records import FinderRecord, RunRecord, RunStatus
from lrlab.core.verdict import FamilyOptimum, StudyVerdict
from lrlab.files import write_text
from lrlab.schedules import Schedule
from lrlab.store.sqlite import Store
from lrlab.study.bracketing import (
    MAX_EXTRA,
    Bracketing,
    Grid,
    grid_from_finder,
    grid_without_range_test,
    has_range_test,
)
from lrlab.study.checks import (
    MAX_STEPS,
    check_arguments,
    check_execution,
    check_whole_number,
    nothing_finished,
    resume_check,
    study_task,
)
from lrlab.study.contenders import contenders, lr_free_evidence
from lrlab.study.plan import SCHEDULE_NAMES, Budget, check_families
from lrlab.study.recommend import Recommendation
from lrlab.study.rungs import (
    MIN_STEPS,
    Setup,
    StudyEvent,
    StudyFailed,
    bracket_first_rung,
    configurations,
    estimator_plan,
    family_optima_of,
    first_rung_plans,
    more_seeds,
    neighbour_seeds,
)
from lrlab.study.summary import LrFreeEvidence, lr_free_family, markdown, study_verdict

if TYPE_CHECKING:
    from lrlab.training.tasks import Task

__all__ = [
    "StudyEvent",
    "StudyFailed",
    "StudyFiles",
    "StudyResult",
    "anchor_lr",
    "check_whole_number",
    "promote",
    "run_study",
    "save_verdict",
    "study_name",
    "study_task",
]


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
    lr_free: LrFreeEvidence | None = None  # the study's LR-free optimizers, from the store (None: none)
    grids: dict[str, Grid] = field(default_factory=dict)  # each optimizer's LR grid (not LR estimators)
    bracketing: Bracketing | None = None  # what the bracketing of the first rung did
    optima: tuple[FamilyOptimum, ...] = ()  # each optimizer x family's optimum LR, the recommendation's first

    @cached_property
    def verdict(self) -> StudyVerdict:
        """The study's verdict (:func:`lrlab.study.summary.study_verdict`), built once: what
        the CLI prints, ``recommendation.md`` holds and the store keeps."""
        return study_verdict(self)


def study_name(task: str, budget: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in task.split(":")[-1])
    return f"study-{safe}-{budget}"


def _finder(setup: Setup, optimizer: str) -> FinderRecord:
    """The stored range test of this study for ``optimizer``, or a new one."""
    replaced = None
    for record in setup.store.finder_results(sweep=setup.name):
        if record.optimizer == optimizer and record.config.get("task") == setup.ref:
            if record.id not in setup.stale:
                return record
            replaced = record.id
    from lrlab.study.range_tests import task_range_test

    result, record = task_range_test(
        setup.task, setup.ref, optimizer, batch_size=setup.batch_size, seed=0, device=setup.execution["device"],
        sweep=setup.name, num_iter=setup.plan.finder_iters,
    )  # fmt: skip
    if not math.isfinite(result.lr):
        raise StudyFailed(
            f"the range test for {optimizer} could not suggest an LR ({result.reason}); try another optimizer "
            "or `lrlab find` with a wider --start-lr/--end-lr"
        )
    record = replace(
        record, id=replaced or record.id, config={**record.config, "fingerprint": setup.fingerprint}
    )
    setup.store.save_finder_result(record)
    return record


def _first_rung(
    setup: Setup, specs: list[str], schedule_names: dict[Schedule, str]
) -> tuple[dict[str, FinderRecord], dict[str, Grid], list[str], list[RunRecord]]:
    """A range test per optimizer, then every configuration derived from it, first seed (an
    LR estimator has no range test: :func:`_estimator_plan`; a task without a range test
    starts from its ``lr_range``: :func:`~lrlab.study.bracketing.grid_without_range_test`)."""
    finders: dict[str, FinderRecord] = {}
    grids: dict[str, Grid] = {}
    sweeps: list[str] = []
    runs: list[RunRecord] = []
    for index, spec in enumerate(specs):
        if lr_free_family(spec) == "estimator":
            setup.report(StudyEvent("no-range-test", spec, index, len(specs)))
            sweep, plans, described = estimator_plan(setup, spec, schedule_names)
            runs += setup.train(plans, sweep, described)
            sweeps.append(sweep)
            continue
        if has_range_test(setup.task):
            setup.report(StudyEvent("finder", spec, index, len(specs)))
            finders[spec] = _finder(setup, spec)
            grids[spec] = grid_from_finder(
                spec, finders[spec], anchor_lr(finders[spec]), setup.plan.lr_factors
            )
            setup.report(StudyEvent("sweep", spec, index, len(specs)))
        else:
            grids[spec] = grid_without_range_test(
                spec, getattr(setup.task, "lr_range", None), setup.plan.lr_factors
            )
            setup.report(StudyEvent("grid", grids[spec].words(), index, len(specs)))
        for sweep, plans, described in first_rung_plans(setup, grids[spec], schedule_names):
            runs += setup.train(plans, sweep, described)
            sweeps.append(sweep)
    return finders, grids, sweeps, runs


def promote(
    runs: Sequence[RunRecord], epochs_by_run: Any, plan: Budget, places_of: Sequence[RunRecord] | None = None
) -> list[RunRecord]:
    """Successive halving's cut: the first-rung runs of the best ``plan.finalists(n)`` of the
    configurations that finished, best first (ranked by the one scorer). ``n`` counts the
    finished runs of ``places_of`` (the plan's own first rung: the bracketing's extra LRs
    compete for its places without adding any, so that they cost their own runs only), or of
    ``runs`` when it is not given."""
    from lrlab.core.ranking import rank

    finished = [r for r in runs if r.status is RunStatus.DONE]
    ranked = rank(finished, epochs_by_run) if finished else []
    counted = len(ranked) if places_of is None else sum(r.status is RunStatus.DONE for r in places_of)
    places = plan.finalists(counted or len(ranked))  # none of the first rung finished: the extra LRs count
    return [entry.runs[0] for entry in ranked[:places]]


def run_study(
    task: str | Task,
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
    vectorize: bool = True,
    fresh: bool = False,
    schedules: Sequence[str] = SCHEDULE_NAMES,
    task_options: dict[str, Any] | None = None,
) -> StudyResult:
    """Run the whole study of ``task`` and return what it found (see the module doc).

    ``task`` is a reference (a built-in name, ``module:function`` or ``file.py:function``),
    or a :class:`~lrlab.training.tasks.Task` built in Python (``lrlab.study``), whose runs
    are stored under its ``name``. It is built once: every range test and run of the study,
    in this process or in worker processes, trains that one object.

    Successive halving: every configuration (optimizer x LR factor x schedule) trains with
    the budget's first seed; the best of them and of the bracketing's extra LRs, as many as a
    quarter of the first rung that finished (at least three), then train with every seed of
    the budget, and the recommendation is the best of those by the mean over seeds,
    with its margin over the runner-up judged against the paired seed noise
    (:mod:`lrlab.study.recommend`). Seed ``s`` orders the batches and draws the initial
    weights of every configuration alike, so configurations are compared on the same data.
    With ``vectorize`` (the default) the runs of one optimizer and seed that differ only in
    LR and schedule train stacked in one process (:mod:`lrlab.training.vectorized`), on the
    batches of that seed.

    LR-free optimizers (:data:`lrlab.optim.lr_free.LR_FREE`) are contenders like any other:
    Prodigy and D-Adaptation have no range test and train at ``RUN_LR`` (1.0, a multiplier on
    their own estimate) with a constant and a cosine schedule; schedule-free optimizers get
    their range test and a constant LR at the budget's factors. The best configuration of an
    LR-free optimizer that missed the cut is promoted to every seed too, so that the verdict
    (``StudyVerdict.lr_free``) judges it against the recommendation within the paired seed noise.

    With ``out`` (a folder) the study also writes ``report.html``, ``figures/*.png`` and
    ``recommendation.md`` there (``StudyResult.files``). Raises ``ValueError`` for bad
    arguments and :class:`StudyFailed` when no trustworthy answer comes out.

    A study stored under the same name with another model, data or task options (its
    fingerprint, :func:`~lrlab.training.tasks._base.task_fingerprint`) is a
    :class:`~lrlab.sweeps.executors.TaskChanged` error in one line, before anything
    trains; ``fresh`` replaces the stored study (its runs and range tests) instead.

    ``schedules`` names the schedule families of the first rung, among
    :data:`~lrlab.study.plan.STUDY_FAMILIES`: the nine of :data:`~lrlab.study.plan.SCHEDULE_NAMES`
    by default, and ``plateau`` (the LR halved when the validation metric stalls) on request.
    """
    plan, specs, out_dir = check_arguments(budget, optimizers, out, epochs)
    families = check_families(schedules)
    check_execution(jobs, backend, address, progress)
    execution = {"jobs": jobs, "backend": backend, "progress": progress, "device": device, "address": address,
                 "vectorize": vectorize}  # fmt: skip
    setup = _setup(
        task, store, plan, epochs, execution, progress or (lambda _event: None), task_options or {}
    )
    fingerprint, stale = resume_check(store, setup.task, setup.name, setup.ref, fresh)
    setup = replace(setup, fingerprint=fingerprint, stale=stale, families=families)
    name, report = setup.name, setup.report
    first_rung = sum(configurations(spec, plan, families) for spec in specs)
    lr_free = [spec for spec in specs if lr_free_family(spec) is not None]
    laddered = sum(configurations(spec, plan, families) // len(plan.lr_factors) for spec in specs
                   if lr_free_family(spec) != "estimator")  # the families with an LR grid  # fmt: skip
    seeds = len(plan.seeds) - 1

    def total(extra: int) -> int:  # the plan's steps after ``extra`` bracketing runs (neighbours: at most 2)
        return (
            len(specs) + first_rung + extra + (plan.finalists(first_rung) + len(lr_free) + 2) * seeds
        )

    report(StudyEvent("plan", f"{_range_test_words(setup, specs)} and {first_rung} + up to {MAX_EXTRA * laddered} "
                      f"bracketing (at most {MAX_EXTRA} more LRs per family whose best LR is at an edge) + up to "
                      f"{total(MAX_EXTRA * laddered) - len(specs) - first_rung - MAX_EXTRA * laddered} runs", 0,
                      total(MAX_EXTRA * laddered)))  # fmt: skip
    schedule_names: dict[Schedule, str] = {}
    finders, grids, sweeps, runs = _first_rung(setup, specs, schedule_names)
    planned = list(runs)  # the first rung's runs: the finalists' places are a quarter of these
    bracketing, more_sweeps, more_runs = bracket_first_rung(setup, grids, runs, schedule_names, total)
    sweeps, runs = sweeps + more_sweeps, runs + more_runs
    report(StudyEvent("bracket", bracketing.words(), bracketing.rounds, total(bracketing.extra_runs)))
    first_epochs = store.epochs_for([r.id for r in runs])
    chosen = promote(runs, first_epochs, plan, planned)
    if not chosen:
        raise StudyFailed(nothing_finished(runs, finders))
    promoted = contenders(runs, first_epochs, chosen)
    chosen = chosen + promoted
    more_sweeps, more_runs = more_seeds(setup, chosen)
    sweeps, runs = sweeps + more_sweeps, runs + more_runs
    verdict, more_sweeps, more_runs, finalists = neighbour_seeds(
        setup, runs, schedule_names, grids, [r.configuration for r in chosen]
    )
    sweeps, runs = sweeps + more_sweeps, runs + more_runs
    result = StudyResult(
        name, setup.ref, budget, finders, sweeps, runs, schedule_names, verdict, setup.total_steps, setup.epochs,
        extras={"finalists": len(finalists), "seeds": list(plan.seeds), "contenders": len(promoted),
                "neighbours": len(finalists) - len(chosen)},
        lr_free=lr_free_evidence(store, lr_free, runs, finders, verdict,
                                  {r.config.optimizer for r in promoted}) if lr_free else None,
        grids=grids, bracketing=bracketing,
        optima=family_optima_of(setup, runs, schedule_names, grids, verdict, bracketing),
    )  # fmt: skip
    save_verdict(store, result)
    if out_dir is not None:
        report(StudyEvent("report", name, len(specs), len(specs)))
        result = _write_outputs(result, store, out_dir)
    report(StudyEvent("done", name, len(specs), len(specs)))
    return result


def _range_test_words(setup: Setup, specs: Sequence[str]) -> str:
    if not has_range_test(setup.task):
        return "no range test (the task has none: its LRs span its lr_range)"
    return f"{sum(1 for spec in specs if lr_free_family(spec) != 'estimator')} range tests"


def _setup(
    task: str | Task,
    store: Store,
    plan: Budget,
    epochs: int | None,
    execution: dict[str, Any],
    report: Callable[[Any], None],
    options: dict[str, Any],
) -> Setup:
    """The study's task, built once (with ``options``), and the run length the budget gives it."""
    from lrlab.training.resolve import steps_per_epoch
    from lrlab.training.tasks.options import options_label

    ref, the_task = study_task(task, options)
    epochs = epochs or plan.epochs(the_task.default_epochs)
    batch_size = the_task.default_batch_size
    per_epoch = steps_per_epoch(the_task, batch_size)
    total_steps = epochs * per_epoch
    if total_steps > MAX_STEPS:
        raise ValueError(
            f"epochs: {epochs:,} epoch(s) x {per_epoch:,} batch(es) = {total_steps:,} steps per run, more than a "
            f"study trains ({MAX_STEPS:,}); lower epochs or raise the batch size"
        )
    if total_steps < MIN_STEPS:
        raise StudyFailed(
            f"too few batches: {epochs} epoch(s) x {per_epoch} batch(es) = {total_steps} steps per run, and the "
            f"study's schedules need at least {MIN_STEPS}; try more --epochs or more training data"
        )
    base = the_task.name if ":" in ref else ref  # a user task: its own name
    # A variant of the task (other options) is a study of its own name: it never resumes into another's runs.
    name = study_name("-".join(filter(None, (base, options_label(options)))), plan.name)
    return Setup(ref, the_task, name, plan, epochs, batch_size, total_steps, store, execution, report,
                 options=dict(options))  # fmt: skip


def _write_outputs(result: StudyResult, store: Store, out: Path) -> StudyResult:
    from lrlab.report import load_report_data, write_report

    out.mkdir(parents=True, exist_ok=True)
    data = load_report_data(store, sweep=result.name)  # the study's record: its runs and its verdict
    files = write_report(data, out / "report.html", image_dir=out / "figures")
    recommendation = out / "recommendation.md"
    write_text(recommendation, markdown(result))  # atomically (lrlab.files)
    return replace(result, files=StudyFiles(out / "report.html", files.images, recommendation))


def save_verdict(store: Store, result: StudyResult) -> None:
    """Store the study as a sweep record of its own, named ``result.name``: its runs (by id,
    across its sweeps) and its verdict (``StudyVerdict.to_dict()``), so that
    ``lrlab report --sweep <study>`` shows the verdict the CLI printed."""
    verdict = result.verdict
    store.upsert_sweep(result.name, {"name": result.name, "task": result.task, "study": verdict.to_dict(),
                                     "run_ids": list(verdict.compute.run_ids),
                                     "sweeps": list(verdict.compute.sweeps)})  # fmt: skip


def anchor_lr(finder: FinderRecord) -> float:
    """The LR a study's budget multiplies: the range test's recommended LR, ``find_lr``'s
    default for the optimizer's family (``FinderRecord.lr``; its rule is in
    ``finder.config["rule"]``). Every budget's factors include 1, so the LR the range test
    recommends is one the study trains."""
    if not (math.isfinite(finder.lr) and finder.lr > 0):
        raise StudyFailed(f"the range test for {finder.optimizer} could not suggest an LR: {finder.reason}")
    return float(finder.lr)
