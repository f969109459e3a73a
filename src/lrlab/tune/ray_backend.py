"""``backend="ray"``: a tune's trials as Ray tasks, driven by Optuna's ask/tell.

The driver asks Optuna for up to ``jobs`` trials, claims their runs in the lrlab store and
sends each to a Ray task. The task trains into a private in-memory store, reporting every
epoch to the trial through Optuna's own storage (so the pruner works as it does locally:
the storage must be one the workers can reach, a database URL on a real cluster), and
returns the run whole; the driver imports it in one transaction (``Store.import_run``) and
tells Optuna. Same store, same run ids, same scores as the local backend.
"""

from __future__ import annotations

import math
from typing import Any

from lrlab.core.records import RunRecord, RunStatus
from lrlab.store.sqlite import Store
from lrlab.sweeps.executors import RaySession, _import_result, connect_ray
from lrlab.tune.storage import open_storage, storage_env
from lrlab.tune.trial import TrialOutcome, requeue, train_trial
from lrlab.tune.tuner import Job, Tuner

__all__ = ["RaySession", "connect", "run_ray"]


def connect(address: str | None, jobs: int) -> RaySession:
    """Join the cluster at ``address`` or start a local instance with ``jobs`` CPUs; one
    line (``ValueError``) within seconds when no cluster answers."""
    return connect_ray(address, jobs)


def _train_remote(
    plans: list[Any], sweep: str, storage_url: str, study_name: str, trial_id: int, metric: str, pruner: str,
    device: str,
) -> list[dict[str, Any]]:
    """Runs on a Ray worker: the trial's runs into an in-memory store, returned whole."""
    import optuna

    storage_env()
    study = optuna.load_study(study_name=study_name, storage=open_storage(storage_url))
    trial = optuna.trial.Trial(study, trial_id)
    local = Store(":memory:")
    records = train_trial(plans, local, sweep, trial=trial, metric=metric, pruner=pruner, device=device)
    payloads = []
    for record in records:
        steps = local.steps(record.id)
        rows = [
            (int(s), int(e), [float(x) for x in lrs], None if math.isnan(m) else float(m), float(loss), float(g))
            for s, e, lrs, m, loss, g in zip(steps.step, steps.epoch, steps.lrs, steps.momentum, steps.loss,
                                             steps.grad_norm)
        ]  # fmt: skip
        payloads.append({"record": record, "steps": rows, "epochs": local.epochs(record.id)})
    return payloads


def run_ray(tuner: Tuner, study: Any, outcomes: list[TrialOutcome], jobs: int, session: RaySession) -> None:
    """Train trials on Ray until the budget is spent (``outcomes`` grows as they finish)."""
    if tuner.storage_url == ":memory:":
        raise ValueError("the ray backend needs an Optuna storage its workers can open, not ':memory:'")
    ray = session.ray
    remote = ray.remote(num_cpus=1, max_retries=0)(_train_remote)
    store: Store = tuner.store
    in_flight: dict[Any, Job] = {}
    try:
        while True:
            while len(in_flight) < jobs and tuner.budget_left(outcomes, len(in_flight), study):
                job = tuner.ask_drawable(study)
                if not _send(remote, ray, job, in_flight, tuner, study, outcomes):
                    tuner.settle(study, job, outcomes)
            if not in_flight:
                return
            done, _ = ray.wait(list(in_flight), num_returns=1, timeout=1.0)
            for ref in done:
                _land(ray, ref, in_flight.pop(ref), tuner, study, outcomes)
    except BaseException:
        for ref, job in in_flight.items():
            ray.cancel(ref, force=True)
            requeue(study, job.trial)
            for plan in job.plans:
                if store.run(plan.id).status is RunStatus.RUNNING:
                    store.end_run(plan.id, RunStatus.QUEUED, error="interrupted", owner=tuner.owner)
        raise


def _send(
    remote: Any, ray: Any, job: Job, in_flight: dict[Any, Job], tuner: Tuner, study: Any, outcomes: list[TrialOutcome]
) -> bool:
    """Send ``job`` to a Ray task, or say (False) that it needs no training: its runs are
    done already, in flight for another trial (waited for) or claimed by another process."""
    store: Store = tuner.store
    busy = {p.id for j in in_flight.values() for p in j.plans}
    if job.reused or busy & {p.id for p in job.plans} or not _claim(store, job, tuner):
        if not job.reused:  # the same run is in flight: count it when that one lands
            _wait_for(ray, in_flight, busy & {p.id for p in job.plans}, tuner, study, outcomes)
            job.reused = all(r.status.is_finished for r in store.runs(ids=[p.id for p in job.plans]))
        return False
    ref = remote.remote(job.plans, tuner.spec.name, tuner.storage_url, tuner.spec.name,
                        job.trial._trial_id, tuner.metric, tuner.spec.pruner, tuner.device)  # fmt: skip
    in_flight[ref] = job
    return True


def _claim(store: Store, job: Job, tuner: Tuner) -> bool:
    for plan in job.plans:
        claim = RunRecord(id=plan.id, sweep=tuner.spec.name, status=RunStatus.QUEUED, config=plan.config,
                          seed=plan.seed)  # fmt: skip
        if not store.begin_run(claim, owner=tuner.owner):
            return False
    return True


def _land(ray: Any, ref: Any, job: Job, tuner: Tuner, study: Any, outcomes: list[TrialOutcome]) -> None:
    store: Store = tuner.store
    try:
        for payload in ray.get(ref):
            _import_result(store, payload, tuner.owner)
    except Exception as exc:  # the task itself died (worker lost, out of memory...)
        error = f"ray: {type(exc).__name__}: {exc}".splitlines()[0]
        for plan in job.plans:
            if store.run(plan.id).status is RunStatus.RUNNING:
                store.end_run(plan.id, RunStatus.FAILED, error=error, owner=tuner.owner)
    for plan in job.plans:  # seeds after a run that did not finish were never trained
        if store.run(plan.id).status is RunStatus.RUNNING:
            store.end_run(plan.id, RunStatus.QUEUED, error="not trained: an earlier seed did not finish",
                          owner=tuner.owner)  # fmt: skip
    tuner.settle(study, job, outcomes)


def _wait_for(
    ray: Any, in_flight: dict[Any, Job], ids: set[str], tuner: Tuner, study: Any, outcomes: list[TrialOutcome]
) -> None:
    for ref, job in list(in_flight.items()):
        if ids & {p.id for p in job.plans}:
            ray.wait([ref], num_returns=1)
            _land(ray, ref, in_flight.pop(ref), tuner, study, outcomes)
