"""The Optuna side of a tune: :class:`Tuner` opens (or resumes) the Optuna study, runs the
range tests a space needs, asks for a trial and turns its draw into runs, tells Optuna how
they ended, recovers trials a killed process left running and re-trains pruned trials in
the audit. The loops that drive it are :func:`lrlab.tune.engine.tune` (one trial at a
time) and :func:`lrlab.tune.ray_backend.run_ray` (many at once).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lrlab.core.records import RunConfig, RunRecord, RunStatus
from lrlab.store.claims import owner_alive, owner_is_local
from lrlab.store.sqlite import Store, new_owner
from lrlab.study.range_tests import task_range_test
from lrlab.sweeps.grid import RunPlan
from lrlab.training.resolve import steps_per_epoch
from lrlab.training.tasks import check_task, get_task
from lrlab.training.tasks._base import fingerprint_change, task_fingerprint
from lrlab.tune.space import Context, SpaceError
from lrlab.tune.spec import TuneSpec
from lrlab.tune.storage import open_storage, storage_env
from lrlab.tune.trial import (
    PRUNED_PREFIX,
    ProgressFn,
    TrialOutcome,
    objective_of,
    penalty,
    score,
    train_trial,
)

__all__ = [
    "RESUMABLE_KEYS", "BadDraw", "Job", "TuneEvent", "Tuner", "best_value", "check_device", "finished",
    "range_test_lr", "run_numbers",
]  # fmt: skip

# Spec keys that may change between a tune and its resumption (the budget, the audit).
RESUMABLE_KEYS = ("trials", "max_steps", "audit_pruned", "storage")
# Trials failing one after another (an exception, not a bad score) stop the tune: the cause
# is the setup, and every further trial would fail the same way.
MAX_FAILED_IN_ROW = 3
# A trial in flight on another machine is left to it for this long after it began (the
# store's claim lease); after that, its runs' claims tell whether it is alive.
LEASE_SECONDS = 120.0
_DEVICE = re.compile(r"cpu|auto|cuda(:[0-9]+)?")


def check_device(device: Any, backend: str = "local") -> str:
    """``device`` checked before anything is stored: ``cpu``, ``auto``, ``cuda`` or
    ``cuda:N``, and for a local tune one that torch has. ``ValueError`` in one line."""
    if not isinstance(device, str) or not _DEVICE.fullmatch(device):
        raise ValueError(f"device must be cpu, cuda, cuda:N or auto, got {device!r}")
    if backend != "local":  # the workers' machines have their own devices
        return device
    from lrlab.training.resolve import resolve_device

    resolved = resolve_device(device)
    if resolved.type == "cuda" and resolved.index is not None:
        import torch

        count = torch.cuda.device_count()
        if resolved.index >= count:
            raise ValueError(f"device {device!r} asked for, but torch sees {count} CUDA device(s) "
                             f"(cuda:0 to cuda:{count - 1}, cpu or auto)")  # fmt: skip
    return device


@dataclass(frozen=True)
class TuneEvent:
    """A tune's progress for a ``progress`` callback (run-level events are ``RunProgress``).

    ``event`` is ``"start"`` (``total`` trials of the budget, ``done`` already finished),
    ``"finder"``, ``"trial"`` (one finished: ``state``, ``value``, ``best``), ``"audit"``
    or ``"end"``.
    """

    event: str
    done: int = 0
    total: int = 0
    pruned: int = 0
    best: float | None = None
    state: str | None = None
    value: float | None = None
    number: int | None = None
    steps: int = 0
    detail: str = ""


@dataclass
class Job:
    """A trial in flight: the Optuna trial, its draw and its runs."""

    trial: Any
    choice: Any
    plans: list[RunPlan]
    reused: bool = False


class Tuner:
    def __init__(
        self,
        spec: TuneSpec,
        store: Store,
        storage: str,
        progress: ProgressFn | None,
        device: str,
    ) -> None:
        self.spec, self.store, self.storage_url, self.device = spec, store, storage, device
        self.report = progress or (lambda _event: None)
        try:
            self.task = get_task(spec.task, **spec.task_options)
            check_task(self.task, spec.task)  # a model that does not fit its data: one line, not failed trials
        except ValueError:
            raise
        except Exception as exc:
            raise ValueError(f"task {spec.task!r} could not be built: {type(exc).__name__}: {exc}") from None
        _check_trainable(spec, self.task)
        self.epochs, self.batch_size, self.steps_per_epoch = run_numbers(spec, self.task)
        self.total_steps = self.epochs * self.steps_per_epoch
        self.finder_lrs: dict[str, float] = {}
        self.metric, self.direction = objective_of(self.task)
        self.owner = new_owner()
        self.finder_steps = 0
        self.bad_draws = 0
        self.failed_in_row = 0

    # -------------------------------------------------------- Optuna

    def open_study(self, resume: bool) -> Any:
        import optuna

        storage_env()
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        storage = open_storage(self.storage_url)
        spec = self.spec
        sampler = self.sampler(0)  # each trial is drawn by its own (ask)
        pruner: Any
        if spec.pruner == "hyperband":
            pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=self.epochs, reduction_factor=3)
        elif spec.pruner == "halving":
            pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
        else:
            pruner = optuna.pruners.NopPruner()
        try:
            existing = optuna.load_study(study_name=spec.name, storage=storage, sampler=sampler, pruner=pruner)
        except KeyError:
            existing = None
        fingerprint = self.fingerprint()
        if existing is not None:
            stored = existing.user_attrs.get("fingerprint")
            if existing.trials and not resume:
                raise ValueError(
                    f"the tune {spec.name!r} already has {len(existing.trials)} trials in {self.storage_url}; "
                    "pass --resume to continue it, or give the tune another name"
                )
            if stored is not None and stored != fingerprint:
                raise ValueError(
                    f"the tune file {spec.name!r} changed since the tune began (only {', '.join(RESUMABLE_KEYS)} "
                    "may change on --resume); give it another name to start afresh"
                )
            self._check_task(existing)
            study = existing
        else:  # another process may create it at the same moment: then it is loaded
            study = optuna.create_study(study_name=spec.name, storage=storage, sampler=sampler, pruner=pruner,
                                        direction=self.direction, load_if_exists=True)  # fmt: skip
            stored = study.user_attrs.get("fingerprint")
            if stored is not None and stored != fingerprint:
                raise ValueError(f"the tune {spec.name!r} was begun at this moment by another process with "
                                 "another tune file; give this one another name")  # fmt: skip
        study.set_user_attr("fingerprint", fingerprint)
        study.set_user_attr("task_fingerprint", task_fingerprint(self.task))
        study.set_user_attr("metric", self.metric)
        return study

    def _check_task(self, study: Any) -> None:
        """``ValueError`` in one line when the task (its model, data or options: what the tune
        file cannot see of a task file) changed since the tune began: its trials would mix."""
        change = fingerprint_change(study.user_attrs.get("task_fingerprint"), task_fingerprint(self.task))
        if change is not None:
            what, how = change
            raise ValueError(f"{what} changed since the tune {self.spec.name!r} began ({how}); "
                             "give the tune another name to keep both")  # fmt: skip

    def sampler(self, number: int) -> Any:
        """The sampler that draws trial ``number``, seeded by the tune's ``sampler_seed`` and
        the trial's number: the same draws whichever process asks, distinct draws for two
        processes that share a storage, new ones on a resumed tune."""
        import optuna

        digest = hashlib.sha256(f"{self.spec.sampler_seed}:{number}".encode()).digest()
        seed = int.from_bytes(digest[:4], "big")
        if self.spec.sampler == "tpe":
            return optuna.samplers.TPESampler(multivariate=True, group=True, seed=seed,
                                              n_startup_trials=min(10, max(3, self.spec.trials // 4)))  # fmt: skip
        return optuna.samplers.RandomSampler(seed=seed)

    def fingerprint(self) -> str:
        data = {k: v for k, v in self.spec.raw.items() if k not in RESUMABLE_KEYS}
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]

    # -------------------------------------------------------- range tests

    def range_tests(self) -> None:
        space = self.spec.space
        if space is None or not space.needs_finder:
            return
        for optimizer in space.optimizers:
            self.report(TuneEvent("finder", detail=optimizer))
            lr, steps = range_test_lr(self.store, self.spec, self.task, optimizer, self.batch_size, self.device)
            self.finder_lrs[optimizer] = lr
            self.finder_steps += steps

    # -------------------------------------------------------- trials

    def context(self) -> Context:
        return Context(self.steps_per_epoch, self.total_steps, dict(self.finder_lrs))

    def config(self, choice: Any, seed: int) -> RunConfig:
        spec = self.spec
        return RunConfig(
            task=spec.task, task_options=dict(spec.task_options), optimizer=choice.optimizer,
            schedule=choice.schedule, lr=choice.lr, seed=seed, epochs=self.epochs, batch_size=self.batch_size,
            divergence_factor=spec.divergence_factor,
        )  # fmt: skip

    def ask(self, study: Any) -> Job:
        assert self.spec.space is not None
        trial = study.ask()
        trial.set_user_attr("owner", self.owner)  # a live process holds it (see recover)
        study.sampler = self.sampler(trial.number)  # Optuna draws lazily, at the first suggest
        try:
            choice = self.spec.space.sample(trial, self.context())
        except ValueError as exc:  # a draw the family refuses (a cycle longer than the run...)
            import optuna

            trial.set_user_attr("error", str(exc))
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise BadDraw(str(exc)) from None
        plans = [RunPlan.of(self.spec.name, self.config(choice, seed)) for seed in self.spec.seeds]
        trial.set_user_attr("run_id", plans[0].id)
        trial.set_user_attr("run_ids", [p.id for p in plans])
        trial.set_user_attr("schedule", str(choice.schedule))
        trial.set_user_attr("optimizer", choice.optimizer)
        trial.set_user_attr("lr", choice.lr)
        tune_info = {"study": self.spec.name, "trial": trial.number, "params": _plain(choice.params)}
        self.store.create_runs([
            RunRecord(id=p.id, sweep=self.spec.name, status=RunStatus.QUEUED, config=p.config, seed=p.seed,
                      extras={"tune": tune_info})
            for p in plans
        ])  # fmt: skip
        records = self.store.runs(ids=[p.id for p in plans])
        reused = bool(records) and all(r.status.is_finished for r in records) and len(records) == len(plans)
        return Job(trial, choice, plans, reused)

    def finish(self, study: Any, job: Job) -> TrialOutcome:
        """Tell Optuna how the trial's runs ended (read from the store)."""
        import optuna

        State = optuna.trial.TrialState
        trial = job.trial
        now = study.get_trials(deepcopy=False)[trial.number]
        if now.state.is_finished():  # told by another process (which took it for dead)
            self.report(TuneEvent("skipped", number=trial.number,
                                  detail=f"trial {trial.number} was ended by another process; skipped"))  # fmt: skip
            return self.outcome(now)
        records = self.store.runs(ids=[p.id for p in job.plans])
        holder = self._held_by_other(records)
        if holder is not None:  # the same draw is being trained by another process
            trial.set_user_attr("error", f"its run {holder} is trained by another process")
            study.tell(trial, state=State.FAIL, skip_if_finished=True)
            self.report(TuneEvent("skipped", number=trial.number,
                                  detail=f"trial {trial.number}: its run is trained by another process; skipped"))
            return self.outcome(study.get_trials(deepcopy=False)[trial.number])
        steps = 0 if job.reused else sum(self.store.step_count(r.id) for r in records)
        state, value = self._ended_as(job, records)
        trial.set_user_attr("steps", steps)
        if state == "pruned":
            study.tell(trial, state=State.PRUNED)
        elif state in ("complete", "diverged"):
            trial.set_user_attr("diverged", state == "diverged")
            study.tell(trial, value)
        else:
            error = next((r.error for r in records if r.error), None) or "no run finished"
            trial.set_user_attr("error", error[:500])
            study.tell(trial, state=State.FAIL)
            self.failed_in_row += 1
            if self.failed_in_row >= MAX_FAILED_IN_ROW:
                raise RuntimeError(f"{self.failed_in_row} trials in a row failed, the last with: "
                                   f"{error.splitlines()[0][:300]}")  # fmt: skip
            return self.outcome(study.get_trials(deepcopy=False)[trial.number])
        self.failed_in_row = 0
        return self.outcome(study.get_trials(deepcopy=False)[trial.number])

    @staticmethod
    def _held_by_other(records: Sequence[RunRecord]) -> str | None:
        """The id of a run of ``records`` still running once this process is done with the
        trial: another process holds its claim (training left none of this process's running)."""
        return next((r.id for r in records if r.status is RunStatus.RUNNING), None)

    def _ended_as(self, job: Job, records: Sequence[RunRecord]) -> tuple[str, float | None]:
        """The trial's state (``pruned``, ``diverged``, ``complete`` or ``failed``) and value;
        a pruned run is marked with the epoch it was pruned at."""
        first = next((r for r in records if r.id == job.plans[0].id), None)
        if first is not None and _pruned(first):
            pruned_epoch = len(self.store.epochs(first.id))
            self.store.end_run(first.id, RunStatus.FAILED, error=first.error,
                               extras={"traceback": None, "pruned_epoch": pruned_epoch})  # fmt: skip
            return "pruned", None
        diverged = next((r for r in records if r.status is RunStatus.DIVERGED), None)
        if diverged is not None:
            return "diverged", penalty(diverged, self.store, self.metric)
        if len(records) == len(job.plans) and all(r.status is RunStatus.DONE for r in records):
            value = score(records, self.store)
            return ("complete" if value is not None else "failed"), value
        return "failed", None

    def outcome(self, frozen: Any) -> TrialOutcome:
        attrs = frozen.user_attrs
        state = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}.get(frozen.state.name, "running")
        if state == "complete" and attrs.get("diverged"):
            state = "diverged"
        pruned_epoch = max(frozen.intermediate_values) if state == "pruned" and frozen.intermediate_values else None
        return TrialOutcome(
            number=frozen.number, state=state, value=frozen.value if state in ("complete", "diverged") else None,
            run_ids=tuple(attrs.get("run_ids") or ([attrs["run_id"]] if attrs.get("run_id") else [])),
            params=dict(frozen.params), schedule=str(attrs.get("schedule", "")),
            optimizer=str(attrs.get("optimizer", "")), lr=float(attrs.get("lr", math.nan)),
            steps=int(attrs.get("steps", 0)), pruned_epoch=pruned_epoch,
        )  # fmt: skip

    # -------------------------------------------------------- resume

    def recover(self, study: Any) -> None:
        """Trials left running by a process that was killed: told their run's result when it
        finished, else failed and queued again (the same draws give the same run id)."""
        import optuna

        State = optuna.trial.TrialState
        for frozen in study.get_trials(deepcopy=False, states=(State.RUNNING,)):
            if self._in_flight_elsewhere(frozen):
                continue  # another process is training it now
            run_id = frozen.user_attrs.get("run_id")
            ids = frozen.user_attrs.get("run_ids") or ([run_id] if run_id else [])
            records = self.store.runs(ids=ids) if ids else []
            if records and len(records) == len(ids):
                if not self._claim_free(records):
                    continue  # a live process still trains it
                if _ended(records):
                    job = Job(optuna.trial.Trial(study, frozen._trial_id), None,
                              [RunPlan(r.id, r.config) for r in records])  # fmt: skip
                    self.finish(study, job)
                    continue
            study.tell(frozen.number, state=State.FAIL, skip_if_finished=True)
            if frozen.params:
                study.enqueue_trial(frozen.params, user_attrs={"retry_of": frozen.number})

    def _in_flight_elsewhere(self, frozen: Any) -> bool:
        """Whether a trial left ``running`` is held by another live process: its owner's
        process is alive on this machine, or, on another machine, the trial or its runs have
        begun within the lease. A trial that names no owner and no runs yet, asked within the
        lease, is another process's in the instant between asking it and naming itself (two
        processes started together failed each other's first trial there); one that names runs
        (an older tune) is judged by its runs' claims alone, as before."""
        owner = frozen.user_attrs.get("owner")
        if owner == self.owner:
            return False
        if not owner:  # just asked by a process that has not written its owner yet (or an older tune)
            ids = frozen.user_attrs.get("run_id") or frozen.user_attrs.get("run_ids")
            started = frozen.datetime_start.timestamp() if frozen.datetime_start else 0.0
            return not ids and time.time() - started < LEASE_SECONDS
        if owner_is_local(owner):
            return owner_alive(owner)
        # On another machine: alive while recent (then its runs' claims, checked by recover, tell).
        started = frozen.datetime_start.timestamp() if frozen.datetime_start else 0.0
        return time.time() - started < LEASE_SECONDS

    def _claim_free(self, records: Sequence[RunRecord]) -> bool:
        """No live process holds these runs (claiming them shows it; the claim is released)."""
        for record in records:
            if record.status is not RunStatus.RUNNING:
                continue
            claim = RunRecord(id=record.id, sweep=record.sweep, status=RunStatus.QUEUED, config=record.config,
                              seed=record.seed)  # fmt: skip
            if not self.store.begin_run(claim, owner=self.owner):
                return False
            self.store.end_run(record.id, RunStatus.QUEUED, error="interrupted", owner=self.owner)
        return True

    # -------------------------------------------------------- audit

    def audit(self, study: Any, outcomes: list[TrialOutcome], count: int) -> dict[int, float]:
        """Re-train up to ``count`` pruned trials (lowest peak LR first) to full length."""
        done: dict[int, float] = {int(k.split(".")[1]): v for k, v in study.user_attrs.items()
                                  if k.startswith("audit.") and v is not None}  # fmt: skip
        pruned = sorted((t for t in outcomes if t.state == "pruned"), key=lambda t: (t.lr, t.number))
        steps = 0
        for outcome in pruned[:count]:
            if outcome.number in done:
                continue
            self.report(TuneEvent("audit", number=outcome.number, detail=outcome.schedule))
            records = [self.store.run(rid) for rid in outcome.run_ids]
            plans = [RunPlan(r.id, r.config) for r in records]
            trained = train_trial(plans, self.store, self.spec.name, progress=self.report, device=self.device,
                                  owner=self.owner)  # fmt: skip
            steps += sum(self.store.step_count(r.id) for r in trained)
            value = score(trained, self.store)
            if value is not None:
                done[outcome.number] = value
                study.set_user_attr(f"audit.{outcome.number}", value)
        study.set_user_attr("audit_steps", int(study.user_attrs.get("audit_steps", 0)) + steps)
        return done

    # -------------------------------------------------------- what both loops share

    def ask_drawable(self, study: Any) -> Job:
        """:meth:`ask` until a draw the schedule families accept; ``ValueError`` once the
        space has given more than three refused draws per trial of the budget."""
        while True:
            try:
                return self.ask(study)
            except BadDraw:
                self.bad_draws += 1
                if self.bad_draws > 3 * self.spec.trials:
                    raise ValueError("the space keeps giving configurations the schedule families refuse") from None

    def settle(self, study: Any, job: Job, outcomes: list[TrialOutcome]) -> None:
        """Tell Optuna how ``job`` ended, add its outcome to ``outcomes`` and report it."""
        outcome = self.finish(study, job)
        outcomes.append(outcome)
        self.report(self.trial_event(outcomes, outcome))

    def budget_left(self, outcomes: Sequence[TrialOutcome], in_flight: int = 0, study: Any = None) -> bool:
        """Whether another trial fits the budget. With ``study``, every process's trials
        count: those finished and those another live process is training now."""
        steps = sum(t.steps for t in outcomes)
        done = finished(outcomes)
        if study is not None:
            import optuna

            State = optuna.trial.TrialState
            trials = study.get_trials(deepcopy=False, states=(State.COMPLETE, State.PRUNED, State.RUNNING))
            ended = [t for t in trials if t.state.is_finished()]
            elsewhere = [t for t in trials if t.state is State.RUNNING and self._in_flight_elsewhere(t)]
            done = len(ended) + len(elsewhere)
            steps = sum(int(t.user_attrs.get("steps", 0)) for t in ended)
        if done + in_flight >= self.spec.trials:
            return False
        spent = self.finder_steps + steps
        return self.spec.max_steps is None or spent < self.spec.max_steps

    def trial_event(self, outcomes: Sequence[TrialOutcome], outcome: TrialOutcome) -> TuneEvent:
        return TuneEvent("trial", done=finished(outcomes), total=self.spec.trials,
                         pruned=sum(t.state == "pruned" for t in outcomes), best=best_value(outcomes, self.direction),
                         state=outcome.state, value=outcome.value, number=outcome.number,
                         steps=self.finder_steps + sum(t.steps for t in outcomes))  # fmt: skip


def _check_trainable(spec: TuneSpec, task: Any) -> None:
    """A trainable function has no range test: a space that multiplies the range test's LR
    (``from_finder``) is refused in one line, before anything is stored."""
    if getattr(task, "range_test", True) is False and spec.space is not None and spec.space.needs_finder:
        lr_range = getattr(task, "lr_range", None)
        hint = f" (it declares lr_range = {lr_range[0]:g} to {lr_range[1]:g})" if lr_range else ""
        raise ValueError(f"task {spec.task!r} is a trainable function: it has no range test for from_finder to "
                         f"multiply; give its LRs as {{log = [low, high]}}{hint}")  # fmt: skip


def run_numbers(spec: TuneSpec, task: Any) -> tuple[int, int, int]:
    """The epochs, batch size and steps per epoch of the tune's runs on ``task``, with the
    space built at its corners against them: ``ValueError`` in one line, before anything
    trains, when the run has no step or the space a value the run cannot use."""
    epochs = spec.epochs or task.default_epochs
    batch_size = spec.batch_size or task.default_batch_size
    per_epoch = steps_per_epoch(task, batch_size)
    if per_epoch < 1:
        raise ValueError(f"task {spec.task!r} has no training batch at batch_size {batch_size}")
    if spec.space is not None:
        try:
            spec.space.check(Context(per_epoch, epochs * per_epoch))
        except SpaceError as exc:
            raise ValueError(f"{exc} (in a run of {epochs * per_epoch} steps, {per_epoch} an epoch)") from None
    return epochs, batch_size, per_epoch


def range_test_lr(
    store: Store, spec: TuneSpec, task: Any, optimizer: str, batch_size: int, device: str
) -> tuple[float, int]:
    """The range test's LR for ``optimizer`` on the tune's task and its steps: the one stored
    under the tune's name, else a new one, stored. ``RuntimeError`` when it gives no LR."""
    record = next(
        (r for r in store.finder_results(sweep=spec.name)
         if r.optimizer == optimizer and r.config.get("task") == spec.task),
        None,
    )  # fmt: skip
    fresh = record is None
    if record is None:
        _, record = task_range_test(task, spec.task, optimizer, batch_size=batch_size, seed=spec.seeds[0],
                                    device=device, sweep=spec.name, num_iter=spec.finder_iters)  # fmt: skip
    if not (math.isfinite(record.lr) and record.lr > 0):
        raise RuntimeError(f"the range test for {optimizer} could not suggest an LR: {record.reason}")
    if fresh:
        store.save_finder_result(record)
    return float(record.lr), len(record.lrs)


class BadDraw(ValueError):
    """A draw the schedule families refuse (a cycle longer than the run...)."""


def _pruned(record: RunRecord) -> bool:
    return record.status is RunStatus.FAILED and (record.error or "").startswith(PRUNED_PREFIX)


def _ended(records: Sequence[RunRecord]) -> bool:
    """A trial's runs need no more training: all finished, the first pruned, or one diverged."""
    return (
        all(r.status.is_finished for r in records)
        or _pruned(records[0])
        or any(r.status is RunStatus.DIVERGED for r in records)
    )


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, (str, int, float, bool)) or v is None else str(v)) for k, v in params.items()}


def finished(outcomes: Sequence[TrialOutcome]) -> int:
    return sum(1 for t in outcomes if t.state in ("complete", "pruned", "diverged"))


def best_value(outcomes: Sequence[TrialOutcome], direction: str) -> float | None:
    values = [t.value for t in outcomes if t.state == "complete" and t.value is not None]
    if not values:
        return None
    return max(values) if direction == "maximize" else min(values)
