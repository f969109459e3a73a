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

The module holds the search loop and what a tune returns; one trial (its objective, its
training, pruning) is :mod:`lrlab.tune.trial`, the Optuna side (the study, ask and tell,
resume, the audit) :mod:`lrlab.tune.tuner`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from lrlab.core.records import RunRecord
from lrlab.store.sqlite import Store
from lrlab.study.recommend import recommend
from lrlab.tune.ray_backend import RaySession, connect, run_ray
from lrlab.tune.report import write_outputs
from lrlab.tune.spec import TuneSpec, load_tune
from lrlab.tune.storage import default_storage
from lrlab.tune.trial import ProgressFn, Pruned, TrialOutcome, requeue, train_trial
from lrlab.tune.tuner import TuneEvent, Tuner, best_value, check_device, finished

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


# ---------------------------------------------------------------- the search


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
    spec = spec if isinstance(spec, TuneSpec) else load_tune(spec)
    out_dir = _checked(spec, backend, jobs, address, out)
    check_device(device, backend)
    url = storage or spec.storage or default_storage(store.path)
    tuner = Tuner(spec, store, url, progress, device)
    # A cluster that is not there fails before anything is stored.
    ray_session = connect(address, jobs) if backend == "ray" else None
    try:
        study = tuner.open_study(resume)
        store.upsert_sweep(spec.name, {"tune": _plain_tables(spec.raw), "optuna_storage": url})
        outcomes = _search(tuner, study, jobs, ray_session)
    finally:
        if ray_session is not None:
            ray_session.close()
    audits = tuner.audit(study, outcomes, spec.audit_pruned) if spec.audit_pruned else {}
    result = _result(tuner, study, audits, url)
    if out_dir is not None:
        result = write_outputs(result, study, store, out_dir)
    tuner.report(TuneEvent("end", done=finished(result.trials), total=spec.trials,
                           pruned=result.bias.pruned, best=best_value(result.trials, tuner.direction),
                           steps=result.compute_steps))  # fmt: skip
    return result


def _checked(spec: TuneSpec, backend: str, jobs: int, address: str | None, out: str | Path | None) -> Path | None:
    """The arguments of :func:`tune` checked (``ValueError`` naming the one at fault), and
    the output folder."""
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
    if out_dir is not None:
        check_folder(out_dir, "out")
    return out_dir


def check_folder(folder: Path, what: str) -> None:
    """``ValueError`` in one line when ``folder`` cannot be made or written: it is a file,
    a folder on its way is a file, or the nearest folder that exists is read-only."""
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{what} must be a folder, got the file {str(folder)!r}")
    for parent in (folder, *folder.parents):
        if not parent.exists():
            continue
        if not parent.is_dir():
            raise ValueError(f"{what} {str(folder)!r} is under {str(parent)!r}, which is a file, not a folder")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ValueError(f"{what} {str(folder)!r} cannot be written: {str(parent)!r} is read-only")
        return


def _search(tuner: Tuner, study: Any, jobs: int, ray_session: RaySession | None) -> list[TrialOutcome]:
    """Range tests, recovery of a killed tune, then trials until the budget is spent."""
    tuner.range_tests()
    tuner.recover(study)
    outcomes = [tuner.outcome(t) for t in study.trials if t.state.is_finished()]
    tuner.report(TuneEvent("start", done=finished(outcomes), total=tuner.spec.trials,
                           pruned=sum(t.state == "pruned" for t in outcomes),
                           best=best_value(outcomes, tuner.direction), steps=sum(t.steps for t in outcomes)))  # fmt: skip
    if ray_session is not None:
        run_ray(tuner, study, outcomes, jobs, ray_session)
    else:
        _run_local(tuner, study, outcomes)
    return outcomes


def _plain_tables(raw: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(raw, default=str))


def _run_local(tuner: Tuner, study: Any, outcomes: list[TrialOutcome]) -> None:
    while tuner.budget_left(outcomes, study=study):
        job = tuner.ask_drawable(study)
        try:
            if not job.reused:
                train_trial(job.plans, tuner.store, tuner.spec.name, trial=job.trial, metric=tuner.metric,
                            pruner=tuner.spec.pruner, progress=tuner.report, device=tuner.device,
                            owner=tuner.owner)  # fmt: skip
        except KeyboardInterrupt:
            requeue(study, job.trial)
            raise
        tuner.settle(study, job, outcomes)


def _result(tuner: Tuner, study: Any, audits: dict[int, float], url: str) -> TuneResult:
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
    best = best_value(outcomes, direction)
    beat = sum(1 for v in audits.values() if best is not None and better(v, best))
    low, high = _pruned_by_lr(completed, pruned)
    return Bias(len(pruned), len(completed), len(audits), beat, _best_was_pruned(completed, audits, best, direction),
                low, high)  # fmt: skip


def _best_was_pruned(
    completed: Sequence[TrialOutcome], audits: dict[int, float], best: float | None, direction: str
) -> bool:
    """Whether the best value at full length is an audit's (a pruned trial's) that beats ``best``."""
    overall = [(t.value, False) for t in completed if t.value is not None] + [(v, True) for v in audits.values()]
    if not overall:
        return False
    maximize = direction == "maximize"
    value, was_pruned = max(overall, key=lambda x: x[0]) if maximize else min(overall, key=lambda x: x[0])
    return was_pruned and (best is None or (value > best if maximize else value < best))
