"""Sweeps: a TOML file -> a validated ``SweepSpec`` -> a grid of runs -> an executor.

Example sweep file::

    name = "digits-lr"
    task = "digits-mlp"
    epochs = 5
    batch_size = 64
    seeds = [0, 1]

    [grid]
    lr = { logspace = [1e-3, 1.0, 7] }          # or a list: lr = [0.01, 0.1]
    optimizer = ["sgd(momentum=0.9)", "adam"]
    schedule = ["constant(lr={lr})", "cosine(lr={lr}, total_steps={total_steps})"]

Each combination of the grid axes and the seeds is one run; ``{lr}``, ``{total_steps}``
and ``{steps_per_epoch}`` are substituted into the schedule (and momentum) specs. A run's
id is a hash of the sweep name and its resolved config, so re-running a sweep skips
finished runs (``done``, ``diverged``) and restarts the others (interrupted or failed).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import multiprocessing
import os
import queue
import signal
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lrlab.experiments.loop import DEFAULT_DIVERGENCE_FACTOR, RunProgress, substitute
from lrlab.experiments.records import RunRecord
from lrlab.experiments.store import Store

__all__ = [
    "BACKENDS",
    "RunPlan",
    "SweepProgress",
    "SweepSpec",
    "SweepSpecError",
    "expand",
    "load_sweep",
    "run_id_for",
    "run_sweep",
]

BACKENDS = ("local", "ray")
FINISHED = ("done", "diverged")
_CHECK = {"lr": 0.1, "total_steps": 1000, "steps_per_epoch": 10}


class SweepSpecError(ValueError):
    """A sweep file that cannot be used; the message names the key path, value and expectation."""


# ---------------------------------------------------------------- the spec


class _Range(BaseModel):
    model_config = ConfigDict(extra="forbid")
    logspace: tuple[float, float, int] | None = None
    linspace: tuple[float, float, int] | None = None

    @model_validator(mode="after")
    def _one(self) -> _Range:
        chosen = [k for k in ("logspace", "linspace") if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise ValueError(
                "expected exactly one of logspace = [start, stop, n] or linspace = [start, stop, n]"
            )
        start, stop, count = getattr(self, chosen[0])
        if count < 1:
            raise ValueError(f"n must be >= 1, got {count}")
        if chosen[0] == "logspace" and (start <= 0 or stop <= 0):
            raise ValueError(f"logspace needs start and stop > 0, got {start!r}, {stop!r}")
        return self

    def values(self) -> list[float]:
        if self.logspace is not None:
            start, stop, count = self.logspace
            if count == 1:
                return [float(start)]
            a, b = math.log10(start), math.log10(stop)
            raw = [10 ** (a + (b - a) * i / (count - 1)) for i in range(count)]
        else:
            assert self.linspace is not None
            start, stop, count = self.linspace
            raw = [start + (stop - start) * i / max(count - 1, 1) for i in range(count)]
        # Six significant digits: readable in tables and stable in the run ids.
        return [float(f"{v:.6g}") for v in raw]


class Grid(BaseModel):
    """The grid axes; every combination (times the seeds) is one run."""

    model_config = ConfigDict(extra="forbid")
    lr: Any
    optimizer: list[str] = Field(default_factory=lambda: ["sgd"])
    schedule: list[str] = Field(default_factory=lambda: ["constant(lr={lr})"])
    momentum: list[str] | None = None
    lr_mult: list[dict[str, float]] | None = None
    batch_size: list[int] | None = None

    @field_validator("lr", mode="before")
    @classmethod
    def _lrs(cls, value: Any) -> Any:
        expected = "expected a learning rate, a list of them, or {logspace = [start, stop, n]}"
        if isinstance(value, dict):
            try:
                rng = _Range.model_validate(value)
            except ValidationError as exc:
                raise ValueError(
                    f"{exc.errors()[0]['msg'].removeprefix('Value error, ')} ({expected})"
                ) from None
            values = rng.values()
            result: Any = rng
        else:
            items = value if isinstance(value, list) else [value]
            if not items or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in items):
                raise ValueError(expected)
            values = result = [float(v) for v in items]
        bad = [v for v in values if not (v > 0 and math.isfinite(v))]
        if bad:
            raise ValueError(f"learning rates must be finite and > 0, got {bad[0]!r}")
        return result

    @field_validator("optimizer")
    @classmethod
    def _optimizers(cls, value: list[str]) -> list[str]:
        from lrlab.experiments.optimizers import parse_optimizer

        if not value:
            raise ValueError("expected at least one optimizer")
        for index, spec in enumerate(value):
            try:
                parse_optimizer(spec)
            except ValueError as exc:
                raise ValueError(f"item {index}: {exc}") from None
        return value

    @field_validator("schedule", "momentum")
    @classmethod
    def _schedules(cls, value: list[str] | None) -> list[str] | None:
        from lrlab.schedules import parse

        if value is None:
            return value
        if not value:
            raise ValueError("expected at least one schedule spec")
        for index, spec in enumerate(value):
            try:
                parse(substitute(spec, **_CHECK))
            except ValueError as exc:
                raise ValueError(f"item {index}: {exc}") from None
        return value

    @field_validator("batch_size")
    @classmethod
    def _batch_sizes(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or any(v < 1 for v in value)):
            raise ValueError("expected a non-empty list of batch sizes >= 1")
        return value

    def lrs(self) -> list[float]:
        if isinstance(self.lr, _Range):
            return self.lr.values()
        return list(self.lr) if isinstance(self.lr, list) else [self.lr]


class Finetune(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: dict[str, float] | None = None
    layer_decay: float | None = Field(default=None, gt=0, le=1)
    freeze: list[str] | None = None
    unfreeze_every: int | None = Field(default=None, ge=1)


class SweepSpec(BaseModel):
    """A sweep file, validated. See the module docstring for the format."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    task: str
    task_options: dict[str, Any] = Field(default_factory=dict)
    epochs: int | None = Field(default=None, ge=1)
    batch_size: int | None = Field(default=None, ge=1)
    seeds: list[int] = Field(default_factory=lambda: [0])
    divergence_factor: float | None = Field(default=DEFAULT_DIVERGENCE_FACTOR, gt=0)
    finetune: Finetune | None = None
    vectorize: bool = False  # train runs differing only in lr/schedule/momentum/seed together
    max_group: int | None = Field(default=None, ge=1)  # most runs per vectorised group
    grid: Grid

    @field_validator("task")
    @classmethod
    def _task(cls, value: str) -> str:
        from lrlab.experiments.tasks import BUILTIN_TASKS

        if value not in BUILTIN_TASKS and ":" not in value:
            raise ValueError(
                f"unknown task (built-in: {', '.join(BUILTIN_TASKS)}; "
                "or 'package.module:function' or 'path/to/file.py:function')"
            )
        return value

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("expected at least one seed")
        if len(set(value)) != len(value):
            raise ValueError("seeds must be distinct")
        return value


def _format_errors(error: ValidationError, source: str) -> str:
    parts = []
    for item in error.errors():
        loc = ".".join(str(p) for p in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        if item["type"] == "missing":
            parts.append(f"{loc}: missing required key")
            continue
        shown = item.get("input")
        text = json.dumps(shown, default=str)
        if len(text) > 80:
            text = text[:77] + "..."
        parts.append(f"{loc or '<top>'} = {text}: {message}" if "input" in item else f"{loc}: {message}")
    return f"{source}: " + "; ".join(dict.fromkeys(parts))


def load_sweep(source: str | Path | dict[str, Any]) -> SweepSpec:
    """Read and validate a sweep file (TOML) or a dict; raises ``SweepSpecError``."""
    if isinstance(source, dict):
        data, where = source, "sweep"
    else:
        path = Path(source)
        where = str(path)
        if not path.is_file():
            raise SweepSpecError(f"no sweep file {where!r}")
        try:
            import tomllib
        except ImportError:  # pragma: no cover - Python 3.10
            import tomli as tomllib  # type: ignore[no-redef]
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise SweepSpecError(f"{where}: not valid TOML: {exc}") from None
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise SweepSpecError(_format_errors(exc, where)) from None


# ---------------------------------------------------------------- the grid


@dataclass(frozen=True)
class RunPlan:
    """One run of a sweep: its id and resolved config (``RunRecord.config``)."""

    id: str
    config: dict[str, Any]

    @property
    def seed(self) -> int:
        return int(self.config["seed"])


def run_id_for(sweep: str, config: dict[str, Any]) -> str:
    """The stable id of a run: a hash of the sweep name and the resolved config."""
    text = json.dumps({"sweep": sweep, "config": config}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def expand(spec: SweepSpec) -> list[RunPlan]:
    """Every run of the sweep, in a stable order (grid axes, then seeds)."""
    from lrlab.experiments.tasks import get_task
    from lrlab.schedules import parse

    try:
        task = get_task(spec.task, **spec.task_options)
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(f"task {spec.task!r} could not be built: {type(exc).__name__}: {exc}") from None
    epochs = spec.epochs or task.default_epochs
    grid = spec.grid
    batch_sizes = grid.batch_size or [spec.batch_size or task.default_batch_size]
    steps_per_epoch = {bs: len(task.train_loader(bs, 0)) for bs in batch_sizes}
    plans: list[RunPlan] = []
    axes = itertools.product(
        batch_sizes,
        grid.optimizer,
        grid.schedule,
        grid.lrs(),
        grid.momentum or [None],
        grid.lr_mult or [None],
    )
    for batch_size, optimizer, schedule, lr, momentum, lr_mult in axes:
        numbers = {"lr": lr, "total_steps": epochs * steps_per_epoch[batch_size],
                   "steps_per_epoch": steps_per_epoch[batch_size]}  # fmt: skip
        for seed in spec.seeds:
            config: dict[str, Any] = {
                "task": spec.task,
                "task_options": dict(spec.task_options),
                "optimizer": optimizer,
                "schedule": str(parse(substitute(schedule, **numbers))),
                "lr": lr,
                "seed": seed,
                "epochs": epochs,
                "batch_size": batch_size,
                "divergence_factor": spec.divergence_factor,
            }
            if momentum is not None:
                config["momentum"] = str(parse(substitute(momentum, **numbers)))
            if lr_mult:
                config["lr_mult"] = dict(lr_mult)
            if spec.finetune is not None:
                config["finetune"] = spec.finetune.model_dump(exclude_none=True)
            plans.append(RunPlan(run_id_for(spec.name, config), config))
    return plans


# ---------------------------------------------------------------- executing


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
    device: str = "cpu",
    address: str | None = None,
    gpus_per_run: float = 0.0,
    vectorize: bool = False,
    max_group: int | None = None,
) -> list[RunRecord]:
    """Run every unfinished run of the sweep and return all its runs' records.

    ``jobs`` is the number of runs trained at once (worker processes for ``local``, Ray
    tasks in flight for ``ray``). ``progress`` receives ``SweepProgress`` and
    ``RunProgress`` events, in the calling thread. Ctrl-C stops the workers, puts the
    runs in flight back in the queue and re-raises ``KeyboardInterrupt``.
    """
    if not isinstance(spec, SweepSpec):
        spec = load_sweep(spec)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    if not gpus_per_run >= 0:
        raise ValueError(f"gpus_per_run must be >= 0, got {gpus_per_run!r}")
    plans = expand(spec)
    store.upsert_sweep(spec.name, spec.model_dump(mode="json"))
    store.create_runs([RunRecord(id=p.id, sweep=spec.name, status="queued", config=p.config, seed=p.seed)
                       for p in plans])  # fmt: skip
    status = {r.id: r.status for r in store.runs(ids=[p.id for p in plans])}
    todo = [p for p in plans if status.get(p.id) not in FINISHED]
    report = progress or (lambda _event: None)
    report(SweepProgress("start", spec.name, len(plans), skipped=len(plans) - len(todo)))
    try:
        if vectorize or spec.vectorize:  # groups first (lrlab.experiments.vectorized), the rest as usual
            from lrlab.experiments.vectorized import run_vectorized

            todo = run_vectorized(
                todo, store, spec.name, report, device=device, max_group=max_group or spec.max_group
            )
        if backend == "ray":
            _run_ray(todo, store, spec.name, jobs, report, device, address, gpus_per_run)
        elif jobs == 1 or len(todo) <= 1:
            _run_inline(todo, store, spec.name, report, device)
        else:
            _run_processes(todo, store, spec.name, jobs, report, device)
    except KeyboardInterrupt:
        _requeue_running(store, [p.id for p in todo])
        raise
    records = store.runs(ids=[p.id for p in plans])
    order = {p.id: i for i, p in enumerate(plans)}
    records.sort(key=lambda r: order[r.id])
    counts: dict[str, int] = {}
    for r in records:
        counts[r.status] = counts.get(r.status, 0) + 1
    report(SweepProgress("end", spec.name, len(plans), skipped=len(plans) - len(todo), counts=counts))
    return records


def _requeue_running(store: Store, ids: Sequence[str]) -> None:
    for record in store.runs(ids=list(ids), status="running"):
        store.set_status(record.id, "queued", error="interrupted")


def _run_inline(todo: list[RunPlan], store: Store, sweep: str, report: ProgressFn, device: str) -> None:
    from lrlab.experiments.loop import train_run

    for plan in todo:
        train_run(plan.config, store, plan.id, progress=report, device=device, sweep=sweep)


# "fork" where it exists: the workers start at once with torch, the task's data and
# lrlab already imported (a spawned worker spends seconds importing torch and
# scikit-learn). torch resets its thread pools in a forked child; the store opens a
# fresh SQLite connection in each process.
_START_METHOD = "fork" if sys.platform.startswith("linux") else "spawn"

# Worker-process state (set by the pool initializer).
_WORKER: dict[str, Any] = {}


def _init_worker(path: str, events: Any, threads: int) -> None:
    import torch

    # Ctrl-C is the parent's to handle: it stops the workers and requeues their runs.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    _WORKER["store"] = Store(path)
    _WORKER["events"] = events


def _worker_run(run_id: str, config: dict[str, Any], device: str, sweep: str) -> tuple[str, str]:
    from lrlab.experiments.loop import train_run

    events = _WORKER["events"]
    record = train_run(config, _WORKER["store"], run_id, progress=events.put, device=device, sweep=sweep)
    return run_id, record.status


def _drain(events: Any, report: ProgressFn) -> None:
    while True:
        try:
            report(events.get_nowait())
        except queue.Empty:
            return


def _run_processes(
    todo: list[RunPlan], store: Store, sweep: str, jobs: int, report: ProgressFn, device: str
) -> None:
    if store.path == ":memory:":
        raise ValueError("jobs > 1 needs a store on disk, not ':memory:'")
    context = multiprocessing.get_context(_START_METHOD)
    events = context.Queue()
    threads = max(1, (os.cpu_count() or 1) // jobs)
    pool = ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker,
                               initargs=(store.path, events, threads))  # fmt: skip
    pending: set[Future[tuple[str, str]]] = set()
    try:
        for plan in todo:
            pending.add(pool.submit(_worker_run, plan.id, plan.config, device, sweep))
        while pending:
            finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            _drain(events, report)
            for future in finished:
                future.result()  # a worker that died raises BrokenProcessPool here
        time.sleep(0.05)
        _drain(events, report)
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


def _ray_train(run_id: str, config: dict[str, Any], device: str, sweep: str) -> dict[str, Any]:
    """Runs on a Ray worker: train into a private in-memory store, return everything."""
    import dataclasses

    from lrlab.experiments.loop import train_run

    local = Store(":memory:")
    record = train_run(config, local, run_id, device=device, sweep=sweep)
    steps = local.steps(run_id)
    rows = [
        (int(s), int(e), [float(x) for x in lrs], None if math.isnan(m) else float(m), float(loss), float(g))
        for s, e, lrs, m, loss, g in zip(steps.step, steps.epoch, steps.lrs, steps.momentum, steps.loss,
                                         steps.grad_norm)
    ]  # fmt: skip
    return {
        "record": dataclasses.asdict(record),
        "steps": rows,
        "epochs": [dataclasses.asdict(e) for e in local.epochs(run_id)],
    }


def _import_result(store: Store, payload: dict[str, Any]) -> str:
    from lrlab.experiments.records import EpochRecord

    record = payload["record"]
    run_id = record["id"]
    store.reset_run(run_id)
    store.set_status(run_id, "running")
    store.set_versions(run_id, record["lrlab_version"] or "", record["torch_version"] or "")
    for start in range(0, len(payload["steps"]), 10_000):
        store.add_steps(run_id, payload["steps"][start : start + 10_000])
    for epoch in payload["epochs"]:
        store.add_epoch(EpochRecord(**epoch))
    store.update_extras(run_id, {**record["extras"], "backend": "ray"})
    store.set_status(run_id, record["status"], error=record["error"], diverged_step=record["diverged_step"])
    return str(record["status"])


def _run_ray(
    todo: list[RunPlan],
    store: Store,
    sweep: str,
    jobs: int,
    report: ProgressFn,
    device: str,
    address: str | None,
    gpus_per_run: float,
) -> None:
    try:
        import ray
    except ImportError:
        raise ValueError("the ray backend needs Ray: pip install 'lrlab[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                   "ignore_reinit_error": True}  # fmt: skip
        if address:
            options["address"] = address
        else:
            options["num_cpus"] = jobs
        ray.init(**options)
    remote = ray.remote(num_cpus=1, num_gpus=gpus_per_run, max_retries=0)(_ray_train)
    plans = {p.id: p for p in todo}
    waiting = list(todo)
    in_flight: dict[Any, str] = {}
    try:
        while waiting or in_flight:
            while waiting and len(in_flight) < jobs:
                plan = waiting.pop(0)
                store.reset_run(plan.id)
                store.set_status(plan.id, "running")
                report(RunProgress("start", plan.id, 0, int(plan.config["epochs"]), 0, 0))
                in_flight[remote.remote(plan.id, plan.config, device, sweep)] = plan.id
            done, _ = ray.wait(list(in_flight), num_returns=1, timeout=1.0)
            for ref in done:
                run_id = in_flight.pop(ref)
                epochs = int(plans[run_id].config["epochs"])
                try:
                    status = _import_result(store, ray.get(ref))
                    error = store.run(run_id).error
                except Exception as exc:  # the Ray task itself died (worker lost, out of memory...)
                    status, error = "failed", f"ray: {type(exc).__name__}: {exc}".splitlines()[0]
                    store.set_status(run_id, "failed", error=error)
                report(RunProgress("end", run_id, epochs, epochs, 0, 0, status=status, error=error))
    except BaseException:
        for ref in in_flight:
            ray.cancel(ref, force=True)
        raise
    finally:
        if started_here:
            ray.shutdown()
