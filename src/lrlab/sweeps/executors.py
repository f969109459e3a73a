"""Executors: train a sweep's runs inline, in local worker processes, or on Ray.

:func:`run_sweep` expands a sweep file (``lrlab.sweeps.grid``) and hands its runs to
:func:`run_plans`, which the study calls with runs it built itself. Runs already
finished (``RunStatus.is_finished``) are skipped; the others are (re)trained. Every
executor records a run through the same store lifecycle (``begin_run`` /
``append_metrics`` / ``end_run``); a Ray result is imported in one transaction.

A run whose task is a trainable function (``@lrlab.trainable``) is trained by calling the
function with a trial (:func:`~lrlab.training.trial_run.train_any`), inline, in the worker
processes or on Ray alike; the vectorised trainer is never used for one.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import pickle
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lrlab.core.records import RunConfig, RunRecord, RunStatus
from lrlab.store.sqlite import ClaimLost, Store, new_owner
from lrlab.sweeps.grid import RunPlan, build_task, expand
from lrlab.sweeps.spec import SweepSpec, load_sweep
from lrlab.training.recorder import REMOVED, REMOVED_LINE, RunProgress
from lrlab.training.tasks import Task, get_task, is_reference
from lrlab.training.trial_run import train_any
from lrlab.training.trial_task import is_trainable

__all__ = ["BACKENDS", "SweepProgress", "TaskChanged", "run_plans", "run_sweep"]

BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class SweepProgress:
    """Sweep-level events for a ``progress`` callback (run-level ones are ``RunProgress``).

    ``event`` is ``"start"`` (``total`` runs, ``skipped`` already finished) or ``"end"``.
    """

    event: str
    sweep: str
    total: int
    skipped: int = 0
    counts: dict[str, int] = field(default_factory=dict)


ProgressFn = Callable[[Any], None]


def run_sweep(
    spec: SweepSpec | str | Path | dict[str, Any],
    store: Store,
    jobs: int = 1,
    backend: str = "local",
    progress: ProgressFn | None = None,
    *,
    task: Task | None = None,
    **execution: Any,
) -> list[RunRecord]:
    """Run every unfinished run of the sweep and return all its runs' records.

    ``jobs`` is the number of runs trained at once (worker processes for ``local``, Ray
    tasks in flight for ``ray``). ``progress`` receives ``SweepProgress`` and
    ``RunProgress`` events, in the calling thread. Ctrl-C stops the workers, puts the
    runs in flight back in the queue and re-raises ``KeyboardInterrupt``. ``execution``
    takes :func:`run_plans`'s ``device``, ``address``, ``gpus_per_run``, ``vectorize``,
    ``max_group`` (these two default to the sweep file's) and ``fresh``. The sweep's task is built
    once (or is ``task``, when the caller built it with :func:`~lrlab.sweeps.grid.build_task`)
    and every run trains that object.
    """
    if not isinstance(spec, SweepSpec):
        spec = load_sweep(spec)
    _check_execution(backend, jobs, execution.get("gpus_per_run", 0.0))
    task = build_task(spec) if task is None else task
    execution["vectorize"] = execution.get("vectorize") or spec.vectorize
    execution["max_group"] = execution.get("max_group") or spec.max_group
    return run_plans(expand(spec, task), store, spec.name, spec.model_dump(mode="json"), jobs=jobs,
                     backend=backend, progress=progress, task=task, **execution)  # fmt: skip


def _check_execution(backend: str, jobs: int, gpus_per_run: float) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    if not gpus_per_run >= 0:
        raise ValueError(f"gpus_per_run must be >= 0, got {gpus_per_run!r}")


@dataclass(frozen=True)
class _Target:
    """Where the runs of one :func:`run_plans` call train and record: the store and sweep,
    the progress callback, the device, the claim owner, and the task they share (None:
    each run builds its own from ``config.task``, a reference)."""

    store: Store
    sweep: str
    report: ProgressFn
    device: str
    owner: str
    task: Task | None


def run_plans(
    plans: Sequence[RunPlan],
    store: Store,
    sweep: str,
    spec: dict[str, Any],
    *,
    jobs: int = 1,
    backend: str = "local",
    progress: ProgressFn | None = None,
    device: str = "cpu",
    address: str | None = None,
    gpus_per_run: float = 0.0,
    vectorize: bool = False,
    max_group: int | None = None,
    task: Task | None = None,
    fresh: bool = False,
) -> list[RunRecord]:
    """Register ``plans`` as the sweep ``sweep`` (its ``spec`` stored for people), train the
    unfinished ones, and return every plan's record in plan order.

    With ``task``, its fingerprint (model, data, options:
    :func:`~lrlab.training.tasks._base.task_fingerprint`) is stored with the sweep, and a
    sweep stored with finished runs of another model, data or options is a
    :class:`TaskChanged` error in one line, before anything trains; ``fresh`` deletes the
    stored sweep and its runs first, and trains every run again.

    ``task`` is the task every plan's ``config.task`` names, when the caller holds it (a
    study's, a sweep's): every run trains that one object (worker processes inherit it
    where they fork; where they are spawned, a task built in Python is pickled to them and
    one named by a reference is built once in each). Without it each run builds its own.
    """
    _check_execution(backend, jobs, gpus_per_run)
    todo = _register(plans, store, sweep, _fingerprinted(store, sweep, spec, task, fresh))
    report = progress or (lambda _event: None)
    report(SweepProgress("start", sweep, len(plans), skipped=len(plans) - len(todo)))
    # Every run is claimed before it trains: a second process on the same sweep trains only
    # what nobody holds, and a finished run is never touched again.
    target = _Target(store, sweep, report, device, new_owner(), task)
    try:
        if vectorize and not is_trainable(task):  # groups first (training.vectorized), the rest as usual
            from lrlab.training.vectorized import run_vectorized

            todo = run_vectorized(todo, store, sweep, report, device=device, max_group=max_group,
                                  owner=target.owner, task=task)  # fmt: skip
        if backend == "ray":
            _run_ray(todo, target, jobs, address, gpus_per_run)
        elif jobs == 1 or len(todo) <= 1:
            _run_inline(todo, target)
        else:
            _run_processes(todo, target, jobs)
    except KeyboardInterrupt:
        _requeue_running(store, [p.id for p in todo], target.owner)
        raise
    records = store.runs(ids=[p.id for p in plans])
    order = {p.id: i for i, p in enumerate(plans)}
    records.sort(key=lambda r: order[r.id])
    report(SweepProgress("end", sweep, len(plans), skipped=len(plans) - len(todo), counts=_counts(records)))
    return records


class TaskChanged(ValueError):
    """A study, sweep or tune was stored under this name with another model, data or task
    options: its results are not this task's, so nothing resumes into them."""


def _fingerprinted(store: Store, sweep: str, spec: dict[str, Any], task: Task | None, fresh: bool) -> dict[str, Any]:
    """``spec`` with the task's fingerprint, after the resume check: ``TaskChanged`` when the
    sweep was stored with finished runs of another model, data or options; with ``fresh``
    the stored sweep and its runs are deleted instead."""
    from lrlab.training.tasks._base import fingerprint_change, task_fingerprint

    if fresh:
        store.delete_sweep(sweep)
    if task is None:
        return spec
    fingerprint = task_fingerprint(task)
    try:
        stored = store.sweep_spec(sweep).get("fingerprint")
    except KeyError:
        stored = None
    change = fingerprint_change(stored, fingerprint)
    if change is not None and any(r.status.is_finished for r in store.runs(sweep=sweep)):
        what, how = change
        raise TaskChanged(
            f"{what} changed since sweep {sweep!r} was stored ({how}); give the sweep another name to keep both, "
            "or fresh=True / --fresh to replace it"
        )
    return {**spec, "fingerprint": fingerprint}


def _register(plans: Sequence[RunPlan], store: Store, sweep: str, spec: dict[str, Any]) -> list[RunPlan]:
    """Store the sweep and its runs (new ones queued); return the plans not yet finished."""
    store.upsert_sweep(sweep, spec)
    store.create_runs([p.queued(sweep) for p in plans])
    status = {r.id: r.status for r in store.runs(ids=[p.id for p in plans])}
    # A run another process removed meanwhile (lrlab runs rm) is skipped when its turn comes.
    return [p for p in plans if p.id not in status or not status[p.id].is_finished]


def _counts(records: Sequence[RunRecord]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in records:
        counts[r.status.value] = counts.get(r.status.value, 0) + 1
    return counts


def _requeue_running(store: Store, ids: Sequence[str], owner: str) -> None:
    for record in store.runs(ids=list(ids), status=RunStatus.RUNNING):
        with contextlib.suppress(ClaimLost):  # held by another process: theirs to finish
            store.end_run(record.id, RunStatus.QUEUED, error="interrupted", owner=owner)


def _run_inline(todo: list[RunPlan], target: _Target) -> None:

    for plan in todo:
        _train_unless_removed(
            target.store, plan.id, target.report,
            lambda plan=plan: train_any(plan.config, target.store, plan.id, progress=target.report,
                                        device=target.device, sweep=target.sweep, owner=target.owner,
                                        task=target.task),
        )  # fmt: skip


def _train_unless_removed(store: Store, run_id: str, report: ProgressFn, train: Callable[[], RunRecord]) -> str:
    """Train a run with ``train`` unless another process removed it from the store (``lrlab
    runs rm``) before or while it trained: then it is skipped, ``report`` is told so in one
    line, and the sweep goes on. Returns the run's status (``REMOVED`` when skipped)."""
    if store.has_run(run_id):
        try:
            return train().status.value
        except KeyError:  # the run was deleted under the training loop
            if store.has_run(run_id):
                raise
    report(RunProgress("end", run_id, 0, 0, 0, 0, status=REMOVED, error=REMOVED_LINE))
    return REMOVED


# "fork" where it exists: the workers start at once with torch, the task's data and
# lrlab already imported (a spawned worker spends seconds importing torch and
# scikit-learn). torch resets its thread pools in a forked child; each run sets its own
# thread count (``ResolvedRun.threads``); the store opens a fresh SQLite connection in
# each process.
_START_METHOD = "fork" if sys.platform.startswith("linux") else "spawn"

# Worker-process state (set by the pool initializer).
_WORKER: dict[str, Any] = {}


def _init_worker(store: Store, events: Any, parent: int, task: Task | None, build: bool) -> None:
    # Ctrl-C is the parent's to handle: it stops the workers and requeues their runs.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    _WORKER.update(store=store, events=events, task=task, build=build)


def _for_workers(task: Task | None, plans: Sequence[RunPlan]) -> tuple[Task | None, bool]:
    """The task the workers get, and whether each builds it once from the runs' reference
    instead: a forked worker inherits the object (never pickled); a spawned one builds a
    task named by a reference itself, and gets a task built in Python pickled."""
    if task is None or _START_METHOD == "fork":
        return task, False
    if is_reference(plans[0].config.task):
        return None, True
    try:
        pickle.dumps(task)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise ValueError(
            f"task {task.name!r} was built in Python and does not pickle ({exc}), so worker processes, which "
            "start afresh here, cannot get it: use jobs=1, or a task file ('file.py:function')"
        ) from None
    return task, False


def _worker_task(config: RunConfig) -> Task | None:
    if _WORKER["task"] is None and _WORKER["build"]:  # once per worker, on its first run
        _WORKER["task"] = get_task(config.task, **config.task_options)
    return _WORKER["task"]


def _die_with_parent(parent: int) -> None:
    """A worker never outlives the sweep that forked it, even one killed with SIGKILL: the
    kernel signals it when the parent dies (Linux), and a watcher thread checks elsewhere."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the prctl took effect
            os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="lrlab-parent-watch").start()


def _worker_run(run_id: str, config: RunConfig, device: str, sweep: str, owner: str) -> tuple[str, str]:

    store, events = _WORKER["store"], _WORKER["events"]
    status = _train_unless_removed(
        store, run_id, events.put,
        lambda: train_any(config, store, run_id, progress=events.put, device=device, sweep=sweep, owner=owner,
                          task=_worker_task(config)),
    )  # fmt: skip
    return run_id, status


def _drain(events: Any, report: ProgressFn) -> None:
    while True:
        try:
            report(events.get_nowait())
        except queue.Empty:
            return


def _run_processes(todo: list[RunPlan], target: _Target, jobs: int) -> None:
    if target.store.path == ":memory:":
        raise ValueError("jobs > 1 needs a store on disk, not ':memory:'")
    shipped, build = _for_workers(target.task, todo)
    context = multiprocessing.get_context(_START_METHOD)
    events = context.Queue()
    workers = min(jobs, len(todo))  # never more workers than runs
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                               initargs=(target.store, events, os.getpid(), shipped, build))  # fmt: skip
    pending: set[Future[tuple[str, str]]] = set()
    try:
        for plan in todo:
            pending.add(pool.submit(_worker_run, plan.id, plan.config, target.device, target.sweep, target.owner))
        while pending:
            finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            _drain(events, target.report)
            for future in finished:
                future.result()  # a worker that died raises BrokenProcessPool here
        time.sleep(0.05)
        _drain(events, target.report)
    except BaseException:
        for future in pending:
            future.cancel()
        for process in list(getattr(pool, "_processes", {}).values()):
            if process.is_alive():
                process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


# ---------------------------------------------------------------- Ray


def _ray_train(run_id: str, config: RunConfig, device: str, sweep: str, task: Task | None) -> dict[str, Any]:
    """Runs on a Ray worker: train into a private in-memory store, return everything.
    ``task`` is a task built in Python (shipped once with ``ray.put``); None: the worker
    builds the run's task from its reference."""

    local = Store(":memory:")
    record = train_any(config, local, run_id, device=device, sweep=sweep, task=task)
    steps = local.steps(run_id)
    rows = [
        (int(s), int(e), [float(x) for x in lrs], None if math.isnan(m) else float(m), float(loss), float(g))
        for s, e, lrs, m, loss, g in zip(steps.step, steps.epoch, steps.lrs, steps.momentum, steps.loss,
                                         steps.grad_norm)
    ]  # fmt: skip
    series = {name: (line.steps, line.values) for name, line in local.instruments(run_id).items()}
    return {"record": record, "steps": rows, "epochs": local.epochs(run_id), "series": series,
            "findings": local.findings(run_id)}  # fmt: skip


def _import_result(store: Store, payload: dict[str, Any], owner: str) -> RunStatus:
    """A Ray result into the store, in one transaction: it lands whole or not at all."""
    from dataclasses import replace

    record: RunRecord = payload["record"]
    record = replace(record, extras={**record.extras, "backend": "ray"})
    store.import_run(record, payload["steps"], payload["epochs"], owner=owner,
                     series=payload.get("series"), findings=payload.get("findings", ()))  # fmt: skip
    return record.status


RAY_CONNECT_SECONDS = 30.0


@dataclass
class RaySession:
    """A Ray connection: ``ray`` the module, ``started_here`` whether closing shuts it down."""

    ray: Any
    started_here: bool

    def close(self) -> None:
        if self.started_here:
            self.ray.shutdown()


def connect_ray(address: str | None, jobs: int, gpus_per_run: float = 0.0) -> RaySession:
    """Join the cluster at ``address`` (or start a local instance with ``jobs`` CPUs) and
    check it can meet ``gpus_per_run``; one line (``ValueError``) within seconds when no
    cluster answers or Ray is not installed. The sweep and the tune backends share it."""
    try:
        import ray
    except ImportError:
        raise ValueError("the ray backend needs Ray: pip install 'lrlab[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        _connect_ray(ray, address, jobs)
    session = RaySession(ray, started_here)
    try:
        _check_ray_resources(ray, gpus_per_run)
    except ValueError:
        session.close()
        raise
    return session


def _connect_ray(ray: Any, address: str | None, jobs: int) -> None:
    """Start a local Ray instance, or join the cluster at ``address``, failing within about
    ``RAY_CONNECT_SECONDS`` with one line instead of hanging or a traceback."""
    import logging
    import socket

    # Ray's start-up chatter (instance started, token authentication) is not lrlab's output.
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "ignore_reinit_error": True,
                               "logging_level": logging.ERROR}  # fmt: skip
    if not address:
        ray.init(num_cpus=jobs, **options)
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if address != "auto" and host and port.isdigit():
        try:  # an unreachable address would otherwise retry for minutes
            socket.create_connection((host, int(port)), timeout=RAY_CONNECT_SECONDS).close()
        except OSError as exc:
            raise ValueError(f"no Ray cluster answers at {address} ({exc.strerror or exc}); start one with "
                             "'ray start --head' or leave out --address for a local instance") from None
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"cannot join the Ray cluster at {address!r}: {first}") from None


def _check_ray_resources(ray: Any, gpus_per_run: float) -> None:
    """Refuse at once a request the cluster can never meet (Ray would wait for it forever)."""
    gpus = float(ray.cluster_resources().get("GPU", 0.0))
    if gpus_per_run > gpus:
        raise ValueError(
            f"--gpus-per-run {gpus_per_run:g} asks for more GPUs than the Ray cluster has ({gpus:g}); "
            "use --gpus-per-run 0 on a cluster without GPUs"
        )


def _run_ray(todo: list[RunPlan], target: _Target, jobs: int, address: str | None, gpus_per_run: float) -> None:
    session = connect_ray(address, jobs, gpus_per_run)
    ray = session.ray
    remote = ray.remote(num_cpus=1, num_gpus=gpus_per_run, max_retries=0)(_ray_train)
    # A task built in Python travels once, by value; one named by a reference is rebuilt
    # on the worker from it (a task file's functions are not importable there by module).
    shipped = None if target.task is None or is_reference(todo[0].config.task) else ray.put(target.task)
    waiting = list(todo)
    in_flight: dict[Any, RunPlan] = {}
    try:
        while waiting or in_flight:
            while waiting and len(in_flight) < jobs:
                plan = waiting.pop(0)
                if not target.store.begin_run(plan.queued(target.sweep), owner=target.owner):
                    continue  # another process holds it
                target.report(RunProgress("start", plan.id, 0, plan.config.epochs or 0, 0, 0))
                in_flight[remote.remote(plan.id, plan.config, target.device, target.sweep, shipped)] = plan
            done, _ = ray.wait(list(in_flight), num_returns=1, timeout=1.0)
            for ref in done:
                _collect(ray, ref, in_flight.pop(ref), target)
    except BaseException:
        for ref in in_flight:
            ray.cancel(ref, force=True)
        raise
    finally:
        session.close()


def _collect(ray: Any, ref: Any, plan: RunPlan, target: _Target) -> None:
    """A finished Ray task's run into the store (failed, with the reason, if the task died)."""
    epochs = plan.config.epochs or 0
    try:
        status = _import_result(target.store, ray.get(ref), target.owner)
        error = target.store.run(plan.id).error
    except Exception as exc:  # the Ray task itself died (worker lost, out of memory...)
        status, error = RunStatus.FAILED, f"ray: {type(exc).__name__}: {exc}".splitlines()[0]
        target.store.end_run(plan.id, RunStatus.FAILED, error=error, owner=target.owner)
    target.report(RunProgress("end", plan.id, epochs, epochs, 0, 0, status=status.value, error=error))
