"""Population-based training (Jaderberg et al., 2017) of the learning rate, in one process.

``population`` members of one task start from the same weights (the run's seed) with LRs
spread log-evenly over a range, and train on the same batches. Every ``interval`` epochs
each member is scored on the validation set by the tune's objective; the worst
``quantile`` copy the weights, optimizer state and LR history of a member of the best
``quantile`` (exploit) and multiply its LR by one of the ``perturb`` factors (explore).

Each member's LR is constant between exploit steps, so the winner's *lineage*, the LRs of
the ancestors it descends from, is an exact lrlab schedule: a ``sequence`` of
``constant`` pieces at the exploit boundaries. Replayed by an ordinary run
(:func:`~lrlab.training.loop.train_run`, with the winner's seed, which is also the
population's batch order) it gives the same LR at every step, and, since the ancestors'
weights and optimizer state were copied whole, the same training: :func:`run_pbt` trains
that replay into the store and checks it.
"""

from __future__ import annotations

import copy
import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lrlab.core.records import RunConfig, RunRecord
from lrlab.optim.grammar import make_optimizer
from lrlab.schedules import Schedule, constant, sequence
from lrlab.store.sqlite import Store
from lrlab.sweeps import RunPlan, run_plans
from lrlab.torch_utils import torch_threads
from lrlab.training.resolve import resolve
from lrlab.training.tasks import get_task
from lrlab.training.trial_task import is_trainable
from lrlab.tune.space import lr_param
from lrlab.tune.spec import TuneSpec, load_tune
from lrlab.tune.trial import objective_of, score
from lrlab.tune.tuner import check_device, range_test_lr

__all__ = ["PbtEvent", "PbtResult", "lineage_schedule", "run_pbt"]

ProgressFn = Callable[[Any], None]


@dataclass(frozen=True)
class PbtEvent:
    """``event``: ``"exploit"`` (at ``step``, ``copies`` as (to, from) pairs) or ``"replay"``."""

    event: str
    step: int
    total_steps: int
    best: float | None = None
    copies: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class PbtResult:
    """The winner's lineage as a schedule, its replay run and whether the replay matched."""

    name: str
    metric: str
    direction: str
    schedule: Schedule
    optimizer: str
    winner: int
    winner_score: float
    scores: tuple[float, ...]
    history: tuple[dict[str, Any], ...]
    lrs: np.ndarray  # the LR the winner's lineage used at every step
    replay: RunRecord
    replay_score: float | None
    replay_exact: bool
    total_steps: int
    compute_steps: int
    extras: dict[str, Any] = field(default_factory=dict)


def lineage_schedule(lrs: Sequence[float], boundaries: Sequence[int]) -> Schedule:
    """Constant pieces ``lrs[i]`` from ``boundaries[i - 1]`` on, equal neighbours merged.

    >>> str(lineage_schedule([0.1, 0.1, 0.05], [10, 20]))
    'sequence([constant(lr=0.1), constant(lr=0.05)], boundaries=[20])'
    """
    pieces, bounds = [float(lrs[0])], []
    for lr, boundary in zip(lrs[1:], boundaries):
        if float(lr) != pieces[-1]:
            pieces.append(float(lr))
            bounds.append(int(boundary))
    if len(pieces) == 1:
        return constant(pieces[0])
    return sequence([constant(lr) for lr in pieces], boundaries=bounds)


class _Member:
    def __init__(self, model: Any, optimizer: Any, lr: float, rng: Any) -> None:
        self.model, self.optimizer, self.lr, self.rng = model, optimizer, lr, rng
        self.lineage: list[float] = [lr]  # the LR of each interval so far

    def copy_from(self, other: _Member) -> None:
        self.model.load_state_dict(copy.deepcopy(other.model.state_dict()))
        self.optimizer.load_state_dict(copy.deepcopy(other.optimizer.state_dict()))
        self.rng = other.rng.clone()
        self.lineage = list(other.lineage)
        self.lr = other.lr


def _initial_lrs(spec: TuneSpec, finder_lr: float | None) -> list[float]:
    assert spec.pbt is not None
    value = spec.pbt.lr if spec.pbt.lr is not None else {"from_finder": [0.1, 3.0]}
    param = lr_param(value, "pbt.lr")
    count = spec.pbt.population
    if param.form in ("fixed", "choice"):
        values = [float(v) for v in param.values]
        return [values[i % len(values)] for i in range(count)]
    low, high = param.values
    if param.form == "from_finder":
        assert finder_lr is not None
        low, high = low * finder_lr, high * finder_lr
    return [float(f"{v:.6g}") for v in np.geomspace(low, high, count)]


def _refuse_trainable(spec: TuneSpec) -> None:
    """Population-based training steps models lrlab builds; a trainable function builds its own."""
    if ":" not in spec.task:
        return
    if is_trainable(get_task(spec.task, **dict(spec.task_options))):
        raise ValueError(f"method = \"pbt\" trains a population of models lrlab builds; task {spec.task!r} is a "
                         "trainable function (it builds its own): use method = \"optuna\"")  # fmt: skip


def run_pbt(
    spec: TuneSpec | dict[str, Any] | str,
    store: Store,
    *,
    device: str = "cpu",
    progress: ProgressFn | None = None,
) -> PbtResult:
    """Train the population of ``spec`` (``method = "pbt"`` and a ``[pbt]`` table), replay
    the winner's lineage as an ordinary run in ``store``, and return both."""
    if not isinstance(spec, TuneSpec):
        spec = load_tune(spec)
    if spec.pbt is None:
        raise ValueError("population-based training needs a [pbt] table (population, interval, lr)")
    check_device(device)
    _refuse_trainable(spec)
    cfg = spec.pbt
    report = progress or (lambda _event: None)
    seed = spec.seeds[0]
    base = RunConfig(task=spec.task, task_options=dict(spec.task_options), optimizer=cfg.optimizer, lr=1.0,
                     seed=seed, epochs=spec.epochs, batch_size=spec.batch_size, divergence_factor=spec.divergence_factor)  # fmt: skip
    run = resolve(base, device=device)
    task = run.task
    metric, direction = objective_of(task)
    finder_lr, finder_steps = _finder(spec, store, task, run.batch_size, device)
    lrs0 = _initial_lrs(spec, finder_lr)
    interval = max(1, round(cfg.interval * run.steps_per_epoch))
    chooser = random.Random(spec.sampler_seed)
    sign = -1.0 if direction == "maximize" else 1.0
    history: list[dict[str, Any]] = []
    boundaries: list[int] = []
    with torch_threads(run.threads):
        members = []
        for lr in lrs0:
            model = task.make_model(seed).to(run.device)
            model.train()
            rng = torch.get_rng_state()  # as train_run leaves it after building the model
            members.append(_Member(model, make_optimizer(cfg.optimizer, model.parameters(), lr), lr, rng))
        used = [np.empty(run.total_steps) for _ in members]  # the LR each member's lineage used per step
        step = 0
        for _epoch in range(run.epochs):
            for inputs, targets in run.train_loader:
                _step(members, task, inputs.to(run.device), targets.to(run.device))
                for index, member in enumerate(members):
                    used[index][step] = member.lr
                step += 1
                if step % interval == 0 and step < run.total_steps:
                    scores = _scores(members, task, run.val_loader, metric)
                    copies = _exploit(members, scores, sign, cfg.quantile, cfg.perturb, chooser, used)
                    boundaries.append(step)
                    for member in members:
                        member.lineage.append(member.lr)
                    history.append({"step": step, "scores": scores, "lrs": [m.lr for m in members],
                                    "copies": copies})  # fmt: skip
                    report(PbtEvent("exploit", step, run.total_steps, _top(scores, sign), tuple(copies)))
        scores = _scores(members, task, run.val_loader, metric)
    winner = min(range(len(members)), key=lambda i: sign * _finite(scores[i]))
    schedule = lineage_schedule(members[winner].lineage, boundaries)
    lrs = used[winner]
    report(PbtEvent("replay", run.total_steps, run.total_steps, scores[winner]))
    config = base.replace(lr=float(schedule(0)), schedule=schedule)
    plan = RunPlan.of(spec.name, config)
    described = {"tune": spec.raw, "pbt": {"history": history, "winner": winner, "scores": scores,
                                          "boundaries": boundaries, "initial_lrs": lrs0}}  # fmt: skip
    (record,) = run_plans([plan], store, spec.name, _json(described), progress=progress, device=device)
    replayed = store.steps(plan.id).lr
    exact = len(replayed) == len(lrs) and bool(np.array_equal(replayed, lrs))
    return PbtResult(
        name=spec.name, metric=metric, direction=direction, schedule=schedule, optimizer=cfg.optimizer,
        winner=winner, winner_score=scores[winner], scores=tuple(scores), history=tuple(history), lrs=lrs,
        replay=record, replay_score=score([record], store), replay_exact=exact, total_steps=run.total_steps,
        compute_steps=finder_steps + len(members) * run.total_steps + store.step_count(plan.id),
    )  # fmt: skip


def _step(members: Sequence[_Member], task: Any, inputs: Any, targets: Any) -> None:
    """One optimizer step of every member on the same batch, each at its own LR and with its
    own random state (dropout draws as in a run of its own)."""
    for member in members:
        torch.set_rng_state(member.rng)
        for group in member.optimizer.param_groups:
            group["lr"] = member.lr
        member.optimizer.zero_grad(set_to_none=True)
        task.loss_fn(member.model(inputs), targets).backward()
        member.optimizer.step()
        member.rng = torch.get_rng_state()


def _finder(spec: TuneSpec, store: Store, task: Any, batch_size: int, device: str) -> tuple[float | None, int]:
    assert spec.pbt is not None
    value = spec.pbt.lr if spec.pbt.lr is not None else {"from_finder": [0.1, 3.0]}
    if not (isinstance(value, dict) and "from_finder" in value):
        return None, 0
    return range_test_lr(store, spec, task, spec.pbt.optimizer, batch_size, device)


def _scores(members: Sequence[_Member], task: Any, loader: Any, metric: str) -> list[float]:
    out = []
    for member in members:
        value = task.evaluate(member.model, loader).get(metric)
        out.append(float(value) if value is not None and math.isfinite(value) else math.nan)
    return out


def _finite(value: float) -> float:
    return value if math.isfinite(value) else math.inf


def _top(scores: Sequence[float], sign: float) -> float:
    return min(scores, key=lambda v: sign * _finite(v))


def _exploit(
    members: list[_Member],
    scores: list[float],
    sign: float,
    quantile: float,
    perturb: tuple[float, float],
    chooser: random.Random,
    used: list[np.ndarray],
) -> list[tuple[int, int]]:
    """The worst ``quantile`` copy a member of the best ``quantile`` and perturb its LR."""
    order = sorted(range(len(members)), key=lambda i: (sign * _finite(scores[i]), i))
    count = max(1, int(len(members) * quantile))
    top, bottom = order[:count], order[-count:]
    copies = []
    for loser in bottom:
        donor = chooser.choice(top)
        members[loser].copy_from(members[donor])
        used[loser] = used[donor].copy()
        members[loser].lr = float(f"{members[donor].lr * chooser.choice(perturb):.6g}")
        copies.append((loser, donor))
    return copies


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=float, allow_nan=True).replace("NaN", "null"))
