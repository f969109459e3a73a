"""``tune``: Optuna searches a schedule space; every trial is an ordinary lrlab run.

The loop is Optuna's ask/tell: a trial draws a configuration from the space
(:mod:`lrlab.tune.space`, multivariate TPE by default), the configuration becomes a typed
:class:`~lrlab.core.records.RunConfig` whose id is the hash of the tune's name and that
config (``lrlab.sweeps.run_id_for``), the run is trained by
:func:`~lrlab.training.loop.train_run` into the lrlab store, and the trial is told the
run's score by the one scorer (:func:`lrlab.core.ranking.rank`). Each epoch's validation
metric is reported to the trial, and Optuna's pruner (Hyperband or successive halving)
stops weak runs early; a pruned run is left ``failed`` with the reason ``Pruned: ...``.

Trial and run are tied both ways: the trial keeps the run id (``user_attrs["run_id"]``),
the run keeps the trial number and draws (``extras["tune"]``). That is what makes
``resume=True`` exact after Ctrl-C or SIGKILL: a trial whose run finished is told its
score without training again; one whose run did not finish is failed and its draws
queued again, so the same run id is re-claimed and trained once. The budget counts
finished trials (completed or pruned) and optimizer steps.

Short-horizon bias: ``audit_pruned`` pruned trials, those with the lowest peak LR first
(the ones a short horizon wrongs most often), are re-trained to full length, and the
result says whether any of them beats the best trial that was never pruned.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import signal
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lrlab.core.records import RunConfig, RunRecord, RunStatus
from lrlab.formatting import num
from lrlab.store.sqlite import Store, new_owner
from lrlab.sweeps.grid import RunPlan
from lrlab.training.recorder import RunProgress
from lrlab.tune.space import Context
from lrlab.tune.spec import TuneSpec, load_tune

__all__ = [
    "BACKENDS",
    "Bias",
    "Pruned",
    "TrialOutcome",
    "TuneEvent",
    "TuneResult",
    "tune",
]

BACKENDS = ("local", "ray")
PRUNED_PREFIX = "Pruned: "
# Spec keys that may change between a tune and its resumption (the budget, the audit).
_RESUMABLE_KEYS = ("trials", "max_steps", "audit_pruned", "storage")

ProgressFn = Callable[[Any], None]


class Pruned(Exception):
    """Raised from a run's progress callback when Optuna's pruner stops the trial."""


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


@dataclass(frozen=True)
class TrialOutcome:
    """One finished trial: its Optuna state (``complete``, ``pruned``, ``diverged`` is
    complete with the untrained model's score, ``failed``), value and run."""

    number: int
    state: str
    value: float | None
    run_ids: tuple[str, ...]
    params: dict[str, Any]
    schedule: str
    optimizer: str
    lr: float
    steps: int
    pruned_epoch: int | None = None
    audit_value: float | None = None


@dataclass(frozen=True)
class Bias:
    """What pruning cost: of the ``pruned`` trials, ``audited`` were re-trained to full
    length; ``beat_best`` of those beat the best trial never pruned; ``best_was_pruned``
    whether the best trial at full length is one that was pruned. ``pruned_low_lr`` and
    ``pruned_high_lr`` are the pruned fractions of the trials below and above the median
    peak LR (a short horizon favours high LRs: watch for a large difference)."""

    pruned: int
    completed: int
    audited: int
    beat_best: int
    best_was_pruned: bool
    pruned_low_lr: float | None
    pruned_high_lr: float | None

    def sentence(self) -> str:
        if not self.pruned:
            return "no trial was pruned"
        text = f"{self.pruned} of {self.pruned + self.completed} trials were pruned"
        if self.pruned_low_lr is not None and self.pruned_high_lr is not None:
            text += (f" ({self.pruned_low_lr:.0%} of the trials below their optimizer's median peak LR, "
                     f"{self.pruned_high_lr:.0%} of those above)")  # fmt: skip
        if self.audited:
            text += (f"; {self.audited} pruned trial(s) re-trained to full length, {self.beat_best} of them beat "
                     f"the best unpruned trial")  # fmt: skip
            text += " (the best at full length had been pruned)" if self.best_was_pruned else ""
        return text


@dataclass(frozen=True)
class TuneResult:
    """What a tune found. ``recommendation`` is :func:`lrlab.study.recommend`'s verdict over
    every run trained to full length (completed trials and audits), by the one scorer."""

    name: str
    spec: TuneSpec
    metric: str
    direction: str
    trials: list[TrialOutcome]
    runs: list[RunRecord]
    recommendation: Any
    bias: Bias
    total_steps: int
    steps_per_epoch: int
    compute_steps: int
    finder_lrs: dict[str, float]
    storage: str
    files: Any = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def best(self) -> TrialOutcome:
        ids = set(self.recommendation.best.run_ids)
        return next(t for t in self.trials if ids & set(t.run_ids))


# ---------------------------------------------------------------- the objective


def objective_of(task: Any) -> tuple[str, str]:
    """The metric a tune optimises and its direction: the task's declared objective where
    it has one, else validation error for classifiers and validation loss otherwise."""
    declared = getattr(task, "objective", None)
    if declared is None:
        try:
            from lrlab.core.records import Objective

            declared = Objective.for_kind(task.kind)
        except (ImportError, ValueError):
            declared = None
    if declared is not None:
        return declared.metric, "maximize" if declared.higher_is_better else "minimize"
    return ("val_error" if task.kind == "classification" else "val_loss"), "minimize"


def epoch_value(event: RunProgress, metric: str) -> float | None:
    """The objective at an epoch event, where the event carries it (validation error is
    one minus the accuracy; validation loss as such)."""
    if metric == "val_error" and event.val_accuracy is not None:
        return 1.0 - float(event.val_accuracy)
    if metric == "val_loss" and event.val_loss is not None:
        return float(event.val_loss)
    return None


def score(records: Sequence[RunRecord], store: Store) -> float | None:
    """The trial's score: the one ranking's mean over its finished seeds."""
    from lrlab.core.ranking import rank

    done = [r for r in records if r.status is RunStatus.DONE]
    if not done:
        return None
    ranked = rank(done, store.epochs_for([r.id for r in done]))
    return ranked[0].mean if ranked else None


def _penalty(record: RunRecord, store: Store, metric: str) -> float:
    """A diverged trial scores as the untrained model: error 1, or its first step's loss."""
    if metric == "val_error":
        return 1.0
    steps = store.steps(record.id)
    first = float(steps.loss[0]) if len(steps) else math.inf
    return first if math.isfinite(first) else 1e6


# ---------------------------------------------------------------- one trial's training


def pruning_hook(trial: Any, metric: str, pruner: str, forward: ProgressFn | None) -> ProgressFn:
    """A ``train_run`` progress callback that reports each epoch's metric to ``trial`` and
    raises :class:`Pruned` when Optuna says so."""

    def on(event: Any) -> None:
        if forward is not None:
            forward(event)
        if not isinstance(event, RunProgress) or event.event != "epoch":
            return
        value = epoch_value(event, metric)
        if value is None or not math.isfinite(value):
            return
        trial.report(value, event.epoch)
        if event.epoch < event.epochs and trial.should_prune():
            raise Pruned(f"by the {pruner} pruner after epoch {event.epoch} of {event.epochs} ({metric} {num(value)})")

    return on


def train_trial(
    plans: Sequence[RunPlan],
    store: Store,
    sweep: str,
    *,
    trial: Any = None,
    metric: str = "val_loss",
    pruner: str = "none",
    progress: ProgressFn | None = None,
    device: str = "cpu",
    owner: str | None = None,
) -> list[RunRecord]:
    """Train a trial's runs (one per seed) in this process; the first seed's epochs go to
    ``trial`` for pruning. Stops at the first run that does not finish."""
    from lrlab.training.loop import train_run

    records = []
    for index, plan in enumerate(plans):
        hook = pruning_hook(trial, metric, pruner, progress) if trial is not None and index == 0 else progress
        record = train_run(plan.config, store, plan.id, progress=hook, device=device, sweep=sweep, owner=owner)
        records.append(record)
        if record.status is not RunStatus.DONE:
            break
    return records


# ---------------------------------------------------------------- the tune


@dataclass
class _Job:
    """A trial in flight: the Optuna trial, its draw and its runs."""

    trial: Any
    choice: Any
    plans: list[RunPlan]
    reused: bool = False


class _Tuner:
    def __init__(
        self,
        spec: TuneSpec,
        store: Store,
        storage: str,
        progress: ProgressFn | None,
        device: str,
    ) -> None:
        from lrlab.training.resolve import steps_per_epoch
        from lrlab.training.tasks import get_task

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

    # -------------------------------------------------------- Optuna

    def open_study(self, resume: bool) -> Any:
        import optuna

        from lrlab.tune.storage import open_storage, storage_env

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
                    f"the tune file {spec.name!r} changed since the tune began (only {', '.join(_RESUMABLE_KEYS)} "
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
        data = {k: v for k, v in self.spec.raw.items() if k not in _RESUMABLE_KEYS}
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]

    # -------------------------------------------------------- range tests

    def range_tests(self) -> None:
        space = self.spec.space
        if space is None or not space.needs_finder:
            return
        for optimizer in space.optimizers:
            self.report(TuneEvent("finder", detail=optimizer))
            record = self._finder(optimizer)
            if not (math.isfinite(record.lr) and record.lr > 0):
                raise RuntimeError(f"the range test for {optimizer} could not suggest an LR: {record.reason}")
            self.finder_lrs[optimizer] = float(record.lr)
            self.finder_steps += len(record.lrs)

    def _finder(self, optimizer: str) -> Any:
        for record in self.store.finder_results(sweep=self.spec.name):
            if record.optimizer == optimizer and record.config.get("task") == self.spec.task:
                return record
        from lrlab.study.range_tests import task_range_test

        _, record = task_range_test(
            self.task, self.spec.task, optimizer, batch_size=self.batch_size, seed=self.spec.seeds[0],
            device=self.device, sweep=self.spec.name, num_iter=self.spec.finder_iters,
        )  # fmt: skip
        self.store.save_finder_result(record)
        return record

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

    def ask(self, study: Any) -> _Job:
        assert self.spec.space is not None
        trial = study.ask()
        try:
            choice = self.spec.space.sample(trial, self.context())
        except ValueError as exc:  # a draw the family refuses (a cycle longer than the run...)
            import optuna

            trial.set_user_attr("error", str(exc))
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise _BadDraw(str(exc)) from None
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
        return _Job(trial, choice, plans, reused)

    def finish(self, study: Any, job: _Job) -> TrialOutcome:
        """Tell Optuna how the trial's runs ended (read from the store)."""
        import optuna

        State = optuna.trial.TrialState
        records = self.store.runs(ids=[p.id for p in job.plans])
        steps = 0 if job.reused else sum(self.store.step_count(r.id) for r in records)
        first = next((r for r in records if r.id == job.plans[0].id), None)
        state, value, pruned_epoch = "failed", None, None
        if first is not None and first.status is RunStatus.FAILED and (first.error or "").startswith(PRUNED_PREFIX):
            state = "pruned"
            pruned_epoch = len(self.store.epochs(first.id))
            self.store.end_run(first.id, RunStatus.FAILED, error=first.error,
                               extras={"traceback": None, "pruned_epoch": pruned_epoch})  # fmt: skip
        elif any(r.status is RunStatus.DIVERGED for r in records):
            state, value = "diverged", _penalty(next(r for r in records if r.status is RunStatus.DIVERGED),
                                                 self.store, self.metric)  # fmt: skip
        elif len(records) == len(job.plans) and all(r.status is RunStatus.DONE for r in records):
            value = score(records, self.store)
            state = "complete" if value is not None else "failed"
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
                job = _Job(optuna.trial.Trial(study, frozen._trial_id), None,
                           [RunPlan(r.id, r.config) for r in records])  # fmt: skip
                first = records[0]
                ended = all(r.status.is_finished for r in records) or (
                    first.status is RunStatus.FAILED and (first.error or "").startswith(PRUNED_PREFIX)
                ) or any(r.status is RunStatus.DIVERGED for r in records)
                if ended:
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


class _BadDraw(ValueError):
    pass


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, (str, int, float, bool)) or v is None else str(v)) for k, v in params.items()}


def _finished(outcomes: Sequence[TrialOutcome]) -> int:
    return sum(1 for t in outcomes if t.state in ("complete", "pruned", "diverged"))


def _best(outcomes: Sequence[TrialOutcome], direction: str) -> float | None:
    values = [t.value for t in outcomes if t.state == "complete" and t.value is not None]
    if not values:
        return None
    return max(values) if direction == "maximize" else min(values)


def tune(
    spec: TuneSpec | str | Path | dict[str, Any],
    store: Store,
    *,
    resume: bool = False,
    backend: str = "local",
    jobs: int = 1,
    address: str | None = None,
    device: str = "cpu",
    storage: str | None = None,
    out: str | Path | None = None,
    progress: ProgressFn | None = None,
) -> TuneResult:
    """Search ``spec``'s space with Optuna and return what it found (see the module doc).

    ``storage`` (default: the file's ``storage``, else ``optuna.db`` beside the store) is
    Optuna's; ``backend="ray"`` trains ``jobs`` trials at once as Ray tasks (on the cluster
    at ``address``, or a local instance). With ``out`` the report, its figures and
    ``recommendation.md`` are written there. ``progress`` receives ``TuneEvent`` and
    ``RunProgress`` events. Ctrl-C fails the trial in flight, queues its draws again and
    re-raises; ``resume=True`` continues a tune that was stopped.
    """
    from lrlab.tune.storage import default_storage

    if not isinstance(spec, TuneSpec):
        spec = load_tune(spec)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    if address is not None and backend != "ray":
        raise ValueError("an address needs the ray backend")
    if jobs > 1 and backend != "ray":
        raise ValueError("jobs above 1 needs the ray backend (a local tune trains one trial at a time)")
    if spec.method == "pbt":
        raise ValueError("method = \"pbt\" is trained by lrlab.tune.pbt.run_pbt (lrlab tune runs it for you)")
    out_dir = None if out is None else Path(out)
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"out must be a folder, got the file {str(out_dir)!r}")
    url = storage or spec.storage or default_storage(store.path)
    tuner = _Tuner(spec, store, url, progress, device)
    if backend == "ray":  # a cluster that is not there fails before anything is stored
        from lrlab.tune.ray_backend import connect

        ray_session = connect(address, jobs)
    try:
        study = tuner.open_study(resume)
    except BaseException:
        if backend == "ray":
            ray_session.close()
        raise
    store.upsert_sweep(spec.name, {"tune": _plain_tables(spec.raw), "optuna_storage": url})
    report = tuner.report
    try:
        tuner.range_tests()
        tuner.recover(study)
        outcomes = [tuner.outcome(t) for t in study.trials if t.state.is_finished()]
        report(TuneEvent("start", done=_finished(outcomes), total=spec.trials,
                         pruned=sum(t.state == "pruned" for t in outcomes), best=_best(outcomes, tuner.direction),
                         steps=sum(t.steps for t in outcomes)))  # fmt: skip
        if backend == "ray":
            from lrlab.tune.ray_backend import run_ray

            run_ray(tuner, study, outcomes, jobs, ray_session)
        else:
            _run_local(tuner, study, outcomes)
    finally:
        if backend == "ray":
            ray_session.close()
    audits = tuner.audit(study, outcomes, spec.audit_pruned) if spec.audit_pruned else {}
    result = _result(tuner, study, audits, url)
    if out_dir is not None:
        from lrlab.tune.report import write_outputs

        result = write_outputs(result, study, store, out_dir)
    report(TuneEvent("end", done=_finished(result.trials), total=spec.trials,
                     pruned=result.bias.pruned, best=_best(result.trials, tuner.direction),
                     steps=result.compute_steps))  # fmt: skip
    return result


def _plain_tables(raw: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(raw, default=str))


def budget_left(tuner: _Tuner, outcomes: Sequence[TrialOutcome], in_flight: int = 0) -> bool:
    spec = tuner.spec
    if _finished(outcomes) + in_flight >= spec.trials:
        return False
    spent = tuner.finder_steps + sum(t.steps for t in outcomes)
    return spec.max_steps is None or spent < spec.max_steps


def _run_local(tuner: _Tuner, study: Any, outcomes: list[TrialOutcome]) -> None:

    bad_draws = 0
    while budget_left(tuner, outcomes):
        try:
            job = tuner.ask(study)
        except _BadDraw:
            bad_draws += 1
            if bad_draws > 3 * tuner.spec.trials:
                raise ValueError("the space keeps giving configurations the schedule families refuse") from None
            continue
        try:
            if not job.reused:
                train_trial(job.plans, tuner.store, tuner.spec.name, trial=job.trial, metric=tuner.metric,
                            pruner=tuner.spec.pruner, progress=tuner.report, device=tuner.device,
                            owner=tuner.owner)  # fmt: skip
        except KeyboardInterrupt:
            requeue(study, job.trial)
            raise
        outcome = tuner.finish(study, job)
        outcomes.append(outcome)
        tuner.report(_trial_event(tuner, outcomes, outcome))


def requeue(study: Any, trial: Any) -> None:
    """Hand an interrupted trial back: failed in Optuna, its parameters queued again (a
    resume trains them first). SIGINT is held off for the two writes, so a second Ctrl-C
    cannot leave a failed trial without its retry."""
    import optuna

    with _sigint_held():
        study.tell(trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """SIGINT ignored inside the block (where the main thread can set handlers)."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: nothing to hold
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _trial_event(tuner: _Tuner, outcomes: Sequence[TrialOutcome], outcome: TrialOutcome) -> TuneEvent:
    return TuneEvent("trial", done=_finished(outcomes), total=tuner.spec.trials,
                     pruned=sum(t.state == "pruned" for t in outcomes), best=_best(outcomes, tuner.direction),
                     state=outcome.state, value=outcome.value, number=outcome.number,
                     steps=tuner.finder_steps + sum(t.steps for t in outcomes))  # fmt: skip


def _result(tuner: _Tuner, study: Any, audits: dict[int, float], url: str) -> TuneResult:
    from dataclasses import replace

    from lrlab.study.recommend import recommend

    outcomes = [replace(tuner.outcome(t), audit_value=audits.get(t.number)) for t in study.trials
                if t.state.is_finished()]  # fmt: skip
    ids = list(dict.fromkeys(rid for t in outcomes for rid in t.run_ids))
    runs = tuner.store.runs(ids=ids)
    names = {}
    for t in outcomes:
        for run in runs:
            if run.id in t.run_ids:
                names.setdefault(run.config.schedule, f"trial {t.number}")
    recommendation = recommend(runs, tuner.store.epochs_for([r.id for r in runs]), names)
    bias = _bias(outcomes, audits, tuner.direction)
    compute = tuner.finder_steps + sum(t.steps for t in outcomes) + int(study.user_attrs.get("audit_steps", 0))
    return TuneResult(
        name=tuner.spec.name, spec=tuner.spec, metric=tuner.metric, direction=tuner.direction, trials=outcomes,
        runs=runs, recommendation=recommendation, bias=bias, total_steps=tuner.total_steps,
        steps_per_epoch=tuner.steps_per_epoch, compute_steps=compute, finder_lrs=dict(tuner.finder_lrs),
        storage=url,
    )  # fmt: skip


def _pruned_by_lr(completed: Sequence[TrialOutcome], pruned: Sequence[TrialOutcome]) -> tuple[float | None, float | None]:
    """The pruned fraction of the trials below and above their optimizer's median peak LR."""
    import numpy as np

    below: list[bool] = []
    above: list[bool] = []
    trials = [t for t in (*completed, *pruned) if math.isfinite(t.lr)]
    for optimizer in {t.optimizer for t in trials}:
        same = [t for t in trials if t.optimizer == optimizer]
        if len(same) < 2:
            continue
        median = float(np.median([t.lr for t in same]))
        below += [t.state == "pruned" for t in same if t.lr < median]
        above += [t.state == "pruned" for t in same if t.lr >= median]
    return (sum(below) / len(below) if below else None), (sum(above) / len(above) if above else None)


def _bias(outcomes: Sequence[TrialOutcome], audits: dict[int, float], direction: str) -> Bias:
    better = (lambda a, b: a > b) if direction == "maximize" else (lambda a, b: a < b)
    completed = [t for t in outcomes if t.state in ("complete", "diverged")]
    pruned = [t for t in outcomes if t.state == "pruned"]
    best = _best(outcomes, direction)
    beat = sum(1 for v in audits.values() if best is not None and better(v, best))
    overall = [(t.value, False) for t in completed if t.value is not None] + [(v, True) for v in audits.values()]
    best_was_pruned = False
    if overall:
        top = max(overall, key=lambda x: x[0]) if direction == "maximize" else min(overall, key=lambda x: x[0])
        best_was_pruned = top[1] and (best is None or better(top[0], best))
    low, high = _pruned_by_lr(completed, pruned)
    return Bias(len(pruned), len(completed), len(audits), beat, best_was_pruned, low, high)
