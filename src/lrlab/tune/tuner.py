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
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lrlab.core.records import RunConfig, RunRecord, RunStatus
from lrlab.store.sqlite import Store, new_owner
from lrlab.study.range_tests import task_range_test
from lrlab.sweeps.grid import RunPlan
from lrlab.training.resolve import steps_per_epoch
from lrlab.training.tasks import get_task
from lrlab.tune.space import Context
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

__all__ = ["RESUMABLE_KEYS", "BadDraw", "Job", "TuneEvent", "Tuner", "best_value", "finished", "range_test_lr"]

# Spec keys that may change between a tune and its resumption (the budget, the audit).
RESUMABLE_KEYS = ("trials", "max_steps", "audit_pruned", "storage")


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
        except ValueError:
            raise
        except Exception as exc:
            raise ValueError(f"task {spec.task!r} could not be built: {type(exc).__name__}: {exc}") from None
        self.epochs = spec.epochs or self.task.default_epochs
        self.batch_size = spec.batch_size or self.task.default_batch_size
        self.steps_per_epoch = steps_per_epoch(self.task, self.batch_size)
        self.total_steps = self.epochs * self.steps_per_epoch
        self.metric, self.direction = objective_of(self.task)
        self.owner = new_owner()
        self.finder_lrs: dict[str, float] = {}
        self.finder_steps = 0
        self.bad_draws = 0

    # -------------------------------------------------------- Optuna

    def open_study(self, resume: bool) -> Any:
        import optuna


        storage_env()
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        storage = open_storage(self.storage_url)
        spec = self.spec
        try:
            earlier = len(optuna.load_study(study_name=spec.name, storage=storage).trials)
        except KeyError:
            earlier = 0
        # Seeded past the trials already made: a resumed tune draws new configurations, not
        # the first ones again.
        seed = spec.sampler_seed + earlier
        sampler = (
            optuna.samplers.TPESampler(multivariate=True, group=True, seed=seed,
                                       n_startup_trials=min(10, max(3, spec.trials // 4)))
            if spec.sampler == "tpe"
            else optuna.samplers.RandomSampler(seed=seed)
        )  # fmt: skip
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
            study = existing
        else:
            study = optuna.create_study(study_name=spec.name, storage=storage, sampler=sampler, pruner=pruner,
                                        direction=self.direction)  # fmt: skip
        study.set_user_attr("fingerprint", fingerprint)
        study.set_user_attr("metric", self.metric)
        return study

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
        records = self.store.runs(ids=[p.id for p in job.plans])
        steps = 0 if job.reused else sum(self.store.step_count(r.id) for r in records)
        state, value = self._ended_as(job, records)
        trial = job.trial
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
        return self.outcome(study.get_trials(deepcopy=False)[trial.number])

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

    def budget_left(self, outcomes: Sequence[TrialOutcome], in_flight: int = 0) -> bool:
        if finished(outcomes) + in_flight >= self.spec.trials:
            return False
        spent = self.finder_steps + sum(t.steps for t in outcomes)
        return self.spec.max_steps is None or spent < self.spec.max_steps

    def trial_event(self, outcomes: Sequence[TrialOutcome], outcome: TrialOutcome) -> TuneEvent:
        return TuneEvent("trial", done=finished(outcomes), total=self.spec.trials,
                         pruned=sum(t.state == "pruned" for t in outcomes), best=best_value(outcomes, self.direction),
                         state=outcome.state, value=outcome.value, number=outcome.number,
                         steps=self.finder_steps + sum(t.steps for t in outcomes))  # fmt: skip


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
