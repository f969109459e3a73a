"""A study's arguments checked before anything is built, trained or stored: the budget, the
optimizers, the output folder, the sizes (``MAX_EPOCHS``, ``MAX_STEPS``), how the runs train
(jobs, the backend, a Ray cluster that answers) and the task itself."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lrlab.core.records import FinderRecord, RunRecord, RunStatus
from lrlab.optim.grammar import resolve_optimizer
from lrlab.study.plan import BUDGETS, Budget

if TYPE_CHECKING:
    from lrlab.store.sqlite import Store
    from lrlab.training.tasks import Task

__all__ = [
    "MAX_EPOCHS",
    "MAX_STEPS",
    "check_arguments",
    "check_execution",
    "check_whole_number",
    "nothing_finished",
    "resume_check",
    "study_task",
]


def check_arguments(
    budget: str, optimizers: Sequence[str], out: str | Path | None, epochs: int | None
) -> tuple[Budget, list[str], Path | None]:
    """The budget, the optimizer specs and the output folder, or ``ValueError`` before
    anything is built or trained."""
    from lrlab.optim.grammar import parse_optimizer

    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {', '.join(BUDGETS)}, got {budget!r}")
    if isinstance(optimizers, str):
        raise ValueError(f"optimizers must be a list of optimizer names or specs, got the string {optimizers!r} "
                         f"(write [{optimizers!r}])")  # fmt: skip
    if not optimizers:
        raise ValueError("optimizers must name at least one optimizer (e.g. sgd,sgdm,adam)")
    for name in optimizers:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"optimizers must be optimizer names or specs (e.g. 'sgd', 'adam(betas=[0.9, 0.99])'), "
                             f"got {name!r}")  # fmt: skip
    out_dir = None if out is None else Path(out)
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"out must be a folder, got the file {str(out_dir)!r}")
    specs = [resolve_optimizer(o) for o in optimizers]
    for spec in specs:
        parse_optimizer(spec)  # a bad name fails before any training
    check_whole_number("epochs", epochs, MAX_EPOCHS)
    return BUDGETS[budget], specs, out_dir


def check_execution(jobs: Any, backend: Any, address: Any, progress: Any) -> None:
    """How the runs train, checked before anything is stored: ``jobs``, the backend, and for
    Ray a cluster that answers (within seconds, not after the local runs trained)."""
    check_whole_number("jobs", jobs, 1024)
    if backend not in ("local", "ray"):
        raise ValueError(f"backend must be local or ray, got {backend!r}")
    if address is not None and (backend != "ray" or not isinstance(address, str)):
        raise ValueError(f"address (a Ray cluster's, a string) goes with backend='ray', got {address!r}")
    if progress is not None and not callable(progress):
        raise ValueError(f"progress must be a function of one event, or None, got {type(progress).__name__}")
    if backend == "ray":
        from lrlab.sweeps.executors import connect_ray

        if address is None:
            import importlib.util

            if importlib.util.find_spec("ray") is None:
                raise ValueError("the ray backend needs Ray: pip install 'lrlab[ray]'")
        else:
            connect_ray(address, jobs).close()  # no cluster: one line now, not after the local runs


# The largest run a study plans: beyond these a run would outlast any machine, and the
# arrays of its schedules (one number per step) would not fit in memory.
MAX_EPOCHS = 100_000
MAX_STEPS = 10_000_000


def check_whole_number(label: str, value: Any, maximum: int | None = None) -> None:
    """``ValueError`` unless ``value`` is None or a whole number >= 1 (not a bool), and at
    most ``maximum`` when given."""
    bad = isinstance(value, bool) or not isinstance(value, int) or value < 1
    if value is not None and (bad or (maximum is not None and value > maximum)):
        bound = "" if maximum is None else f" (at most {maximum:,})"
        raise ValueError(f"{label} must be a whole number >= 1, got {value!r}{bound}")


def study_task(task: str | Task, options: dict[str, Any] | None = None) -> tuple[str, Task]:
    """``(ref, task)``: the name a study's runs store (``RunConfig.task``) and the task,
    built once. A reference is built with ``get_task(ref, **options)``; a :class:`Task` built
    in Python is taken as it is (its options are set where it is built), under its ``name``,
    which must not be a reference (a built-in task's name, or one with a ``:``): its runs
    would pass for that task's."""
    from lrlab.training.tasks import BUILTIN_TASKS, Task, check_task, get_task, is_reference

    if isinstance(task, str):
        built = get_task(task, **(options or {}))
        check_task(built, task)  # a model that does not fit its data: one line before anything is stored
        return task, built
    from lrlab.training.trial_task import is_trainable

    if not isinstance(task, Task) and not is_trainable(task):  # a trainable function's task stands for one
        raise ValueError(f"task must be a task reference or a Task, got {type(task).__name__}")
    if options:
        raise ValueError(
            f"task options go with a task reference; the Task {task.name!r} takes them where it is built"
        )
    if not task.name or is_reference(task.name):
        raise ValueError(
            f"task name {task.name!r} is taken or not a plain name (built-in: {', '.join(BUILTIN_TASKS)}; "
            "no ':')"
        )
    check_task(task)
    return task.name, task


def resume_check(
    store: Store, task: Task, name: str, ref: str, fresh: bool
) -> tuple[dict[str, Any], frozenset[str]]:
    """The study's fingerprint, checked against what the store holds under its ``name``: its
    sweeps (``TaskChanged`` when one holds finished runs of another model, data or task
    options) and its range tests (one of another task is never reused). With ``fresh`` the
    stored sweeps are deleted and the range tests' ids returned, to be replaced.

    Returns ``(fingerprint, stale range-test ids)``."""
    from lrlab.sweeps.executors import TaskChanged
    from lrlab.training.tasks import is_reference
    from lrlab.training.tasks._base import fingerprint_change, task_fingerprint

    fingerprint = task_fingerprint(task)
    sweeps = {}
    for sweep in store.sweeps():
        if sweep == name or sweep.startswith(f"{name}-"):
            spec = store.sweep_spec(sweep)
            if spec.get("task") == ref:
                sweeps[sweep] = spec.get("fingerprint")
    finders = [f for f in store.finder_results(sweep=name) if f.config.get("task") == ref]
    if fresh:
        for sweep in sweeps:
            store.delete_sweep(sweep)
        return fingerprint, frozenset(f.id for f in finders)
    stored = [
        old for sweep, old in sweeps.items() if any(r.status.is_finished for r in store.runs(sweep=sweep))
    ]
    stored += [f.config.get("fingerprint") for f in finders]
    for old in stored:
        change = fingerprint_change(old, fingerprint)
        if change is not None:
            what, how = change
            keep = "use another store (--store) to keep both" if is_reference(ref) else (
                f"pass name='{ref}-2' to keep both")  # fmt: skip
            raise TaskChanged(
                f"{what} changed since study {ref!r} was stored ({how}); {keep}, or fresh=True / --fresh to "
                "replace it"
            )
    return fingerprint, frozenset()


def nothing_finished(runs: Sequence[RunRecord], finders: dict[str, FinderRecord]) -> str:
    """Why no run of the first rung can be promoted, and what to try, in one line."""
    diverged = sum(1 for r in runs if r.status is RunStatus.DIVERGED)
    lrs = sorted(r.config.lr for r in runs)
    where = f" (LRs {lrs[0]:.3g}..{lrs[-1]:.3g})" if lrs else ""
    return (
        f"no trustworthy answer: {diverged} of {len(runs)} runs diverged and none finished{where}; try "
        "--budget large (LRs down to a tenth of the range test's), another optimizer (adam), or `lrlab find` "
        "to look at the curve"
    )
