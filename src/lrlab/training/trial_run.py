"""Running a trainable function for one run config: its :class:`~lrlab.training.trial.Trial`,
its recording, how it ended, and its time limit.

:func:`train_trainable` is to a trainable what :func:`~lrlab.training.loop.train_run` is to
a task: the run is claimed and begun through the one
:class:`~lrlab.training.recorder.Recorder`, the function is called with a recording trial,
and the run ends as one line in the store:

- ``done``: the function returned after at least one report;
- ``failed``: it raised (the exception's first line, and where in the user's file), it
  returned without a report (``reported no metrics``), or it went ``timeout_s`` seconds
  without a report or a return (``no report within N s``); ``Pruned: ...`` when a tune's
  pruner stopped it;
- ``diverged``: it reported a NaN/inf objective, or logged a NaN/inf loss.

The time limit. The function runs in a thread of its own, watched by the calling thread.
A run past its time is ended in the store at once, and the trial is stopped: its next
``log``, ``report`` or optimizer step raises :class:`~lrlab.training.trial.TrialStopped`,
which ends a loop that is still training; a function stuck where it never comes back to
lrlab (a blocking call, an endless loop without a step) is abandoned in its daemon thread,
which dies with the process, and nothing it does is recorded. A thread, not a process:
the function, its closures and whatever it imported need not pickle, and a sweep's worker
processes (``--jobs``) already isolate runs from one another. Ctrl-C puts the run back to
``queued`` and is re-raised, as for the loop.

:func:`train_any` runs a config with the built-in loop or with its trainable, whichever its
task is: the executors, ``tune`` and the study call it.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any

from lrlab.core.records import RunConfig, RunRecord, RunStatus
from lrlab.store.sqlite import ClaimLost, Store
from lrlab.torch_utils import torch_threads
from lrlab.training.loop import stored_run, train_run
from lrlab.training.recorder import ProgressFn, Recorder, RunProgress
from lrlab.training.resolve import resolve_device
from lrlab.training.tasks.check import first_line, user_frame
from lrlab.training.trial import Pruned, Trial, TrialStopped
from lrlab.training.trial_task import TrainableTask, is_trainable

if TYPE_CHECKING:
    from lrlab.training.tasks import Task

__all__ = ["NO_METRICS", "POLL_SECONDS", "train_any", "train_trainable"]

NO_METRICS = "reported no metrics"
POLL_SECONDS = 0.05  # how often the watching thread looks at the clock


def train_any(
    config: RunConfig,
    store: Store,
    run_id: str,
    progress: ProgressFn | None = None,
    *,
    device: str = "cpu",
    sweep: str | None = None,
    owner: str | None = None,
    task: Any = None,
) -> RunRecord:
    """Train ``config`` into ``store``: by calling its trainable function when ``task`` is
    one (or ``config.task`` names one), else with :func:`~lrlab.training.loop.train_run`."""
    if task is None and ":" in config.task:  # a task file may hold a trainable: built once, here
        from lrlab.training.tasks import get_task

        with contextlib.suppress(ValueError):  # a task that does not build: train_run says so, recorded
            task = get_task(config.task, **dict(config.task_options))
    if is_trainable(task):
        return train_trainable(
            config, store, run_id, progress, device=device, sweep=sweep, owner=owner, task=task
        )
    return train_run(config, store, run_id, progress, device=device, sweep=sweep, owner=owner, task=task)


def train_trainable(
    config: RunConfig,
    store: Store,
    run_id: str,
    progress: ProgressFn | None = None,
    *,
    device: str = "cpu",
    sweep: str | None = None,
    owner: str | None = None,
    task: Task | TrainableTask | Any = None,
) -> RunRecord:
    """Run the trainable ``task`` for ``config`` (see the module docstring) and return the
    stored record. ``device`` (``cpu``, ``cuda``, ``auto``) is ``trial.device`` and is
    recorded; where the function trains is its own choice."""
    from lrlab.training.trial_task import as_task

    task = as_task(task)  # the options are the config's (the run's identity), resolved by the trial
    recorder = Recorder(store, run_id, config, sweep=sweep, owner=owner)
    if not recorder.begin():
        record = store.run(run_id)
        if progress is not None:
            progress(RunProgress("end", run_id, 0, 0, 0, 0, status=record.status.value,
                                 error="claimed by another process"))  # fmt: skip
        return record
    trainable = task.trainable
    try:
        trial = Trial(config, trainable, recorder=recorder, progress=progress, device=resolve_device(device))
    except ValueError as exc:  # options the function did not declare: one line, the run failed
        recorder.end(RunStatus.FAILED, error=str(exc).splitlines()[0])
        return stored_run(store, run_id)
    extras: dict[str, Any] = {
        "device": str(trial.device), "threads": config.threads or 1, "epochs": trial.epochs,
        "steps_per_epoch": trial.steps_per_epoch, "total_steps": trial.total_steps, "declared_epochs": trainable.epochs,
        "task_kind": task.kind, "objective": task.objective.to_dict(), "trainable": trainable.name,
    }  # fmt: skip
    report = progress or (lambda _event: None)
    report(RunProgress("start", run_id, 0, trial.epochs, 0, trial.total_steps))
    started = time.perf_counter()
    try:
        status, error, diverged_step = _run(trial, config, trainable.timeout_s, extras)
    except KeyboardInterrupt:
        trial.stop("queued", "interrupted")
        with contextlib.suppress(sqlite3.Error, ClaimLost, KeyError):
            recorder.end(RunStatus.QUEUED, error="interrupted")
        raise
    if status is RunStatus.DONE:
        extras["wall_time"] = time.perf_counter() - started
    extras["epochs_reported"] = len(trial.reports)
    try:
        _end(trial, recorder, status, error, diverged_step, extras)
    except (ClaimLost, KeyError):
        return stored_run(store, run_id)
    report(RunProgress("end", run_id, len(trial.reports), trial.epochs, trial.steps, trial.total_steps,
                       status=status.value, error=error))  # fmt: skip
    return stored_run(store, run_id)


def _end(
    trial: Trial,
    recorder: Recorder,
    status: RunStatus,
    error: str | None,
    diverged_step: int | None,
    extras: dict[str, Any],
) -> None:
    """The run's last step and its status, written while the function's thread (if it is
    still alive past its time) can record nothing more."""
    held = trial._lock.acquire(timeout=5.0)
    try:
        if held:
            trial.finish()
        recorder.end(status, error=error, diverged_step=diverged_step, extras=extras)
    finally:
        if held:
            trial._lock.release()


def _run(
    trial: Trial, config: RunConfig, timeout_s: float | None, extras: dict[str, Any]
) -> tuple[RunStatus, str | None, int | None]:
    """Call the function in a thread, watch its time; how the run ended."""
    outcome: dict[str, BaseException | None] = {}
    finished = threading.Event()

    def call() -> None:
        try:
            with torch_threads(config.threads or 1):
                trial.trainable.fn(trial)
            outcome["error"] = None
        except BaseException as exc:  # every way out of a user's function is an outcome
            outcome["error"] = exc
        finally:
            finished.set()

    thread = threading.Thread(target=call, daemon=True, name=f"lrlab-trial-{trial.config.seed}")
    thread.start()
    while not finished.wait(POLL_SECONDS):
        if timeout_s is not None and time.monotonic() - trial.last_activity > timeout_s:
            return _timed_out(trial, timeout_s, finished)
    return _ended_as(trial, outcome.get("error"), extras)


def _timed_out(trial: Trial, timeout_s: float, finished: threading.Event) -> tuple[RunStatus, str, None]:
    """The run past its time: the trial stopped (its function's next call into lrlab raises),
    given a moment to unwind, then left behind."""
    after = f" after epoch {len(trial.reports)}" if trial.reports else ""
    reason = f"no report within {timeout_s:g} s{after} (timeout_s={timeout_s:g}): stopped"
    trial.stop("failed", reason)
    finished.wait(min(1.0, timeout_s))
    return RunStatus.FAILED, reason, None


def _ended_as(
    trial: Trial, error: BaseException | None, extras: dict[str, Any]
) -> tuple[RunStatus, str | None, int | None]:
    """How a function that came back ended: its exception, its reports."""
    if trial.stopped is not None:  # ended by lrlab, even if the function swallowed the exception
        error = trial.stopped
    if isinstance(error, TrialStopped):
        status = RunStatus(error.status) if error.status in ("diverged", "failed") else RunStatus.FAILED
        step = max(trial.steps - 1, 0) if status is RunStatus.DIVERGED else None
        return status, error.reason, step
    if isinstance(error, Pruned):
        return RunStatus.FAILED, f"Pruned: {error}", None
    if error is not None:
        extras["traceback"] = "".join(traceback.format_exception(error, limit=8))
        return RunStatus.FAILED, f"{first_line(error)}{user_frame(error)}", None
    if not trial.reports:
        return RunStatus.FAILED, NO_METRICS, None
    return RunStatus.DONE, None, None
