"""The study brackets each schedule family's optimum LR, and fits it as an interval.

The first rung trains every family at the budget's LR factors (x1/3, x1, x3 a range test's
LR). Where a family's best LR is the smallest or the largest of those (and the next one out
did not diverge), its optimum may lie beyond: the study trains that family one LR further
out, by the grid's own factor, in rounds (every family that needs one in one sweep per
round, stacked as the first rung), until a worse LR lies on both sides of the best, the
next one out diverges, or :data:`MAX_EXTRA` more LRs were spent on it
(:func:`lrlab.core.bracket.next_lrs`). Each family's optimum is then the vertex of a
fit in log LR (:func:`lrlab.core.bracket.fit_optimum`): over every seed for the
recommendation's family (its neighbours train with every seed), over the first seed, with
the grid's resolution as its interval, for the others.

A task without a range test (``task.range_test`` false: a user's training loop) anchors its
grid on the geometric centre of ``task.lr_range`` (or :data:`DEFAULT_ANCHORS` when it has
none) and spans that range with as many LRs as the budget has factors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lrlab.core.bracket import LEVEL, Optimum, fit_optimum, grid_factor, mean_losses, next_lrs
from lrlab.core.ranking import final_metric, higher_is_better, objective
from lrlab.core.records import EpochRecord, FinderRecord, RunRecord, RunStatus
from lrlab.core.verdict import FamilyOptimum
from lrlab.schedules import Schedule
from lrlab.schedules.summary import key_points

__all__ = [
    "DEFAULT_ANCHORS",
    "MAX_EXTRA",
    "Bracketing",
    "Grid",
    "bracket_rounds",
    "failed_lrs",
    "family_losses",
    "family_optima",
    "grid_from_finder",
    "grid_without_range_test",
    "has_range_test",
    "lacking_seeds",
    "neighbours",
    "next_round",
    "open_edge",
]

MAX_EXTRA = 2
"""The most LRs the study adds to one optimizer x schedule family beyond the budget's
factors: its stated extra budget (at most ``2 x families`` runs per optimizer, one seed)."""

DEFAULT_ANCHORS = {"adam-like": 1e-3, "sgd-like": 1e-2}
"""Where a task without a range test (and without ``lr_range``) centres its grid: 1e-3 for
adaptive optimizers (Adam, AdamW, RMSprop, Adagrad...), 1e-2 for SGD-like ones."""

SGD_LIKE = ("sgd", "sgdm", "nesterov", "schedulefree_sgd")

Key = tuple[str, str]  # (optimizer spec, schedule family)


@dataclass(frozen=True)
class Grid:
    """One optimizer's LR grid: ``anchor`` (the LR the budget's ``factors`` multiply), the
    cyclic bounds at factor 1, and where the anchor came from, in words (``source``)."""

    optimizer: str
    anchor: float
    base_lr: float
    max_lr: float
    factors: tuple[float, ...]
    source: str = "range test"

    def lrs(self) -> list[float]:
        return [self.anchor * f for f in self.factors]

    def words(self) -> str:
        """The grid in one line, for a task without a range test."""
        trained = ", ".join(f"{lr:.3g}" for lr in self.lrs())
        return f"{self.optimizer}: the task has no range test; study LRs {trained} ({self.source})"


def has_range_test(task: Any) -> bool:
    """Whether the study runs a range test for ``task`` (``task.range_test``, default True)."""
    return bool(getattr(task, "range_test", True))


def grid_from_finder(spec: str, finder: FinderRecord, anchor: float, factors: Sequence[float]) -> Grid:
    """The grid of an optimizer with a range test: its recommended LR times the budget's
    factors, the cyclic families between the curve's bounds (or a factor of 4 around it)."""
    base, peak = finder.base_lr, finder.max_lr
    if not (base and peak and math.isfinite(base) and math.isfinite(peak)):
        base, peak = anchor / 2, anchor * 2  # Smith: cycle over a factor of 3-4
    return Grid(spec, anchor, float(base), float(peak), tuple(factors))


def grid_without_range_test(spec: str, lr_range: Any, factors: Sequence[float]) -> Grid:
    """The grid of a task without a range test: centred on the geometric centre of
    ``lr_range`` and spanning it end to end with ``len(factors)`` LRs, or, without a range,
    :data:`DEFAULT_ANCHORS` times the budget's factors. Cyclic families cycle over a
    factor of 4 around each LR. ``ValueError`` for a range that is not ``(low, high)`` with
    ``0 < low < high``."""
    if lr_range is None:
        family = "sgd-like" if spec.split("(")[0].strip().lower() in SGD_LIKE else "adam-like"
        anchor = DEFAULT_ANCHORS[family]
        source = f"no lr_range: the budget's factors around {anchor:g}, the default for {family} optimizers"
        return Grid(spec, anchor, anchor / 2, anchor * 2, tuple(factors), source)
    low, high = _lr_range(lr_range)
    anchor = math.sqrt(low * high)
    n = len(factors)
    spread = [(high / low) ** (i / (n - 1) - 0.5) for i in range(n)] if n > 1 else [1.0]
    source = f"{n} LRs spanning its lr_range {low:g}..{high:g}"
    return Grid(spec, anchor, anchor / 2, anchor * 2, tuple(spread), source)


def _lr_range(lr_range: Any) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in lr_range)
    except (TypeError, ValueError):
        raise ValueError(f"lr_range must be (low, high) with 0 < low < high, got {lr_range!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and 0 < low < high):
        raise ValueError(f"lr_range must be (low, high) with 0 < low < high, got {lr_range!r}")
    return low, high


# ------------------------------------------------------------------ losses per family


def family_losses(
    runs: Sequence[RunRecord],
    epochs: Mapping[str, Sequence[EpochRecord]],
    names: Mapping[Schedule, str],
    optimizers: Sequence[str],
) -> dict[Key, dict[float, dict[int, float]]]:
    """``{(optimizer, family): {lr: {seed: loss}}}`` for the runs of ``optimizers``: the
    study's objective at the last epoch, negated when higher is better (so lower is
    better), NaN for a run that diverged or failed (a trial function that raised or timed
    out at an LR closes the bracket on that side as a diverged run does: the study never
    extends toward LRs it cannot train). Runs still queued or running, and finished runs
    that report nothing, are left out."""
    metric = objective(runs, epochs)
    sign = -1.0 if higher_is_better(runs, metric) else 1.0
    wanted = set(optimizers)
    out: dict[Key, dict[float, dict[int, float]]] = {}
    for run in runs:
        if run.config.optimizer not in wanted or run.config.schedule not in names:
            continue
        if run.status in (RunStatus.DIVERGED, RunStatus.FAILED):
            value = math.nan
        elif run.status is RunStatus.DONE:
            found = final_metric(epochs.get(run.id, ()), metric)
            if found is None:
                continue
            value = sign * found
        else:
            continue
        key = (run.config.optimizer, names[run.config.schedule])
        out.setdefault(key, {}).setdefault(run.config.lr, {})[int(run.config.seed)] = value
    return out


def failed_lrs(
    runs: Sequence[RunRecord], names: Mapping[Schedule, str], optimizers: Sequence[str]
) -> dict[Key, set[float]]:
    """``{(optimizer, family): {lr, ...}}``: the config LRs at which a run of ``optimizers``
    failed, so that the words of a bracket closed by them say "failed", not "diverged"."""
    wanted = set(optimizers)
    out: dict[Key, set[float]] = {}
    for run in runs:
        if run.status is RunStatus.FAILED and run.config.optimizer in wanted and run.config.schedule in names:
            out.setdefault((run.config.optimizer, names[run.config.schedule]), set()).add(run.config.lr)
    return out


def _first_seed(
    table: Mapping[float, Mapping[int, float]], seed: int
) -> tuple[list[float], list[list[float]]]:
    lrs = sorted(lr for lr, by_seed in table.items() if seed in by_seed)
    return lrs, [[table[lr][seed]] for lr in lrs]


def next_round(
    table: Mapping[Key, Mapping[float, Mapping[int, float]]],
    spent: Mapping[Key, int],
    seed: int,
    max_extra: int = MAX_EXTRA,
) -> dict[Key, float]:
    """The one LR each family trains next (on ``seed``) to bracket its optimum, for the
    families that still have extra budget (``spent`` of ``max_extra``) and need one."""
    out: dict[Key, float] = {}
    for key, by_lr in table.items():
        if spent.get(key, 0) >= max_extra:
            continue
        lrs, losses = _first_seed(by_lr, seed)
        if not lrs:
            continue
        wanted = [lr for lr in next_lrs(lrs, losses) if lr not in by_lr]
        if wanted:
            out[key] = wanted[0]  # one LR at a time: the other side waits for the next round
    return out


def at_edge(table: Mapping[Key, Mapping[float, Mapping[int, float]]], seed: int) -> list[Key]:
    """The families whose best LR (on ``seed``) is at the edge of what was tried."""
    out = []
    for key, by_lr in table.items():
        lrs, losses = _first_seed(by_lr, seed)
        if lrs and next_lrs(lrs, losses):
            out.append(key)
    return out


@dataclass(frozen=True)
class Bracketing:
    """What the bracketing did: how many families it looked at, how many had their best LR
    at the edge of the budget's factors before it and after it, the runs it trained in how
    many rounds, and its stated budget (``max_extra`` LRs per family)."""

    families: int
    edge_before: int
    edge_after: int
    extra_runs: int
    rounds: int
    max_extra: int = MAX_EXTRA
    unbracketed: tuple[Key, ...] = ()

    def words(self) -> str:
        """The bracketing in one line."""
        head = (
            f"bracketing: {self.edge_before} of {self.families} optimizer x schedule families had their best LR at "
            f"the edge of the budget's LRs"
        )
        if not self.edge_before:
            return head + "; none needed more"
        text = (
            f"{head}; {self.extra_runs} more run(s) in {self.rounds} round(s) (at most {self.max_extra} more LRs "
            f"per family, one seed) bracketed {self.edge_before - self.edge_after} of them on that seed"
        )
        if self.edge_after:
            text += f"; {self.edge_after} still at the edge when the extra budget ran out"
        return text


def bracket_rounds(
    table_of: Callable[[], dict[Key, dict[float, dict[int, float]]]],
    train_round: Callable[[int, dict[Key, float]], None],
    seed: int,
    max_extra: int = MAX_EXTRA,
) -> Bracketing:
    """Extend the families at the edge, one LR each per round, until none needs one or
    the extra budget is spent. ``table_of()`` reads the families' losses (after each round);
    ``train_round(round, {family: lr})`` trains that round's runs in one sweep."""
    table = table_of()
    before = at_edge(table, seed)
    spent: dict[Key, int] = {}
    rounds = runs = 0
    while True:
        wanted = next_round(table, spent, seed, max_extra)
        if not wanted:
            break
        rounds += 1
        train_round(rounds, wanted)
        runs += len(wanted)
        for key in wanted:
            spent[key] = spent.get(key, 0) + 1
        table = table_of()
    after = at_edge(table, seed)
    return Bracketing(len(table), len(before), len(after), runs, rounds, max_extra, tuple(after))


# ------------------------------------------------------------------ the optima


def neighbours(table: Mapping[float, Mapping[int, float]], lr: float) -> list[float]:
    """The LRs tried next to ``lr`` (one below, one above, where there is one)."""
    lrs = sorted(table)
    if lr not in table:
        return []
    i = lrs.index(lr)
    return [lrs[j] for j in (i - 1, i + 1) if 0 <= j < len(lrs)]


def _settled(by_seed: Mapping[int, float], seeds: Sequence[int]) -> bool:
    """Whether an LR's row is known for ``seeds``: every seed trained, or one diverged (the
    LR is worse than any that did not, whatever the other seeds would do)."""
    return all(s in by_seed for s in seeds) or any(math.isnan(v) for v in by_seed.values())


def _fit(
    table: Mapping[float, Mapping[int, float]], seeds: Sequence[int], peak_of: Mapping[float, float]
) -> Optimum:
    """The optimum over the LRs settled for ``seeds`` (columns in seed order; a seed that a
    diverged LR did not train is NaN, diverged like it)."""
    full = sorted(lr for lr, by_seed in table.items() if _settled(by_seed, seeds))
    rows = [[table[lr].get(s, math.nan) for s in seeds] for lr in full]
    return fit_optimum([peak_of[lr] for lr in full], rows, level=LEVEL)


def lacking_seeds(table: Mapping[float, Mapping[int, float]], lr: float, seeds: Sequence[int]) -> list[float]:
    """The LRs of a family that should train every seed for its optimum to be bracketed over
    seeds: the neighbours of ``lr`` (the recommended one) and of the best LR by the mean over
    ``seeds`` among those settled, that are not settled yet."""
    settled = {k: v for k, v in table.items() if _settled(v, seeds)}
    centres = {lr}
    if settled:
        lrs = sorted(settled)
        means = mean_losses([list(settled[k].values()) for k in lrs])  # inf where a seed diverged
        best = min(range(len(lrs)), key=lambda i: means[i])  # the smallest LR among equals
        if math.isfinite(means[best]):  # every settled LR diverged: no best to bracket yet
            centres.add(lrs[best])
    wanted = {n for centre in centres for n in neighbours(table, centre)}
    return sorted(n for n in wanted if not _settled(table[n], seeds))


def open_edge(table: Mapping[float, Mapping[int, float]], seeds: Sequence[int]) -> float | None:
    """The LR one grid step beyond the best of the LRs settled for ``seeds``, when that best
    is at their edge and nothing was tried beyond it (None otherwise): the family's
    bracket over every seed needs it."""
    settled = sorted(lr for lr, by_seed in table.items() if _settled(by_seed, seeds))
    if not settled:
        return None
    rows = [[table[lr].get(s, math.nan) for s in seeds] for lr in settled]
    wanted = next_lrs(settled, rows, factor=grid_factor(sorted(table)))
    tol = 1e-9  # a step of the grid's own factor lands on a tried LR up to rounding
    beyond = [lr for lr in wanted if lr < min(table) * (1 - tol) or lr > max(table) * (1 + tol)]
    return beyond[0] if beyond else None


def family_optima(
    table: Mapping[Key, Mapping[float, Mapping[int, float]]],
    schedules: Mapping[Key, Mapping[float, Schedule]],
    total_steps: int,
    seeds: Sequence[int],
    recommended: Key | None,
    extra: Mapping[Key, int],
    failed: Mapping[Key, set[float]] | None = None,
) -> list[FamilyOptimum]:
    """Each family's optimum peak LR (the recommendation's first): over every seed of the
    budget for ``recommended`` (the LRs that trained them all), over the first seed for the
    others. ``schedules[key][lr]`` is the schedule a family trained at config LR ``lr``;
    ``failed[key]`` the config LRs where a run failed (:func:`failed_lrs`), named so in the
    words of a bracket they close."""
    keys = sorted(table, key=lambda k: (k != recommended, k))
    out = []
    for key in keys:
        by_lr = table[key]
        peak_of = {lr: key_points(schedules[key][lr], total_steps).peak for lr in by_lr}
        mine = key == recommended and len(seeds) > 1
        optimum = None
        if mine:
            full = [lr for lr, by_seed in by_lr.items() if all(s in by_seed for s in seeds)]
            optimum = _fit(by_lr, seeds, peak_of) if full else None
        if optimum is None:
            mine = False
            optimum = _fit(by_lr, seeds[:1], peak_of)
        tried = tuple(sorted(peak_of.values()))
        broken = frozenset(peak_of[lr] for lr in (failed or {}).get(key, ()) if lr in peak_of)
        out.append(
            _record(
                key, optimum, key == recommended, len(seeds) if mine else 1, extra.get(key, 0), tried, broken
            )
        )
    return out


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _record(
    key: Key,
    optimum: Optimum,
    recommended: bool,
    seeds: int,
    extra: int,
    tried: tuple[float, ...],
    failed: frozenset[float] = frozenset(),
) -> FamilyOptimum:
    text = optimum_words(key, optimum, seeds, extra, failed)
    reason = _failed_reason(optimum, failed)
    return FamilyOptimum(
        optimizer=key[0], schedule=key[1], lr=_finite(optimum.lr), low=_finite(optimum.low),
        high=_finite(optimum.high), level=optimum.level, bracketed=optimum.bracketed, edge=optimum.edge,
        best_lr=_finite(optimum.best_lr), seeds=seeds, tried=tried, extra=extra,
        recommended=recommended, reason=reason, text=text,
    )  # fmt: skip


def _failed_reason(optimum: Optimum, failed: frozenset[float]) -> str:
    """The fit's reason, with the neighbours that failed (not diverged) named as such."""
    if not failed:
        return optimum.reason
    if not math.isfinite(optimum.best_lr):
        return f"every LR tried diverged or failed ({optimum.lrs[0]:.3g}..{optimum.lrs[-1]:.3g})"
    closed = [lr for lr in _around(optimum) if lr in failed] if optimum.bracketed else []
    if not closed:
        return optimum.reason
    return f"{optimum.reason}; the run(s) at {', '.join(f'{lr:.3g}' for lr in closed)} failed"


def optimum_words(
    key: Key, optimum: Optimum, seeds: int, extra: int, failed: frozenset[float] = frozenset()
) -> str:
    """A family's optimum in one line: the interval and how it was found, or why it is open.
    ``failed`` are the peak LRs whose runs failed: a bracket they close says so."""
    name = f"{key[0]} + {key[1]}"
    level = f"{optimum.level:.0%}"
    if not math.isfinite(optimum.best_lr):
        what = "diverged or failed" if failed else "diverged"
        return f"{name}: every LR tried {what} ({optimum.lrs[0]:.3g}..{optimum.lrs[-1]:.3g}); try smaller LRs"
    if optimum.bracketed:
        how = (
            f"{seeds} seeds, bootstrapped" if seeds > 1 else "one seed: the interval is the grid's resolution"
        )
        return (
            f"{name}: peak LR {optimum.lr:.3g} ({level} interval {optimum.low:.3g}-{optimum.high:.3g}; "
            f"{how}; bracketed by {_neighbours(optimum, failed)})"
        )
    side = {"high": ("largest", "higher"), "low": ("smallest", "lower")}.get(optimum.edge or "")
    if side is None:
        return f"{name}: {optimum.reason}"
    spent = f"the extra budget ran out ({extra} more LR(s) tried)" if extra else "no extra LR was tried"
    among = "of the LRs trained with every seed, " if seeds > 1 else ""
    return (
        f"{name}: {among}the best LR was the {side[0]} tried ({optimum.best_lr:.3g}) and {spent}: the optimum "
        f"may lie {side[1]}"
    )


def _around(optimum: Optimum) -> tuple[float, float]:
    """The LRs tried on each side of the best one (of a bracketed optimum)."""
    i = optimum.lrs.index(optimum.best_lr)
    return optimum.lrs[i - 1], optimum.lrs[i + 1]


def _neighbours(optimum: Optimum, failed: frozenset[float] = frozenset()) -> str:
    def one(lr: float) -> str:
        return f"{lr:.3g} (failed)" if lr in failed else f"{lr:.3g}"

    low, high = _around(optimum)
    return f"{one(low)} and {one(high)}"
