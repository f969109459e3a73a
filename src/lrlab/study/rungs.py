"""The study's rungs as runs: what every phase shares (:class:`Setup`), the first rung's
plans (the schedule families at each LR of an optimizer's grid, an LR estimator's own), the
bracketing rounds, more seeds for the finalists and for the recommendation's bracket
neighbours, and each family's optimum (:mod:`lrlab.study.bracketing` holds the rules).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from lrlab.core.records import RunConfig, RunRecord
from lrlab.core.verdict import FamilyOptimum
from lrlab.optim.grammar import optimizer_key
from lrlab.optim.lr_free import RUN_LR
from lrlab.schedules import Schedule, constant, cosine
from lrlab.store.sqlite import Store
from lrlab.study.bracketing import (
    MAX_EXTRA,
    Bracketing,
    Grid,
    bracket_rounds,
    failed_lrs,
    family_losses,
    family_optima,
    has_range_test,
    lacking_seeds,
    open_edge,
)
from lrlab.study.plan import SCHEDULE_NAMES, Budget, factor_label, study_schedules
from lrlab.study.recommend import Recommendation, recommend
from lrlab.study.summary import lr_free_family

if TYPE_CHECKING:
    from lrlab.training.tasks import Task

__all__ = [
    "ESTIMATOR_SCHEDULES",
    "MIN_STEPS",
    "NEIGHBOUR_ROUNDS",
    "Setup",
    "StudyEvent",
    "StudyFailed",
    "bracket_first_rung",
    "configurations",
    "estimator_plan",
    "family_optima_of",
    "family_plans",
    "first_rung_plans",
    "more_seeds",
    "neighbour_seeds",
    "parse_key",
]


@dataclass(frozen=True)
class StudyEvent:
    """A phase of the study for a ``progress`` callback: ``phase`` is ``"plan"`` (first:
    ``total`` is every step of the plan, one per range test and one per run), ``"finder"``,
    ``"sweep"``, ``"no-range-test"`` (an LR estimator: its runs start without one), ``"grid"``
    (a task without a range test: ``detail`` is its LRs in one line), ``"bracket"`` (a round
    of bracketing; ``total`` is the plan's updated total), ``"seeds"``, ``"report"`` or
    ``"done"``; ``detail`` says which optimizer or what is done."""

    phase: str
    detail: str
    index: int
    total: int


@dataclass(frozen=True)
class Setup:
    """What every phase of one study shares: the task, built once, and ``ref``, the name its
    runs store (``RunConfig.task``); the study's name, budget and run length; the store,
    how runs train (``run_plans``'s options) and the progress callback."""

    ref: str
    task: Task
    name: str
    plan: Budget
    epochs: int
    batch_size: int
    total_steps: int
    store: Store
    execution: dict[str, Any]
    report: Callable[[Any], None]
    fingerprint: dict[str, Any] | None = None  # the task's (stored with its range tests)
    stale: frozenset[str] = frozenset()  # ids of stored range tests a fresh study replaces
    families: tuple[str, ...] = SCHEDULE_NAMES  # the schedule families of the first rung
    options: dict[str, Any] = field(default_factory=dict)  # the task's options, in every run's config

    def train(self, plans: list[Any], sweep: str, described: dict[str, Any]) -> list[RunRecord]:
        """Train ``plans`` as the sweep ``sweep``, every run on the study's task object."""
        from lrlab.sweeps import run_plans

        return run_plans(plans, self.store, sweep, described, task=self.task, **self.execution)


class StudyFailed(RuntimeError):
    """The study cannot give a trustworthy answer (every run diverged, a range test that
    could not suggest an LR, too few steps); the message is one line and says what to try.
    Everything trained so far stays in the store."""


MIN_STEPS = 6  # three whole cycles of the cyclic schedules need at least 2 x 3 steps


def family_plans(
    setup: Setup,
    grid: Grid,
    lr: float,
    families: Sequence[str],
    seed: int,
    sweep: str,
    schedule_names: dict[Schedule, str],
) -> list[Any]:
    """The runs of ``families`` at the grid point ``lr`` (``grid.anchor`` times a factor; the
    cyclic bounds scale by the same factor) for ``seed``, in the sweep ``sweep``."""
    from lrlab.sweeps import RunPlan
    from lrlab.training.resolve import plateau_metric

    factor = lr / grid.anchor
    named = study_schedules(lr, grid.base_lr * factor, grid.max_lr * factor, setup.total_steps,
                            families=setup.families, epochs=setup.epochs,
                            higher_is_better=plateau_metric(setup.task)[1])  # fmt: skip
    if lr_free_family(grid.optimizer) == "schedule-free":  # it replaces the schedule: a constant LR only
        named = {"constant": named["constant"]}
    named = {name: schedule for name, schedule in named.items() if name in families}
    schedule_names.update({v: k for k, v in named.items()})
    plans = []
    for schedule in named.values():
        config = RunConfig(task=setup.ref, task_options=setup.options, lr=lr, optimizer=grid.optimizer,
                           schedule=schedule, seed=seed, epochs=setup.epochs, batch_size=setup.batch_size)  # fmt: skip
        if not has_range_test(
            setup.task
        ):  # its loss may be any number (a negative return): only NaN/inf diverge
            config = replace(config, divergence_factor=None)
        plans.append(RunPlan.of(sweep, config))
    return plans


def first_rung_plans(
    setup: Setup, grid: Grid, schedule_names: dict[Schedule, str]
) -> list[tuple[str, list[Any], dict[str, Any]]]:
    """The first rung for ``grid.optimizer``: one sweep per LR factor, the study's schedule
    families (nine by default), the first seed."""
    seed = setup.plan.seeds[0]
    task, epochs, batch_size = setup.ref, setup.epochs, setup.batch_size
    out = []
    for factor in grid.factors:
        lr = grid.anchor * factor
        sweep = f"{setup.name}-{optimizer_key(grid.optimizer)}" + (
            "" if factor == 1.0 else f"-{factor_label(factor)}"
        )
        plans = family_plans(setup, grid, lr, setup.families, seed, sweep, schedule_names)
        described = {
            "name": sweep, "task": task, "epochs": epochs, "batch_size": batch_size, "seeds": [seed],
            "grid": {"lr": [lr], "optimizer": [grid.optimizer], "schedule": [str(p.config.schedule) for p in plans]},
        }  # fmt: skip
        out.append((sweep, plans, described))
    return out


ESTIMATOR_SCHEDULES = ("constant", "cosine")
"""The schedules an LR estimator (Prodigy, D-Adaptation) trains with, at lr=1: its authors
recommend cosine; constant is the estimate alone."""


def estimator_plan(
    setup: Setup, spec: str, schedule_names: dict[Schedule, str]
) -> tuple[str, list[Any], dict[str, Any]]:
    """The first rung of an LR estimator: no range test, lr = ``RUN_LR`` (1.0, a multiplier on
    its own estimate) with a constant and a cosine schedule, the first seed."""
    from lrlab.sweeps import RunPlan

    lr = RUN_LR.get(parse_key(spec)) or 1.0
    named = {"constant": constant(lr), "cosine": cosine(lr, total_steps=setup.total_steps)}
    schedule_names.update({v: k for k, v in named.items()})
    seed = setup.plan.seeds[0]
    sweep = f"{setup.name}-{optimizer_key(spec)}"
    plans = [
        RunPlan.of(sweep, RunConfig(task=setup.ref, task_options=setup.options, lr=lr, optimizer=spec,
                                    schedule=schedule, seed=seed, epochs=setup.epochs, batch_size=setup.batch_size))
        for schedule in named.values()
    ]  # fmt: skip
    described = {
        "name": sweep, "task": setup.ref, "epochs": setup.epochs, "batch_size": setup.batch_size, "seeds": [seed],
        "grid": {"lr": [lr], "optimizer": [spec], "schedule": [str(s) for s in named.values()]},
    }  # fmt: skip
    return sweep, plans, described


def parse_key(spec: str) -> str:
    """The grammar name of an optimizer spec (``"prodigy(d_coef=2)"`` -> ``"prodigy"``)."""
    from lrlab.optim.grammar import parse_optimizer

    return parse_optimizer(spec)[0]


def configurations(spec: str, plan: Budget, families: Sequence[str] = SCHEDULE_NAMES) -> int:
    """How many configurations the first rung trains for ``spec``."""
    family = lr_free_family(spec)
    if family == "estimator":
        return len(ESTIMATOR_SCHEDULES)
    return len(plan.lr_factors) * (1 if family == "schedule-free" else len(families))


def bracket_first_rung(
    setup: Setup,
    grids: dict[str, Grid],
    first: list[RunRecord],
    schedule_names: dict[Schedule, str],
    total: Callable[[int], int],
) -> tuple[Bracketing, list[str], list[RunRecord]]:
    """Extend each family whose best LR is at the edge of the first rung, one LR per round
    (:func:`~lrlab.study.bracketing.bracket_rounds`): each round one sweep of the first seed.
    ``total(extra)`` is the plan's total after ``extra`` bracketing runs (for the progress)."""
    seed = setup.plan.seeds[0]
    runs = list(first)
    sweeps: list[str] = []

    def table() -> dict[Any, Any]:
        return family_losses(runs, setup.store.epochs_for([r.id for r in runs]), schedule_names, list(grids))

    def train_round(index: int, wanted: dict[tuple[str, str], float]) -> None:
        sweep = f"{setup.name}-bracket{index}"
        plans = [plan for (spec, family), lr in wanted.items()
                 for plan in family_plans(setup, grids[spec], lr, [family], seed, sweep, schedule_names)]  # fmt: skip
        setup.report(StudyEvent("bracket", f"bracketing round {index}: {len(plans)} family(ies) one LR further out",
                                index, total(len(runs) - len(first) + len(plans))))  # fmt: skip
        described = {
            "name": sweep, "task": setup.ref, "epochs": setup.epochs, "batch_size": setup.batch_size, "seeds": [seed],
            "bracketing": [{"optimizer": p.config.optimizer, "lr": p.config.lr, "schedule": str(p.config.schedule)}
                           for p in plans],
        }  # fmt: skip
        runs.extend(setup.train(plans, sweep, described))
        sweeps.append(sweep)

    done = bracket_rounds(table, train_round, seed, MAX_EXTRA)
    return done, sweeps, runs[len(first) :]


def more_seeds(
    setup: Setup, chosen: list[RunRecord], prefix: str = "seed", what: str = "finalists"
) -> tuple[list[str], list[RunRecord]]:
    """The configurations of ``chosen`` (first-seed runs) with every further seed of the
    budget: one sweep per seed (``<study>-<prefix><seed>``), so every run's batches come
    from its own seed."""
    from lrlab.sweeps import RunPlan

    seeds = setup.plan.seeds
    if len(seeds) > 1 and chosen:
        setup.report(
            StudyEvent("seeds", f"{len(chosen)} {what} x {len(seeds) - 1} more seeds", 0, len(chosen))
        )
    sweeps: list[str] = []
    runs: list[RunRecord] = []
    for seed in seeds[1:] if chosen else ():
        sweep = f"{setup.name}-{prefix}{seed}"
        plans = [RunPlan.of(sweep, replace(r.config, seed=seed)) for r in chosen]
        described = {
            "name": sweep, "task": setup.ref, "epochs": setup.epochs, "batch_size": setup.batch_size,
            "seeds": [seed], what: [r.configuration for r in chosen],
        }  # fmt: skip
        runs += setup.train(plans, sweep, described)
        sweeps.append(sweep)
    return sweeps, runs


NEIGHBOUR_ROUNDS = 3
"""How many times the recommendation's bracket neighbours may move (a neighbour trained with
every seed that turns out best brings its own neighbours in)."""


def neighbour_seeds(
    setup: Setup,
    runs: list[RunRecord],
    names: dict[Schedule, str],
    grids: dict[str, Grid],
    finalists: list[str],
) -> tuple[Recommendation, list[str], list[RunRecord], list[str]]:
    """The recommendation, after its family's bracket neighbours (the LRs tried next to it and
    next to the family's best mean over seeds: :func:`~lrlab.study.bracketing.lacking_seeds`)
    trained with every seed too, so that its optimum's interval is bootstrapped over seeds.
    A neighbour trained with every seed is a finalist like the others: should it score best,
    it is the recommendation and its own neighbours follow (at most :data:`NEIGHBOUR_ROUNDS`).
    Returns the recommendation, the new sweeps and runs, and the finalists' keys."""
    sweeps: list[str] = []
    added: list[RunRecord] = []
    seeds = setup.plan.seeds
    for _ in range(NEIGHBOUR_ROUNDS + 1):
        epochs = setup.store.epochs_for([r.id for r in runs + added])
        rec = recommend_finalists(runs + added, epochs, names, finalists)
        best = rec.best
        if best.optimizer not in grids or len(seeds) < 2 or _ == NEIGHBOUR_ROUNDS:
            break
        table = family_losses(runs + added, epochs, names, [best.optimizer]).get(
            (best.optimizer, best.schedule_name), {}
        )
        lacking = lacking_seeds(table, best.lr, seeds)
        chosen = [r for r in runs if r.config.optimizer == best.optimizer and r.config.lr in lacking
                  and r.config.seed == seeds[0] and names.get(r.config.schedule) == best.schedule_name]  # fmt: skip
        if chosen:
            more_sweeps, more_runs = more_seeds(setup, chosen, "bracket-seed", "neighbours")
            finalists = finalists + [r.configuration for r in chosen]
        else:  # the best over every seed is at the edge of what was tried: one LR further, every seed
            beyond = open_edge(table, seeds) if len(table) - len(setup.plan.lr_factors) < MAX_EXTRA else None
            if beyond is None:
                break
            more_sweeps, more_runs = _every_seed(
                setup, grids[best.optimizer], beyond, best.schedule_name, names
            )
            finalists = finalists + [r.configuration for r in more_runs[:1]]
        sweeps += [s for s in more_sweeps if s not in sweeps]
        added += more_runs
    return rec, sweeps, added, finalists


def _every_seed(
    setup: Setup, grid: Grid, lr: float, family: str, names: dict[Schedule, str]
) -> tuple[list[str], list[RunRecord]]:
    """One family at one new LR with every seed of the budget (one sweep per seed)."""
    sweeps, runs = [], []
    setup.report(
        StudyEvent(
            "seeds", f"{grid.optimizer} + {family} at lr={lr:.3g} x {len(setup.plan.seeds)} seeds", 0, 1
        )
    )
    for seed in setup.plan.seeds:
        sweep = f"{setup.name}-bracket-seed{seed}"
        plans = family_plans(setup, grid, lr, [family], seed, sweep, names)
        described = {
            "name": sweep, "task": setup.ref, "epochs": setup.epochs, "batch_size": setup.batch_size,
            "seeds": [seed], "beyond": [p.config.key() for p in plans],
        }  # fmt: skip
        runs += setup.train(plans, sweep, described)
        sweeps.append(sweep)
    return sweeps, runs


def recommend_finalists(
    runs: list[RunRecord], epochs: Any, names: dict[Schedule, str], finalists: list[str]
) -> Recommendation:
    try:
        return recommend(runs, epochs, names, finalists=finalists, break_ties=True)
    except ValueError as exc:
        raise StudyFailed(f"{exc}; try another optimizer or --budget large (LRs ten times smaller)") from None


def family_optima_of(
    setup: Setup,
    runs: list[RunRecord],
    names: dict[Schedule, str],
    grids: dict[str, Grid],
    rec: Recommendation,
    bracketing: Bracketing,
) -> tuple[FamilyOptimum, ...]:
    """Each family's optimum (:func:`~lrlab.study.bracketing.family_optima`), the recommendation's first."""
    table = family_losses(runs, setup.store.epochs_for([r.id for r in runs]), names, list(grids))
    schedules: dict[tuple[str, str], dict[float, Schedule]] = {}
    for run in runs:
        key = (run.config.optimizer, names.get(run.config.schedule, ""))
        if key in table:
            schedules.setdefault(key, {})[run.config.lr] = run.config.schedule
    best = (rec.best.optimizer, rec.best.schedule_name)
    first = setup.plan.lr_factors
    extra = {key: max(0, len(by_lr) - len(first)) for key, by_lr in table.items()}
    failed = failed_lrs(runs, names, list(grids))
    return tuple(family_optima(table, schedules, setup.total_steps, setup.plan.seeds,
                               best if best in table else None, extra, failed))  # fmt: skip
