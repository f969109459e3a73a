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

from lrlab.core.records import FinderRecord, RunConfig, RunRecord, RunStatus
from lrlab.core.verdict import StudyVerdict
from lrlab.files import write_text
from lrlab.optim.grammar import optimizer_key
from lrlab.optim.lr_free import RUN_LR
from lrlab.schedules import Schedule, constant, cosine
from lrlab.store.sqlite import Store
from lrlab.study.checks import (
    MAX_STEPS,
    check_arguments,
    check_execution,
    check_whole_number,
    study_task,
)
from lrlab.study.contenders import contenders, lr_free_evidence
from lrlab.study.plan import SCHEDULE_NAMES, Budget, check_families, factor_label, study_schedules
from lrlab.study.recommend import Recommendation, recommend
from lrlab.study.summary import (
    LrFreeEvidence,
    lr_free_family,
    markdown,
    study_verdict,
)

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
class StudyEvent:
    """A phase of the study for a ``progress`` callback: ``phase`` is ``"plan"`` (first:
    ``total`` is every step of the plan, one per range test and one per run), ``"finder"``,
    ``"sweep"``, ``"no-range-test"`` (an LR estimator: its runs start without one), ``"seeds"``,
    ``"report"`` or ``"done"``; ``detail`` says which optimizer."""

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
    lr_free: LrFreeEvidence | None = None  # the study's LR-free optimizers, from the store (None: none)

    @cached_property
    def verdict(self) -> StudyVerdict:
        """The study's verdict (:func:`lrlab.study.summary.study_verdict`), built once: what
        the CLI prints, ``recommendation.md`` holds and the store keeps."""
        return study_verdict(self)


def study_name(task: str, budget: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in task.split(":")[-1])
    return f"study-{safe}-{budget}"


@dataclass(frozen=True)
class _Setup:
    """What every phase of one study shares: the task, built once, and ``ref``, the name its
    runs store (``RunConfig.task``); the study's name, budget and run length; the store,
    how runs train (``run_plans``'s options) and the progress callback."""

    ref: str
    task: Task
    name: str
    plan: Budget
    epochs: int
    batch_size: int
    total_steps: int
    store: Store
    execution: dict[str, Any]
    report: Callable[[Any], None]
    fingerprint: dict[str, Any] | None = None  # the task's (stored with its range tests)
    stale: frozenset[str] = frozenset()  # ids of stored range tests a fresh study replaces
    families: tuple[str, ...] = SCHEDULE_NAMES  # the schedule families of the first rung

    def train(self, plans: list[Any], sweep: str, described: dict[str, Any]) -> list[RunRecord]:
        """Train ``plans`` as the sweep ``sweep``, every run on the study's task object."""
        from lrlab.sweeps import run_plans

        return run_plans(plans, self.store, sweep, described, task=self.task, **self.execution)


def _finder(setup: _Setup, optimizer: str) -> FinderRecord:
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
    record = replace(record, id=replaced or record.id, config={**record.config, "fingerprint": setup.fingerprint})
    setup.store.save_finder_result(record)
    return record


class StudyFailed(RuntimeError):
    """The study cannot give a trustworthy answer (every run diverged, a range test that
    could not suggest an LR, too few steps); the message is one line and says what to try.
    Everything trained so far stays in the store."""


MIN_STEPS = 6  # three whole cycles of the cyclic schedules need at least 2 x 3 steps


def _plans(
    setup: _Setup, spec: str, finder: FinderRecord, schedule_names: dict[Schedule, str]
) -> list[tuple[str, list[Any], dict[str, Any]]]:
    """The first rung for ``spec``: one sweep per LR factor, the study's schedule families
    (nine by default), the first seed."""
    from lrlab.sweeps import RunPlan
    from lrlab.training.resolve import plateau_metric

    base_lr, max_lr = _bounds(finder)
    anchor = anchor_lr(finder)
    seed = setup.plan.seeds[0]
    task, epochs, batch_size = setup.ref, setup.epochs, setup.batch_size
    out = []
    for factor in setup.plan.lr_factors:
        lr = anchor * factor
        named = study_schedules(lr, base_lr * factor, max_lr * factor, setup.total_steps,
                                families=setup.families, epochs=setup.epochs,
                                higher_is_better=plateau_metric(setup.task)[1])  # fmt: skip
        if lr_free_family(spec) == "schedule-free":  # it replaces the schedule: a constant LR only
            named = {"constant": named["constant"]}
        schedule_names.update({v: k for k, v in named.items()})
        sweep = f"{setup.name}-{optimizer_key(spec)}" + ("" if factor == 1.0 else f"-{factor_label(factor)}")
        plans = [
            RunPlan.of(sweep, RunConfig(task=task, lr=lr, optimizer=spec, schedule=schedule, seed=seed,
                                        epochs=epochs, batch_size=batch_size))
            for schedule in named.values()
        ]  # fmt: skip
        described = {
            "name": sweep, "task": task, "epochs": epochs, "batch_size": batch_size, "seeds": [seed],
            "grid": {"lr": [lr], "optimizer": [spec], "schedule": [str(s) for s in named.values()]},
        }  # fmt: skip
        out.append((sweep, plans, described))
    return out


ESTIMATOR_SCHEDULES = ("constant", "cosine")
"""The schedules an LR estimator (Prodigy, D-Adaptation) trains with, at lr=1: its authors
recommend cosine; constant is the estimate alone."""


def _estimator_plan(
    setup: _Setup, spec: str, schedule_names: dict[Schedule, str]
) -> tuple[str, list[Any], dict[str, Any]]:
    """The first rung of an LR estimator: no range test, lr = ``RUN_LR`` (1.0, a multiplier on
    its own estimate) with a constant and a cosine schedule, the first seed."""
    from lrlab.sweeps import RunPlan

    lr = RUN_LR.get(parse_key(spec)) or 1.0
    named = {"constant": constant(lr), "cosine": cosine(lr, total_steps=setup.total_steps)}
    schedule_names.update({v: k for k, v in named.items()})
    seed = setup.plan.seeds[0]
    sweep = f"{setup.name}-{optimizer_key(spec)}"
    plans = [
        RunPlan.of(sweep, RunConfig(task=setup.ref, lr=lr, optimizer=spec, schedule=schedule, seed=seed,
                                    epochs=setup.epochs, batch_size=setup.batch_size))
        for schedule in named.values()
    ]  # fmt: skip
    described = {
        "name": sweep, "task": setup.ref, "epochs": setup.epochs, "batch_size": setup.batch_size, "seeds": [seed],
        "grid": {"lr": [lr], "optimizer": [spec], "schedule": [str(s) for s in named.values()]},
    }  # fmt: skip
    return sweep, plans, described


def parse_key(spec: str) -> str:
    """The grammar name of an optimizer spec (``"prodigy(d_coef=2)"`` -> ``"prodigy"``)."""
    from lrlab.optim.grammar import parse_optimizer

    return parse_optimizer(spec)[0]


def _configurations(spec: str, plan: Budget, families: Sequence[str] = SCHEDULE_NAMES) -> int:
    """How many configurations the first rung trains for ``spec``."""
    family = lr_free_family(spec)
    if family == "estimator":
        return len(ESTIMATOR_SCHEDULES)
    return len(plan.lr_factors) * (1 if family == "schedule-free" else len(families))


def _first_rung(
    setup: _Setup, specs: list[str], schedule_names: dict[Schedule, str]
) -> tuple[dict[str, FinderRecord], list[str], list[RunRecord]]:
    """A range test per optimizer, then every configuration derived from it, first seed (an
    LR estimator has no range test: :func:`_estimator_plan`)."""
    finders: dict[str, FinderRecord] = {}
    sweeps: list[str] = []
    runs: list[RunRecord] = []
    for index, spec in enumerate(specs):
        if lr_free_family(spec) == "estimator":
            setup.report(StudyEvent("no-range-test", spec, index, len(specs)))
            sweep, plans, described = _estimator_plan(setup, spec, schedule_names)
            runs += setup.train(plans, sweep, described)
            sweeps.append(sweep)
            continue
        setup.report(StudyEvent("finder", spec, index, len(specs)))
        finders[spec] = _finder(setup, spec)
        setup.report(StudyEvent("sweep", spec, index, len(specs)))
        for sweep, plans, described in _plans(setup, spec, finders[spec], schedule_names):
            runs += setup.train(plans, sweep, described)
            sweeps.append(sweep)
    return finders, sweeps, runs


def _more_seeds(setup: _Setup, chosen: list[RunRecord]) -> tuple[list[str], list[RunRecord]]:
    """The finalists ``chosen`` with every further seed of the budget: one sweep per seed,
    so every run's batches come from its own seed."""
    from lrlab.sweeps import RunPlan

    seeds = setup.plan.seeds
    if len(seeds) > 1:
        setup.report(StudyEvent("seeds", f"{len(chosen)} finalists x {len(seeds) - 1} more seeds", 0, len(chosen)))
    sweeps: list[str] = []
    runs: list[RunRecord] = []
    for seed in seeds[1:]:
        sweep = f"{setup.name}-seed{seed}"
        plans = [RunPlan.of(sweep, replace(r.config, seed=seed)) for r in chosen]
        described = {
            "name": sweep, "task": setup.ref, "epochs": setup.epochs, "batch_size": setup.batch_size,
            "seeds": [seed], "finalists": [r.configuration for r in chosen],
        }  # fmt: skip
        runs += setup.train(plans, sweep, described)
        sweeps.append(sweep)
    return sweeps, runs


def promote(runs: Sequence[RunRecord], epochs_by_run: Any, plan: Budget) -> list[RunRecord]:
    """Successive halving's cut: the first-rung runs of the best ``plan.finalists(n)`` of
    the ``n`` configurations that finished, best first (ranked by the one scorer)."""
    from lrlab.core.ranking import rank

    finished = [r for r in runs if r.status is RunStatus.DONE]
    ranked = rank(finished, epochs_by_run) if finished else []
    return [entry.runs[0] for entry in ranked[: plan.finalists(len(ranked))]]


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
) -> StudyResult:
    """Run the whole study of ``task`` and return what it found (see the module doc).

    ``task`` is a reference (a built-in name, ``module:function`` or ``file.py:function``),
    or a :class:`~lrlab.training.tasks.Task` built in Python (``lrlab.study``), whose runs
    are stored under its ``name``. It is built once: every range test and run of the study,
    in this process or in worker processes, trains that one object.

    Successive halving: every configuration (optimizer x LR factor x schedule) trains with
    the budget's first seed; the best quarter (at least three) then train with every seed
    of the budget, and the recommendation is the best of those by the mean over seeds,
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
    setup = _setup(task, store, plan, epochs, execution, progress or (lambda _event: None))
    setup = replace(_resume_check(setup, fresh), families=families)
    name, report = setup.name, setup.report
    first_rung = sum(_configurations(spec, plan, families) for spec in specs)
    lr_free = [spec for spec in specs if lr_free_family(spec) is not None]
    second_rung = (plan.finalists(first_rung) + len(lr_free)) * (len(plan.seeds) - 1)
    range_tests = sum(1 for spec in specs if lr_free_family(spec) != "estimator")
    report(StudyEvent("plan", f"{range_tests} range tests and {first_rung} + up to {second_rung} runs", 0,
                      len(specs) + first_rung + second_rung))  # fmt: skip
    schedule_names: dict[Schedule, str] = {}
    finders, sweeps, runs = _first_rung(setup, specs, schedule_names)
    first_epochs = store.epochs_for([r.id for r in runs])
    chosen = promote(runs, first_epochs, plan)
    if not chosen:
        raise StudyFailed(_nothing_finished(runs, finders))
    promoted = contenders(runs, first_epochs, chosen)
    chosen = chosen + promoted
    more_sweeps, more_runs = _more_seeds(setup, chosen)
    sweeps, runs = sweeps + more_sweeps, runs + more_runs
    epochs_by_run = store.epochs_for([r.id for r in runs])
    try:
        verdict = recommend(runs, epochs_by_run, schedule_names, finalists=[r.configuration for r in chosen],
                            break_ties=True)  # fmt: skip
    except ValueError as exc:
        raise StudyFailed(f"{exc}; try another optimizer or --budget large (LRs ten times smaller)") from None
    result = StudyResult(
        name, setup.ref, budget, finders, sweeps, runs, schedule_names, verdict, setup.total_steps, setup.epochs,
        extras={"finalists": len(chosen), "seeds": list(plan.seeds), "contenders": len(promoted)},
        lr_free=lr_free_evidence(store, lr_free, runs, finders, verdict,
                                  {r.config.optimizer for r in promoted}) if lr_free else None,
    )  # fmt: skip
    save_verdict(store, result)
    if out_dir is not None:
        report(StudyEvent("report", name, len(specs), len(specs)))
        result = _write_outputs(result, store, out_dir)
    report(StudyEvent("done", name, len(specs), len(specs)))
    return result


def _setup(
    task: str | Task,
    store: Store,
    plan: Budget,
    epochs: int | None,
    execution: dict[str, Any],
    report: Callable[[Any], None],
) -> _Setup:
    """The study's task, built once, and the run length the budget gives it."""
    from lrlab.training.resolve import steps_per_epoch

    ref, the_task = study_task(task)
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
    name = study_name(the_task.name if ":" in ref else ref, plan.name)  # a user task: its own name
    return _Setup(ref, the_task, name, plan, epochs, batch_size, total_steps, store, execution, report)


def _resume_check(setup: _Setup, fresh: bool) -> _Setup:
    """The study's fingerprint, checked against what the store holds under its name: its
    sweeps (``TaskChanged`` when one holds finished runs of another model, data or task
    options) and its range tests (one of another task is never reused). With ``fresh`` the
    stored sweeps are deleted and the range tests marked to be replaced."""
    from lrlab.sweeps.executors import TaskChanged
    from lrlab.training.tasks import is_reference
    from lrlab.training.tasks._base import fingerprint_change, task_fingerprint

    store, fingerprint = setup.store, task_fingerprint(setup.task)
    sweeps = {}
    for sweep in store.sweeps():
        if sweep == setup.name or sweep.startswith(f"{setup.name}-"):
            spec = store.sweep_spec(sweep)
            if spec.get("task") == setup.ref:
                sweeps[sweep] = spec.get("fingerprint")
    finders = [f for f in store.finder_results(sweep=setup.name) if f.config.get("task") == setup.ref]
    if fresh:
        for sweep in sweeps:
            store.delete_sweep(sweep)
        return replace(setup, fingerprint=fingerprint, stale=frozenset(f.id for f in finders))
    stored = [old for name, old in sweeps.items() if any(r.status.is_finished for r in store.runs(sweep=name))]
    stored += [f.config.get("fingerprint") for f in finders]
    for old in stored:
        change = fingerprint_change(old, fingerprint)
        if change is not None:
            what, how = change
            label = setup.ref
            keep = "use another store (--store) to keep both" if is_reference(label) else (
                f"pass name='{label}-2' to keep both")  # fmt: skip
            raise TaskChanged(
                f"{what} changed since study {label!r} was stored ({how}); {keep}, or fresh=True / --fresh to "
                "replace it"
            )
    return replace(setup, fingerprint=fingerprint)


def _nothing_finished(runs: Sequence[RunRecord], finders: dict[str, FinderRecord]) -> str:
    diverged = sum(1 for r in runs if r.status is RunStatus.DIVERGED)
    lrs = sorted(r.config.lr for r in runs)
    where = f" (LRs {lrs[0]:.3g}..{lrs[-1]:.3g})" if lrs else ""
    return (
        f"no trustworthy answer: {diverged} of {len(runs)} runs diverged and none finished{where}; try "
        "--budget large (LRs down to a tenth of the range test's), another optimizer (adam), or `lrlab find` "
        "to look at the curve"
    )


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


def _bounds(finder: FinderRecord) -> tuple[float, float]:
    if finder.base_lr and finder.max_lr and math.isfinite(finder.base_lr) and math.isfinite(finder.max_lr):
        return float(finder.base_lr), float(finder.max_lr)
    # Without bounds from the curve, cycle around the recommendation (Smith: a factor of 3-4).
    return finder.lr / 2, finder.lr * 2
