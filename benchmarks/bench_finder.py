"""Does the finder's default recommendation hold on work it was not tuned on?

33 task x optimizer pairs (``benchmarks/finder_tasks.py``, which also fixes the split into
a tuning set, two held-out sets and probe pairs, and says why), 3 seeds each:

1. reference: a grid of constant (peak) LRs, 3 per decade, each trained with every seed by
   the benchmark's short trainer (``finder_tasks.fit``); the grid best is the LR whose mean
   score over seeds is best (the grid is widened while its best sits at an edge);
2. per seed, ``find_lr``'s range test (1e-7..10, 100 steps) on that seed's model and loader,
   and the confirmation step's held-back losses for a ladder of candidates (the range
   test's minimum over 2, 3, 5, ..., 300, each trained 40 steps, scored after 10, 20, 40);
   torch-lr-finder's suggestion on the same model and loader;
3. the default method is chosen on the tuning set only: three families (a divisor of the
   minimum per optimizer family; the same with separate divisors for regression losses,
   fitted on the tuning set's regression pairs only; a confirmation among a few ladder
   candidates, with its step budget), each fitted leave-one-task-out inside the tuning set
   and scored on the left-out task, scores read off each seed's grid (interpolated in log
   LR); a family replaces a simpler one only where its leave-one-task-out score is better
   (a tie goes to the simpler, then the cheaper), and the winner is fitted on the whole
   tuning set;
4. ``find_lr`` at its defaults (which must be that choice; the script says so if not) and
   torch-lr-finder's suggestion are then *trained* on every pair and seed; regret is
   against the grid best: accuracy points, nats per token, or % of the validation MSE;
5. the bound: per pair, the best any method of the two families that read a seed's own
   range-test curve could do (a multiple of its minimum, a confirmation among the ladder),
   each chosen for that pair alone on its own grid, next to the grid best's seed noise.

Run: ``python -m benchmarks.bench_finder`` (resumable: everything trained is cached in
``lrlab-runs/bench_finder/cache.json``; a second run only writes the report).
``--pairs NAME ...`` restricts it (``--no-write`` prints without writing the docs).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

if __package__ in (None, ""):  # run as `python benchmarks/bench_finder.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import finder_tasks as ft
from benchmarks._common import write_section

SEEDS = (0, 1, 2)
GRID_SGD = tuple(10.0 ** (k / 3) for k in range(-8, 2))  # 0.0022 .. 2.2
GRID_ADAPTIVE = tuple(10.0 ** (k / 3) for k in range(-12, -2))  # 1e-4 .. 0.1
GRID_LIMITS = (1e-6, 30.0)
LADDER = (2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 50.0, 100.0, 300.0)  # confirmation candidates: minimum / k
CHECKPOINTS = (10, 20, 40)
RULE_DIVISORS = (1.5, 2.0, 3.0, 4.0, 5.0, 7.0, 10.0, 15.0, 20.0, 30.0, 50.0, 70.0, 100.0, 150.0, 300.0)
BOUND_DIVISORS = tuple(10.0 ** (k / 20) for k in range(-10, 71))  # minimum x 3 .. minimum / 3000, for the bound
LONG_STEPS = 3000
REPEATS = 3  # find_lr(repeats=...) measured against one range test: spread over seeds, regret, cost
DIVERGED_SCORE = {"classification": 0.0, "language_model": 4.6, "regression": 2.0}  # for interpolation only


class Cache:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        self._dirty = 0

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def put(self, key: str, value: Any) -> None:
        self.data[key] = value
        self._dirty += 1
        if self._dirty >= 10:
            self.flush()

    def flush(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data))
        tmp.replace(self.path)
        self._dirty = 0

    def memo(self, key: str, compute: Any) -> Any:
        hit = self.get(key)
        if hit is None:
            hit = compute()
            self.put(key, hit)
        return hit


# --- measuring --------------------------------------------------------------------------


def trained(cache: Cache, pair: ft.Pair, lr: float, seed: int) -> dict[str, Any]:
    return cache.memo(f"fit|{pair.name}|{lr:.6g}|{seed}", lambda: ft.fit(pair, lr, seed))


def grid(cache: Cache, pair: ft.Pair) -> dict[float, list[float]]:
    """Score per grid LR and seed; widened by a third of a decade while the best is at an edge."""
    kind = pair.kind
    lrs = list(GRID_SGD if pair.sgd else GRID_ADAPTIVE)
    table: dict[float, list[float]] = {}
    while True:
        for lr in lrs:
            if lr not in table:
                table[lr] = [ft.score(trained(cache, pair, lr, s), kind) for s in SEEDS]
        best = _best_lr(table, kind)
        ordered = sorted(table)
        if best == ordered[0] and ordered[0] / 10 ** (1 / 3) >= GRID_LIMITS[0]:
            lrs = [ordered[0] / 10 ** (1 / 3)]
        elif best == ordered[-1] and ordered[-1] * 10 ** (1 / 3) <= GRID_LIMITS[1]:
            lrs = [ordered[-1] * 10 ** (1 / 3)]
        else:
            return dict(sorted(table.items()))


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if all(math.isfinite(v) for v in values) else math.inf


def _best_lr(table: dict[float, list[float]], kind: str) -> float:
    means = {lr: _mean(v) for lr, v in table.items()}
    if kind == "classification":
        return max(means, key=lambda lr: means[lr])
    return min(means, key=lambda lr: means[lr])


def curve(cache: Cache, pair: ft.Pair, seed: int) -> dict[str, Any]:
    """The range test of ``seed`` (no confirmation) and the confirmation ladder's losses."""

    def compute() -> dict[str, Any]:
        from lrlab.finder import find_lr
        from lrlab.finder.confirm import confirm_lrs

        task = ft.task_of(pair)
        model = task.make_model(seed)
        optimizer = ft.make_optimizer(pair, model, 1e-7)
        loader = task.train_loader(pair.batch_size, seed)
        result = find_lr(model, optimizer, task.loss_fn, loader, confirm=0)
        minimum = 10 * result.suggestions["minimum/10"]
        ladder = confirm_lrs(model, optimizer, task.loss_fn, loader, [minimum / k for k in LADDER],
                             steps=CHECKPOINTS[-1], checkpoints=CHECKPOINTS)  # fmt: skip
        return {
            "minimum": minimum,
            "suggestions": result.suggestions,
            "problem": result.problem,
            "range_seconds": result.seconds,
            "iterations": len(result),
            "ladder": ladder.losses,
            "ladder_seconds": ladder.seconds,
        }

    return cache.memo(f"curve|{pair.name}|{seed}", compute)


def torch_lr_finder(cache: Cache, pair: ft.Pair, seed: int) -> dict[str, Any]:
    """torch-lr-finder's range test (1e-7..10, 100 steps) and its steepest-gradient suggestion."""

    def compute() -> dict[str, Any]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from torch_lr_finder import LRFinder

        task = ft.task_of(pair)
        model = task.make_model(seed)
        finder = LRFinder(model, ft.make_optimizer(pair, model, 1e-7), task.loss_fn, device="cpu")
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            finder.range_test(task.train_loader(pair.batch_size, seed), start_lr=1e-7, end_lr=10, num_iter=100)
            seconds = time.perf_counter() - started
            try:
                _ax, lr = finder.plot(suggest_lr=True)
            except (ValueError, IndexError):
                lr = float("nan")
        plt.close("all")
        return {"lr": float(lr) if lr is not None else float("nan"), "seconds": seconds}

    return cache.memo(f"tlf|{pair.name}|{seed}", compute)


def library_default(cache: Cache, pair: ft.Pair, seed: int, signature: str) -> dict[str, Any]:
    """``find_lr`` exactly as a user calls it (its defaults), on this seed's model and loader."""

    def compute() -> dict[str, Any]:
        from lrlab.finder import find_lr

        task = ft.task_of(pair)
        model = task.make_model(seed)
        started = time.perf_counter()
        result = find_lr(model, ft.make_optimizer(pair, model, 1e-7), task.loss_fn,
                         task.train_loader(pair.batch_size, seed))  # fmt: skip
        return {
            "lr": result.lr,
            "rule": result.rule,
            "problem": result.problem,
            "reason": result.reason,
            "seconds": time.perf_counter() - started,
        }

    return cache.memo(f"default|{signature}|{pair.name}|{seed}", compute)


def repeated(cache: Cache, pair: ft.Pair, seed: int, signature: str) -> dict[str, Any]:
    """``find_lr(..., repeats=REPEATS)`` on this seed's model and loader (otherwise its defaults),
    timed against one test run just before it, in the same conditions."""

    def compute() -> dict[str, Any]:
        from lrlab.finder import find_lr

        task = ft.task_of(pair)
        seconds = []
        for repeats in (1, REPEATS):
            model = task.make_model(seed)
            started = time.perf_counter()
            result = find_lr(model, ft.make_optimizer(pair, model, 1e-7), task.loss_fn,
                             task.train_loader(pair.batch_size, seed), repeats=repeats)  # fmt: skip
            seconds.append(time.perf_counter() - started)
        return {"lr": result.lr, "problem": result.problem, "seconds": seconds[1], "single_seconds": seconds[0]}

    return cache.memo(f"repeats{REPEATS}|{signature}|{pair.name}|{seed}", compute)


def default_signature() -> str:
    """What ``find_lr``'s default is today (so a cached answer is redone when it changes)."""
    from lrlab.finder import suggest

    return json.dumps([suggest.DEFAULT_RULE_SGD, suggest.DEFAULT_RULE, suggest.DEFAULT_CONFIRM_STEPS,
                       suggest.CONFIRM_DIVISORS_SGD, suggest.CONFIRM_DIVISORS_ADAPTIVE])  # fmt: skip


# --- methods, read off the grid -----------------------------------------------------------


def estimate(table: dict[float, list[float]], seed_index: int, lr: float, kind: str) -> tuple[float, bool]:
    """A seed's score at ``lr``, interpolated in log10(LR) between its grid runs (clamped at
    the edges), and whether the nearest grid run at or above it diverged."""
    xs = np.log10(list(table))
    ys = np.array([v[seed_index] for v in table.values()], dtype=np.float64)
    dead = ~np.isfinite(ys) if kind != "classification" else np.array([v[seed_index] == 0.0 for v in table.values()])
    ys[dead] = DIVERGED_SCORE[kind]
    x = math.log10(lr)
    # At or above (within a sixth of a decade of) the lowest LR that diverged counts as diverged.
    diverged = bool(dead.any() and x >= float(xs[dead].min()) - 1 / 6)
    return float(np.interp(x, xs, ys)), diverged


def method_lrs(pair_data: dict[str, Any], method: tuple) -> list[float]:
    """The LR a method recommends for each seed of a pair.

    ``method`` is ``(family, sgd, adaptive)`` or, with separate parameters for regression
    losses, ``(family, sgd, adaptive, regression sgd, regression adaptive)``."""
    name, sgd_param, adaptive_param = method[:3]
    if len(method) == 5 and pair_data["kind"] == "regression":
        sgd_param, adaptive_param = method[3:]
    param = sgd_param if pair_data["sgd"] else adaptive_param
    out = []
    for c in pair_data["curves"]:
        if name == "rule":
            out.append(c["minimum"] / param)
        else:
            indices, checkpoint = param
            column = CHECKPOINTS.index(checkpoint)
            losses = [c["ladder"][i][column] for i in indices]
            from lrlab.finder.suggest import confirm_pick

            lrs = [c["minimum"] / LADDER[i] for i in indices]
            pick = confirm_pick(lrs, losses)
            out.append(pick if pick is not None else min(lrs))
    return out


def pair_cost(pair_data: dict[str, Any], lrs: list[float]) -> tuple[int, float]:
    """(diverged seeds, regret in units of the bar, capped at 10) of LRs read off the grid."""
    kind = pair_data["kind"]
    estimates = [estimate(pair_data["grid"], i, lr, kind) for i, lr in enumerate(lrs)]
    mean = float(np.mean([e[0] for e in estimates]))
    regret = ft.regret(mean, pair_data["best"], kind) / ft.BAR[kind]
    return sum(e[1] for e in estimates), min(regret, 10.0)


def cost(pairs: list[dict[str, Any]], method: tuple) -> tuple[int, int, float]:
    """(diverged seeds, pairs over the bar, mean regret in bars): lower is better, in order."""
    results = [pair_cost(p, method_lrs(p, method)) for p in pairs]
    if not results:
        return (0, 0, 0.0)
    return (sum(r[0] for r in results), sum(r[1] > 1.0 for r in results), float(np.mean([r[1] for r in results])))


def _confirm_params() -> list[tuple[tuple[int, ...], int]]:
    sets: list[tuple[int, ...]] = []
    n = len(LADDER)
    for width in (2, 3, 4):
        sets += [tuple(range(i, i + width)) for i in range(n - width + 1)]
    for width in (2, 3):
        sets += [tuple(range(i, i + 2 * width - 1, 2)) for i in range(n - 2 * width + 2)]
    return [(s, c) for s in sets for c in CHECKPOINTS]


REGRESSION_RULE = "rule, separate for regression"  # the rule family with separate divisors for regression losses
# In order of simplicity and cost: a later family replaces an earlier one only when better.
FAMILIES: dict[str, list[Any]] = {"rule": list(RULE_DIVISORS), REGRESSION_RULE: list(RULE_DIVISORS),
                                  "confirm": _confirm_params()}  # fmt: skip


def _fit_params(pairs: list[dict[str, Any]], family: str) -> list[Any]:
    """The family's best (SGD, adaptive) parameters on ``pairs``, each optimizer family
    fitted on its own pairs."""
    name = "rule" if family == REGRESSION_RULE else family
    chosen = []
    for sgd in (True, False):
        subset = [p for p in pairs if p["sgd"] == sgd]
        candidates = FAMILIES[family]
        scored = [(cost(subset, (name, c, c)), i) for i, c in enumerate(candidates)]
        chosen.append(candidates[min(scored)[1]])
    return chosen


def fit_family(pairs: list[dict[str, Any]], family: str) -> tuple:
    """The family's best parameters on ``pairs``, SGD and adaptive pairs fitted separately;
    for ``REGRESSION_RULE`` the regression pairs' divisors are fitted on the regression
    pairs only and the others' on the rest."""
    if family != REGRESSION_RULE:
        return (family, *_fit_params(pairs, family))
    others = _fit_params([p for p in pairs if p["kind"] != "regression"], family)
    regression = _fit_params([p for p in pairs if p["kind"] == "regression"], family)
    return ("rule", *others, *regression)


def better(challenger: tuple[int, int, float], incumbent: tuple[int, int, float]) -> bool:
    """Whether a leave-one-task-out cost beats another: fewer diverged seeds, then fewer pairs
    over the bar, then a mean regret lower by more than 0.05 bar."""
    return challenger[:2] < incumbent[:2] or (challenger[:2] == incumbent[:2] and challenger[2] < incumbent[2] - 0.05)


def leave_one_task_out(tuning: list[dict[str, Any]], family: str) -> dict[str, Any]:
    per_pair: dict[str, tuple[int, float]] = {}
    fitted: dict[str, tuple] = {}
    for group in sorted({p["group"] for p in tuning}):
        train = [p for p in tuning if p["group"] != group]
        method = fit_family(train, family)
        fitted[group] = method
        for p in tuning:
            if p["group"] == group:
                per_pair[p["name"]] = pair_cost(p, method_lrs(p, method))
    values = list(per_pair.values())
    total = (sum(v[0] for v in values), sum(v[1] > 1.0 for v in values), float(np.mean([v[1] for v in values])))
    return {"per_pair": per_pair, "fitted": fitted, "cost": total}


def describe(method: tuple) -> str:
    name, sgd, adaptive = method[:3]
    if name == "rule":
        text = f"minimum/{sgd:g} for SGD, minimum/{adaptive:g} for adaptive optimizers"
        if len(method) == 5:
            text += f"; for regression losses minimum/{method[3]:g} for SGD, minimum/{method[4]:g} for adaptive ones"
        return text

    def part(param: tuple) -> str:
        indices, steps = param
        return f"best of minimum/{{{', '.join(f'{LADDER[i]:g}' for i in indices)}}} after {steps} steps"

    return f"confirmation: SGD {part(sgd)}; adaptive {part(adaptive)}"


def optimizer_class(pair: ft.Pair) -> str:
    return type(ft.make_optimizer(pair, ft.task_of(pair).make_model(0), 1e-3)).__name__


def check_measured_low(pairs: list[dict[str, Any]], progress: Any) -> None:
    """``find_lr``'s reason quotes how far below the grid best its default lay for the
    optimizers it was not fitted on (``suggest.MEASURED_LOW``, from the pairs outside the
    tuning set): say so if that has moved."""
    from lrlab.finder.suggest import MEASURED_LOW

    for name, quoted in MEASURED_LOW.items():
        ratios = [p["best_lr"] / float(geo(p["default_lrs"])) for p in pairs
                  if p["optimizer_class"] == name and p["split"] != "tuning"]  # fmt: skip
        if ratios and tuple(float(f"{r:.2g}") for r in (min(ratios), max(ratios))) != tuple(quoted):
            progress(f"WARNING {name}: the default lies {min(ratios):.2g}x to {max(ratios):.2g}x below the grid "
                     f"best, suggest.MEASURED_LOW says {quoted}")  # fmt: skip


def repeats_lines(pairs: list[dict[str, Any]]) -> list[str]:
    """One range test per seed (the default) against the mean curve of ``REPEATS`` of them."""
    lines = [
        f"**{REPEATS} range tests per seed** (`find_lr(..., repeats={REPEATS})`: the rules read the mean of "
        f"{REPEATS} loss curves, each on the next 100 steps' batches), against one (the default). Spread of the "
        "recommendation over the 3 seeds (median / max over pairs, decades), pairs whose spread is at most 0.15 "
        "decade, pairs within the bar (regret estimated from each seed's grid, as for the leave-one-task-out "
        f"table) and `find_lr`'s time over one test's, run just before it (median over pairs and seeds):",
        "",
        "| split | spread, 1 test | spread, " + f"{REPEATS} tests | at most 0.15 decade, 1 / {REPEATS} | "
        f"within the bar (estimated), 1 / {REPEATS} | time, {REPEATS} tests over 1 |",
        "|---|---|---|---|---|---|",
    ]
    for split in splits(pairs):
        subset = [p for p in pairs if p["split"] == split]
        one = [ft.log_spread(p["default_lrs"]) for p in subset]
        many = [ft.log_spread([r["lr"] for r in p["repeated"]]) for p in subset]
        within = [sum(pair_cost(p, lrs)[1] <= 1.0 and pair_cost(p, lrs)[0] == 0 for p in subset for lrs in
                      [[r["lr"] for r in p["repeated"]] if k else p["default_lrs"]]) for k in (0, 1)]  # fmt: skip
        time_ratio = statistics.median(r["seconds"] / r["single_seconds"] for p in subset for r in p["repeated"])
        lines.append(
            f"| {split} | {statistics.median(one):.2f} / {max(one):.2f} | {statistics.median(many):.2f} / "
            f"{max(many):.2f} | {sum(v <= 0.15 for v in one)} / {sum(v <= 0.15 for v in many)} of {len(subset)} | "
            f"{within[0]} / {within[1]} of {len(subset)} | {time_ratio:.1f}x |"
        )
    return lines


# --- the bound ----------------------------------------------------------------------------


def splits(pairs: list[dict[str, Any]]) -> list[str]:
    return [s for s in ft.SPLITS if any(p["split"] == s for p in pairs)]


def pair_bound(p: dict[str, Any]) -> dict[str, Any]:
    """What a method that reads each seed's own range-test curve could reach on this pair at
    best: a constant multiple of the curve's minimum (from 3x down to a 3,000th, 1/20 decade apart), and the confirmation among ladder candidates,
    each chosen for this pair alone on its own grid (in-sample, so an upper bound); the seed
    noise of the grid best (standard error of its mean over seeds) and the regret one grid
    step (a third of a decade) either side of it, all in bars."""
    kind = p["kind"]
    rule = min((pair_cost(p, method_lrs(p, ("rule", k, k))), k) for k in BOUND_DIVISORS)
    confirm = min((pair_cost(p, method_lrs(p, ("confirm", c, c))), i) for i, c in enumerate(FAMILIES["confirm"]))
    best = [v for v in p["grid"][p["best_lr"]]]
    noise = float(np.std(best, ddof=1) / math.sqrt(len(best)))
    if kind == "regression":
        noise = 100.0 * noise / p["best"]
    ordered = sorted(p["grid"])
    at = ordered.index(p["best_lr"])
    steps = []
    for j in (at - 1, at + 1):
        if 0 <= j < len(ordered):
            steps.append(min(ft.regret(_mean(p["grid"][ordered[j]]), p["best"], kind) / ft.BAR[kind], 99.0))
    return {
        "rule": rule[0], "divisor": rule[1], "confirm": confirm[0], "noise": noise / ft.BAR[kind], "steps": steps,
        "reachable": (rule[0][0] == 0 and rule[0][1] <= 1.0) or (confirm[0][0] == 0 and confirm[0][1] <= 1.0),
    }  # fmt: skip


def bound_lines(pairs: list[dict[str, Any]]) -> list[str]:
    lines = [
        "**The bound: what a method reading each seed's range-test curve could reach.** For every pair, the "
        "constant multiple of each seed's curve minimum (3x to a 3,000th) and the confirmation among the ladder's candidates (minimum/2 to "
        "minimum/300, 10 to 40 steps) that do best *on that pair's own grid*: fitted on the very numbers they are "
        "scored on, no method of either family can do better. Regret in bars, read off each seed's grid as "
        "above (capped at 10; a diverged seed counts as over the bar). Seed noise: the standard error of the "
        "grid best's mean over its 3 seeds, in bars. A grid step: the regret of the grid LRs a third of a "
        "decade below / above the best (99: diverged).",
        "",
        "| split | pair | default regret | best multiple of the minimum for this pair alone | best confirmation for this pair "
        "alone | seed noise of the grid best | a grid step below / above |",
        "|---|---|---|---|---|---|---|",
    ]
    summary = []
    for split in splits(pairs):
        subset = [p for p in pairs if p["split"] == split]
        reachable = 0
        for p in subset:
            b = pair_bound(p)
            reachable += b["reachable"]
            default = p["default_regret"] / ft.BAR[p["kind"]]
            rule_d, rule_r = b["rule"]
            conf_d, conf_r = b["confirm"]
            lines.append(
                f"| {split} | {p['name']} | {min(default, 99.0):.2f} | {rule_r:.2f} (minimum/{b['divisor']:.3g}"
                f"{f', {rule_d} diverged' if rule_d else ''}) | {conf_r:.2f}{f' ({conf_d} diverged)' if conf_d else ''}"
                f" | {b['noise']:.2f} | {' / '.join(f'{v:.1f}' for v in b['steps'])} |"
            )
        target = f"; 90 % would need {math.ceil(0.9 * len(subset))}/{len(subset)}" if split.startswith("held-out") else ""
        summary.append(f"- {split}: at most {reachable}/{len(subset)} pairs within the bar for any such method "
                       f"({reachable / len(subset):.0%}{target})")  # fmt: skip
    return [*lines, "", *summary]


# --- the report -------------------------------------------------------------------------


def gather(cache: Cache, pair: ft.Pair, progress: Any) -> dict[str, Any]:
    table = grid(cache, pair)
    kind = pair.kind
    best_lr = _best_lr(table, kind)
    curves = [curve(cache, pair, s) for s in SEEDS]
    tlf = [torch_lr_finder(cache, pair, s) for s in SEEDS]
    progress(f"{pair.name}: grid best {best_lr:.3g}")
    return {
        "name": pair.name, "group": pair.group, "split": pair.split, "kind": kind, "sgd": pair.sgd,
        "optimizer": pair.optimizer, "optimizer_class": optimizer_class(pair), "grid": table, "best_lr": best_lr, "best": _mean(table[best_lr]),
        "curves": curves, "tlf": tlf, "steps": ft.steps_of(pair), "pair": pair,
    }  # fmt: skip


def evaluate(cache: Cache, p: dict[str, Any], signature: str) -> None:
    """Train find_lr's default and torch-lr-finder's suggestion for every seed."""
    pair = p["pair"]
    p["default"] = [library_default(cache, pair, s, signature) for s in SEEDS]
    for key, lrs in (("default", [d["lr"] for d in p["default"]]), ("tlf", [t["lr"] for t in p["tlf"]])):
        runs = [trained(cache, pair, lr, s) if math.isfinite(lr) else None for lr, s in zip(lrs, SEEDS)]
        scores = [ft.score(r, p["kind"]) if r else ft.score({"status": "diverged"}, p["kind"]) for r in runs]
        p[f"{key}_lrs"] = lrs
        p[f"{key}_scores"] = scores
        p[f"{key}_diverged"] = sum(r is None or r["status"] != "done" for r in runs)
        p[f"{key}_regret"] = ft.regret(_mean(scores) if p["kind"] != "classification" else float(np.mean(scores)),
                                       p["best"], p["kind"])  # fmt: skip
    sign = 1.0 if p["kind"] == "classification" else -1.0
    diffs = []
    for ours, theirs in zip(p["default_scores"], p["tlf_scores"]):
        if p["kind"] == "regression" and math.isfinite(ours) and math.isfinite(theirs):
            diffs.append(100.0 * (ours - theirs) / p["best"])
        elif math.isfinite(ours) and math.isfinite(theirs):
            diffs.append(sign * (theirs - ours) if p["kind"] == "classification" else ours - theirs)
        else:
            diffs.append(math.inf if not math.isfinite(ours) else -math.inf)
    p["paired"] = diffs  # how much worse the default is than torch-lr-finder, per seed (in the pair's unit)
    run_seconds = statistics.median(trained(cache, pair, p["best_lr"], s)["seconds"] for s in SEEDS)
    p["finder_ratio"] = statistics.median(d["seconds"] for d in p["default"]) / run_seconds
    p["repeated"] = [repeated(cache, pair, s, signature) for s in SEEDS]
    p["tlf_ratio"] = statistics.median(t["seconds"] for t in p["tlf"]) / run_seconds


def paired_verdict(diffs: list[float], unit: str) -> tuple[str, bool]:
    """The mean paired difference (default worse than torch-lr-finder by ...) and whether it
    is beyond seed noise (more than two standard errors above zero)."""
    if not all(math.isfinite(d) for d in diffs):
        worse = any(d == math.inf for d in diffs)
        return ("default diverged where torch-lr-finder did not" if worse else "torch-lr-finder diverged"), worse
    mean = float(np.mean(diffs))
    error = float(np.std(diffs, ddof=1) / math.sqrt(len(diffs)))
    beyond = mean > 2 * error and mean > 0
    return f"{mean:+.3g} ± {error:.2g} {unit}", beyond


def fmt_score(value: float, kind: str) -> str:
    if not math.isfinite(value):
        return "diverged"
    return f"{value:.1f}%" if kind == "classification" else f"{value:.3f}" if kind == "language_model" else f"{value:.4f}"


def fmt_regret(value: float, kind: str) -> str:
    if not math.isfinite(value):
        return "diverged"
    return f"{value:+.2f} {ft.UNIT[kind]}" if kind != "language_model" else f"{value:+.3f} nats"


def geo(lrs: list[float]) -> str:
    finite = [v for v in lrs if math.isfinite(v) and v > 0]
    return f"{math.exp(np.mean(np.log(finite))):.3g}" if finite else "-"


def timing(cache: Cache, signature: str) -> dict[str, Any]:
    """find_lr's default against one run of chars-transformer at LONG_STEPS steps, seed 0."""
    pair = ft.pair_by_name("chars-transformer adam")

    def compute() -> dict[str, Any]:
        from lrlab.finder import find_lr

        task = ft.task_of(pair)
        model = task.make_model(0)
        started = time.perf_counter()
        result = find_lr(model, ft.make_optimizer(pair, model, 1e-7), task.loss_fn,
                         task.train_loader(pair.batch_size, 0))  # fmt: skip
        finder = time.perf_counter() - started
        run = ft.fit(pair, result.lr, 0, steps=LONG_STEPS)
        return {"finder_seconds": finder, "run_seconds": run["seconds"], "run_status": run["status"], "lr": result.lr}

    return cache.memo(f"long|{signature}|{LONG_STEPS}", compute)


def report(pairs: list[dict[str, Any]], selection: dict[str, Any], long: dict[str, Any], wall: float) -> str:
    chosen = selection["chosen"]
    lines = [
        "## Finder: the default recommendation on tuning and held-out work (`benchmarks/bench_finder.py`)",
        "",
        f"{len(pairs)} task x optimizer pairs (`benchmarks/finder_tasks.py`), 3 seeds each. Reference: a grid of "
        "constant (peak) LRs, 3 per decade, each trained with every seed; the grid best is the LR with the best "
        "mean over seeds. Score: validation accuracy (classification), validation loss in nats per character "
        "(language models) or validation MSE (regression) after the pair's short run (100-380 steps). Regret: "
        "points below / nats above / % MSE above the grid best; bar: 1 point, 0.02 nats, 5 %. The split into "
        "tuning and held-out pairs is fixed in `finder_tasks.py` (the held-out pairs are the kinds of work the "
        "tuning set lacks; a second held-out set, of other optimizers and tasks, was added once the first had "
        "been looked at several times, and nothing was chosen after it; the probe pairs, RMSprop and Adagrad "
        "on tuning tasks, measure how far off the adaptive rule is for them and are never used to choose). The default was chosen on the tuning "
        "pairs only, leave-one-task-out; then `find_lr` "
        "at its defaults and torch-lr-finder 0.2.2's suggestion were trained on every pair and seed. "
        "`vs torch-lr-finder`: how much worse the default is, mean ± standard error of the per-seed paired "
        "difference (a positive mean beyond two standard errors is beyond seed noise). Spread: max - min of "
        "log10(LR) over the 3 seeds. Finder / run: `find_lr`'s wall time at its defaults over one run at the "
        "grid-best LR (medians over seeds).",
        "",
        f"**Chosen default:** {describe(chosen)}.",
        "",
        "Leave-one-task-out on the tuning set (each task's pairs scored by the method fitted on the other "
        "tasks; estimated from each seed's grid, interpolated in log LR; diverged seeds / pairs over the bar / "
        "mean regret in units of the bar):",
        "",
        "| method family | diverged seeds | pairs over the bar | mean regret (bars) | fitted on all tuning pairs |",
        "|---|---|---|---|---|",
    ]
    for family, result in selection["loto"].items():
        d, over, mean = result["cost"]
        lines.append(f"| {family} | {d} | {over}/{len(result['per_pair'])} | {mean:.2f} | "
                     f"{describe(selection['fitted'][family])} |")  # fmt: skip
    regression = [p for p in pairs if p["split"] == "tuning" and p["kind"] == "regression"]
    if regression:
        lines += ["", "Regression tuning pairs, leave-one-task-out (regret in bars, as estimated from the grid; "
                  "the LR each method gives, geometric mean over seeds):", "",
                  "| pair | grid best LR | " + " | ".join(selection["loto"]) + " |",
                  "|---|---|" + "---|" * len(selection["loto"])]  # fmt: skip
        for p in regression:
            cells = []
            for result in selection["loto"].values():
                lrs = method_lrs(p, result["fitted"][p["group"]])
                cells.append(f"{result['per_pair'][p['name']][1]:.2f} ({geo(lrs)})")
            lines.append(f"| {p['name']} | {p['best_lr']:.3g} | " + " | ".join(cells) + " |")
    head = ("| pair | grid best (LR) | default LR | default regret | diverged | spread (dec) | "
            "torch-lr-finder LR | its regret | vs torch-lr-finder | finder / run |")  # fmt: skip
    for split in splits(pairs):
        subset = [p for p in pairs if p["split"] == split]
        lines += ["", f"**{split.capitalize()} pairs** (trained):", "", head, "|---|---|---|---|---|---|---|---|---|---|"]
        for p in subset:
            kind = p["kind"]
            verdict, _ = paired_verdict(p["paired"], ft.UNIT[kind])
            lines.append(
                f"| {p['name']} | {fmt_score(p['best'], kind)} ({p['best_lr']:.3g}) | {geo(p['default_lrs'])} | "
                f"{fmt_regret(p['default_regret'], kind)} | {p['default_diverged']}/3 | "
                f"{ft.log_spread(p['default_lrs']):.2f} | {geo(p['tlf_lrs'])} | {fmt_regret(p['tlf_regret'], kind)} | "
                f"{verdict} | {p['finder_ratio']:.0%} |"
            )
    lines += ["", *summary_lines(pairs, long), "", *repeats_lines(pairs), "", *bound_lines(pairs), "",
              f"Wall time of this invocation: {wall / 60:.1f} min (cached runs are not re-trained)."]  # fmt: skip
    return "\n".join(lines)


def summary_lines(pairs: list[dict[str, Any]], long: dict[str, Any]) -> list[str]:
    out = []
    for split in splits(pairs):
        subset = [p for p in pairs if p["split"] == split]
        within = [p for p in subset if p["default_regret"] <= ft.BAR[p["kind"]]]
        missed = [p for p in subset if p not in within]
        worse = [p for p in subset if paired_verdict(p["paired"], ft.UNIT[p["kind"]])[1]]
        diverged = sum(p["default_diverged"] for p in subset)
        spreads = [ft.log_spread(p["default_lrs"]) for p in subset]
        missed_text = [f"{p['name']} {fmt_regret(p['default_regret'], p['kind'])}" for p in missed]
        out += [
            f"- {split}: within the bar on {len(within)}/{len(subset)} pairs"
            + (f" (missed: {', '.join(missed_text)})" if missed else "")
            + f"; worse than torch-lr-finder beyond seed noise on {len(worse)}/{len(subset)}"
            + (f" ({', '.join(p['name'] for p in worse)})" if worse else "")
            + f"; diverged seeds at the default: {diverged}/{3 * len(subset)}; spread over seeds: median "
            f"{statistics.median(spreads):.2f} decade, max {max(spreads):.2f}, "
            f"{sum(s <= 0.15 for s in spreads)}/{len(subset)} pairs at most 0.15"
        ]  # fmt: skip
    ratios = [p["finder_ratio"] for p in pairs]
    out.append(
        f"- cost: `find_lr` at its defaults is {min(ratios):.0%}-{max(ratios):.0%} of one of these short runs "
        f"(median {statistics.median(ratios):.0%}); against one chars-transformer run of {LONG_STEPS:,} steps "
        f"(seed 0, at the LR it recommended: {long['lr']:.3g}, {long['run_status']}) it took "
        f"{long['finder_seconds']:.1f} s of {long['run_seconds']:.0f} s, "
        f"{long['finder_seconds'] / long['run_seconds']:.1%}."
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="*", default=[p.name for p in ft.PAIRS])
    parser.add_argument("--cache", type=Path, default=Path("lrlab-runs/bench_finder/cache.json"))
    parser.add_argument("--no-write", action="store_true", help="print the section, do not write docs")
    parser.add_argument("--select-only", action="store_true", help="stop after choosing the default")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cache = Cache(args.cache)
    started = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    try:
        pairs = [gather(cache, ft.pair_by_name(name), progress) for name in args.pairs]
        tuning = [p for p in pairs if p["split"] == "tuning"]
        selection: dict[str, Any] = {"loto": {}, "fitted": {}}
        for family in FAMILIES:
            selection["loto"][family] = leave_one_task_out(tuning, family)
            selection["fitted"][family] = fit_family(tuning, family)
            progress(f"{family}: leave-one-task-out {selection['loto'][family]['cost']}, "
                     f"fitted {describe(selection['fitted'][family])}")  # fmt: skip
        winner = "rule"
        for family in FAMILIES:
            if better(selection["loto"][family]["cost"], selection["loto"][winner]["cost"]):
                winner = family
        selection["winner"] = winner
        selection["chosen"] = selection["fitted"][winner]
        progress(f"chosen: {describe(selection['chosen'])}")
        if args.select_only:
            return
        signature = default_signature()
        for p in pairs:
            evaluate(cache, p, signature)
            simulated = method_lrs(p, selection["chosen"])
            if any(not math.isclose(a, b, rel_tol=1e-6) for a, b in zip(simulated, p["default_lrs"])):
                progress(f"WARNING {p['name']}: find_lr's default {p['default_lrs']} is not the chosen {simulated}")
            progress(f"{p['name']}: default regret {p['default_regret']:+.3g}, tlf {p['tlf_regret']:+.3g}")
        check_measured_low(pairs, progress)
        long = timing(cache, signature)
    finally:
        cache.flush()
    text = report(pairs, selection, long, time.perf_counter() - started)
    if not args.no_write:
        write_section("finder", text)
    print(text)


if __name__ == "__main__":
    main()
