"""Is the finder's suggestion any good? Measured against grid search, side by side with
torch-lr-finder (the quality bar: within 1 point / 0.02 nats of the grid's best).

For each task and optimizer:

1. reference: a grid of constant LRs, 3 per decade over 1e-5..10 (19 values), each trained
   with 3 seeds by the real recording loop (``lrlab.training.loop.train_run``);
2. for each seed, ``lrlab.find_lr`` (defaults: 1e-7..10, 100 iterations) on that seed's
   model and loader gives every rule's suggestion; ``halving_search`` runs the article's
   search; torch-lr-finder (``LRFinder.range_test`` + its ``plot(suggest_lr=True)``
   steepest-gradient suggestion) runs on the same model and loader;
3. each suggestion is trained with its seed; the score is the mean over seeds of the final
   validation accuracy (classification) or validation loss in nats per token (language
   models); a diverged run scores accuracy 0 / loss +inf;
4. regret = grid best - rule (accuracy points) or rule - grid best (nats).

The finder's wall time is compared with one full training run of the same task.

Run: ``python -m benchmarks.bench_finder`` (all of it; resumable: finished runs are cached
in ``--cache``), or e.g. ``--tasks digits-mlp --optimizers adam --seeds 1`` for a taste.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

if __package__ in (None, ""):  # run as `python benchmarks/bench_finder.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import write_section

GRID = [10.0 ** (k / 3) for k in range(-15, 4)]  # 1e-5 .. 10, 3 per decade
TASKS = ("digits-linear", "digits-mlp", "digits-cnn", "chars-lstm", "chars-transformer")
OPTIMIZERS = ("sgd(momentum=0.9)", "adam")
RULES = ("steepest", "valley", "minimum/10", "minimum/3", "minimum/30", "halving", "torch-lr-finder")
# "default" is find_lr's recommendation: minimum/3 for SGD, minimum/30 for Adam.
COLUMNS = ("default", *RULES)
BAR = {"classification": 1.0, "language_model": 0.02}  # accuracy points / nats


def run_key(task: str, optimizer: str, lr: float, seed: int, epochs: int) -> str:
    return f"{task}|{optimizer}|{lr:.6g}|{seed}|{epochs}"


class Cache:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def put(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data))
        tmp.replace(self.path)


def train(cache: Cache, store: Any, task: str, optimizer: str, lr: float, seed: int, epochs: int) -> dict:
    """One real training run at constant ``lr``; cached."""
    from lrlab.store.records import RunConfig
    from lrlab.training.loop import train_run

    key = run_key(task, optimizer, lr, seed, epochs)
    hit = cache.get(key)
    if hit is not None:
        return hit
    config = {"task": task, "optimizer": optimizer, "lr": lr, "seed": seed, "epochs": epochs}
    started = time.perf_counter()
    record = train_run(RunConfig.from_dict(config), store, key)
    seconds = time.perf_counter() - started
    last = store.epochs(key)
    out = {
        "status": record.status,
        "seconds": seconds,
        "val_loss": last[-1].val_loss if last and record.status == "done" else None,
        "val_accuracy": last[-1].val_accuracy if last and record.status == "done" else None,
    }
    cache.put(key, out)
    return out


def score(run: dict, kind: str) -> float:
    if kind == "classification":
        return 100.0 * run["val_accuracy"] if run["val_accuracy"] is not None else 0.0
    return run["val_loss"] if run["val_loss"] is not None and math.isfinite(run["val_loss"]) else math.inf


def run_finders(task: Any, optimizer: str, seed: int, loader: Any) -> tuple[Any, float, Any, float]:
    """``find_lr`` and ``halving_search`` at their defaults, each on a fresh model of
    ``seed``: their results and wall times."""
    from lrlab.finder import find_lr, halving_search
    from lrlab.optim.grammar import make_optimizer

    model = task.make_model(seed)
    started = time.perf_counter()
    result = find_lr(model, make_optimizer(optimizer, model.parameters(), 1e-7), task.loss_fn, loader)
    finder_seconds = time.perf_counter() - started
    model = task.make_model(seed)
    started = time.perf_counter()
    halving = halving_search(model, make_optimizer(optimizer, model.parameters(), 1e-7), task.loss_fn, loader)
    return result, finder_seconds, halving, time.perf_counter() - started


def suggestions(cache: Cache, task_name: str, optimizer: str, seed: int) -> dict:
    """Every rule's suggestion for this seed, and the finders' wall times; cached."""
    key = f"suggest|{task_name}|{optimizer}|{seed}"
    hit = cache.get(key)
    if hit is not None:
        for divisor in (3, 30):
            if f"minimum/{divisor}" not in hit and "minimum/10" in hit:
                # Cached before these rules existed: all are the LR at the same minimum, divided.
                hit[f"minimum/{divisor}"] = hit["minimum/10"] * 10 / divisor
        return hit
    from lrlab.training.tasks import get_task

    task = get_task(task_name)
    loader = task.train_loader(task.default_batch_size, seed)
    result, finder_seconds, halving, halving_seconds = run_finders(task, optimizer, seed, loader)
    out: dict[str, Any] = {"lrlab_seconds": finder_seconds, "iterations": len(result)}
    out.update(result.suggestions)
    out["halving_seconds"] = halving_seconds
    out["halving"] = halving.lr if halving.lr is not None else float("nan")
    out["halving_trials"] = len(halving.trials)

    out["torch-lr-finder"], out["torch_lr_finder_seconds"] = torch_lr_finder(task, optimizer, seed, loader)
    cache.put(key, out)
    return out


def torch_lr_finder(task: Any, optimizer: str, seed: int, loader: Any) -> tuple[float, float]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torch_lr_finder import LRFinder

    from lrlab.optim.grammar import make_optimizer

    model = task.make_model(seed)
    finder = LRFinder(model, make_optimizer(optimizer, model.parameters(), 1e-7), task.loss_fn, device="cpu")
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        finder.range_test(loader, start_lr=1e-7, end_lr=10, num_iter=100)
        seconds = time.perf_counter() - started
        try:
            _ax, lr = finder.plot(suggest_lr=True)
        except (ValueError, IndexError):
            lr = float("nan")
    plt.close("all")
    return float(lr), seconds


def time_pair(cache: Cache, task_name: str, optimizer: str, lr: float, repeats: int, retime: bool) -> dict:
    """The finders' wall time against one full training run, measured side by side.

    Interleaved ``repeats`` times (so that load on the machine hits all alike): ``find_lr``
    and ``halving_search`` at their defaults, torch-lr-finder's range test (100
    iterations) and one ``train_run`` at the task's default epochs and ``lr``, seed 0.
    Ratios are medians over the repeats. Cached under ``time|task|optimizer``
    (``--retime`` measures again).
    """
    key = f"time|{task_name}|{optimizer}"
    hit = cache.get(key)
    if hit is not None and not retime:
        return hit
    import tempfile

    from lrlab.store.records import RunConfig
    from lrlab.store.sqlite import Store
    from lrlab.training.loop import train_run
    from lrlab.training.tasks import get_task

    task = get_task(task_name)
    loader = task.train_loader(task.default_batch_size, 0)
    finder, halving, tlf, run, iterations = [], [], [], [], 0
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "time.db")
        train_run(RunConfig(task=task_name, optimizer=optimizer, lr=lr), store, "warm")
        for rep in range(repeats):
            result, finder_seconds, _, halving_seconds = run_finders(task, optimizer, 0, loader)
            finder.append(finder_seconds)
            halving.append(halving_seconds)
            iterations = len(result)
            tlf.append(torch_lr_finder(task, optimizer, 0, loader)[1])
            started = time.perf_counter()
            train_run(RunConfig(task=task_name, optimizer=optimizer, lr=lr), store, f"run-{rep}")
            run.append(time.perf_counter() - started)
    out = {
        "finder_ratio": float(np.median([f / r for f, r in zip(finder, run)])),
        "halving_ratio": float(np.median([f / r for f, r in zip(halving, run)])),
        "tlf_ratio": float(np.median([f / r for f, r in zip(tlf, run)])),
        "run_seconds": float(np.median(run)),
        "finder_seconds": float(np.median(finder)),
        "iterations": iterations,
        "run_steps": task.default_epochs * len(loader),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    cache.put(key, out)
    return out


def default_rule_for(optimizer: str) -> str:
    """The rule behind ``find_lr``'s recommendation for an optimizer spec."""
    from lrlab.finder.range import is_sgd_family
    from lrlab.finder.suggest import default_rule
    from lrlab.optim.grammar import make_optimizer

    probe = make_optimizer(optimizer, [torch.zeros(1, requires_grad=True)], 1e-3)
    return default_rule(is_sgd_family(probe))[0]


def geo_mean(values: list[float]) -> float:
    finite = [v for v in values if v and math.isfinite(v) and v > 0]
    return float(np.exp(np.mean(np.log(finite)))) if finite else float("nan")


def evaluate_pair(
    cache: Cache, store: Any, task_name: str, optimizer: str, seeds: list[int], epochs: int
) -> dict:
    from lrlab.training.tasks import get_task

    kind = get_task(task_name).kind
    grid, per_seed = {}, {}
    for lr in GRID:
        runs = [train(cache, store, task_name, optimizer, lr, s, epochs) for s in seeds]
        per_seed[lr] = [score(r, kind) for r in runs]
        grid[lr] = float(np.mean(per_seed[lr]))
    pick = max if kind == "classification" else min
    best_lr = pick(grid, key=lambda lr: grid[lr])
    best = grid[best_lr]
    rules: dict[str, Any] = {}
    found = [suggestions(cache, task_name, optimizer, s) for s in seeds]
    for rule in RULES:
        lrs = [f.get(rule, float("nan")) for f in found]
        scores = [
            score(train(cache, store, task_name, optimizer, float(lr), s, epochs), kind)
            if lr is not None and math.isfinite(lr)
            else (0.0 if kind == "classification" else math.inf)
            for lr, s in zip(lrs, seeds)
        ]
        mean = float(np.mean(scores))
        regret = best - mean if kind == "classification" else mean - best
        rules[rule] = {"lrs": lrs, "lr": geo_mean(lrs), "score": mean, "regret": regret, "scores": scores}
    rules["default"] = rules[default_rule_for(optimizer)]
    return {
        "per_seed": per_seed,
        "minima": [10 * f["minimum/10"] for f in found],
        "task": task_name,
        "optimizer": optimizer,
        "kind": kind,
        "epochs": epochs,
        "grid": grid,
        "best_lr": best_lr,
        "best": best,
        "rules": rules,
    }


def _fmt_score(value: float, kind: str) -> str:
    if kind == "classification":
        return f"{value:.1f}%"
    return "diverged" if not math.isfinite(value) else f"{value:.3f}"


def _fmt_regret(value: float, kind: str) -> str:
    if not math.isfinite(value):
        return "diverged"
    return f"{value:+.2f} pt" if kind == "classification" else f"{value:+.3f} nats"


def summarise(
    pairs: list[dict], args: argparse.Namespace, wall: float, compute_minutes: float
) -> tuple[str, str]:
    lines = [
        "## Finder: suggestions against grid search (`benchmarks/bench_finder.py`)",
        "",
        f"Grid: 19 constant LRs (3 per decade, 1e-5..10) x {args.seeds} seeds per task and optimizer"
        + (
            f" ({args.lm_seeds} for the language models, to bound the time on 2 shared cores); "
            if args.lm_seeds != args.seeds
            else "; "
        )
        + "each rule's suggestion trained with the same seeds (one finder run per seed). "
        "Score: final validation accuracy (classification) or validation loss in nats/token "
        + (
            f"(language models, trained {args.lm_epochs} epoch(s) instead of their default 3), "
            if args.lm_epochs
            else "(language models), after the task's default epochs; "
        )
        + "regret: grid best minus rule (accuracy points) or rule minus grid best (nats); "
        "bar: 1 point / 0.02 nats. `torch-lr-finder` is torch-lr-finder 0.2.2's steepest-gradient "
        "suggestion on the same model and loader. Finder time: `find_lr` at its defaults (100 "
        "iterations, fewer when it stops at divergence), `halving_search` and torch-lr-finder's "
        "range test, each as a fraction of one full training run of the task (default epochs, "
        f"grid-best LR, seed 0), measured side by side (`torch.set_num_threads(1)`, median of "
        f"{args.time_repeats} interleaved repeats, on a machine doing nothing else); in "
        "parentheses the range test's iterations against the run's steps.",
        "",
        "| task | optimizer | grid best (LR) | "
        + " | ".join(f"{r} (LR) regret" for r in COLUMNS)
        + " | find_lr / run | halving / run | torch-lr-finder / run |",
        "|---|---|---|" + "---|" * len(COLUMNS) + "---|---|---|",
    ]
    for p in pairs:
        kind = p["kind"]
        cells = [f"{_fmt_regret(p['rules'][r]['regret'], kind)} ({p['rules'][r]['lr']:.2g})" for r in COLUMNS]
        lines.append(
            f"| {p['task']} | {p['optimizer']} | {_fmt_score(p['best'], kind)} ({p['best_lr']:.2g}) | "
            + " | ".join(cells)
            + f" | {p['time']['finder_ratio']:.0%} ({p['time']['iterations']} it / {p['time']['run_steps']} steps)"
            f" | {p['time']['halving_ratio']:.0%} | {p['time']['tlf_ratio']:.0%} |"
        )
    lines += ["", "Per rule over the measured task x optimizer pairs:", ""]
    lines += [
        "| rule | within bar | mean regret, classification (pt) | mean regret, LM (nats) | worst |",
        "|---|---|---|---|---|",
    ]
    ranking = []
    for r in COLUMNS:
        within = sum(p["rules"][r]["regret"] <= BAR[p["kind"]] for p in pairs)
        cls = [p["rules"][r]["regret"] for p in pairs if p["kind"] == "classification"]
        lm = [p["rules"][r]["regret"] for p in pairs if p["kind"] != "classification"]
        worst = max(pairs, key=lambda p, r=r: p["rules"][r]["regret"] / BAR[p["kind"]])
        cls_mean = f"{np.mean(cls):.2f}" if cls else "-"
        lm_mean = f"{np.mean(lm):.3f}" if lm else "-"
        lines.append(
            f"| {r} | {within}/{len(pairs)} | {cls_mean} | {lm_mean} | "
            f"{worst['task']} {worst['optimizer']}: {_fmt_regret(worst['rules'][r]['regret'], worst['kind'])} |"
        )
        normalised = [min(p["rules"][r]["regret"] / BAR[p["kind"]], 1e6) for p in pairs]
        ranking.append((-within, float(np.mean(normalised)), r))
    ranking.sort()
    best_rule = ranking[0][2]
    lines += [
        "",
        f"Best rule by this run (most pairs within the bar, then lowest mean regret in units of the bar): "
        f"**{best_rule}**. Compute spent (training runs and finders, cached runs included): "
        f"{compute_minutes:.0f} min; this invocation: {wall / 60:.0f} min.",
        "",
        *quality_bar(pairs),
        "",
        "How sensitive the divisor is: regret of `minimum / k` (points / nats; over the bar in bold), "
        "estimated by interpolating each seed's grid in log(LR) at its own suggestion, not trained:",
        "",
        *sensitivity(pairs),
    ]
    return "\n".join(lines), best_rule


DIVISORS = (2, 3, 4, 5, 10, 20, 30, 50)


def sensitivity(pairs: list[dict]) -> list[str]:
    """Regret of "minimum / k" for several k, *estimated* from the grid: each seed's score at
    its own suggestion, interpolated linearly in log(LR) between that seed's grid runs (a
    diverged grid run counts as 0% / 10 nats, so estimates next to divergence are rough)."""
    head = "| task | optimizer | " + " | ".join(f"min/{k}" for k in DIVISORS) + " |"
    lines = [head, "|---|---|" + "---|" * len(DIVISORS)]
    for p in pairs:
        kind, bar = p["kind"], BAR[p["kind"]]
        x = np.log10(GRID)
        curves = np.array([p["per_seed"][lr] for lr in GRID], dtype=np.float64).T  # seed x lr
        curves[~np.isfinite(curves)] = 10.0
        cells = []
        for k in DIVISORS:
            at = [float(np.interp(math.log10(m / k), x, c)) for m, c in zip(p["minima"], curves)]
            regret = p["best"] - np.mean(at) if kind == "classification" else np.mean(at) - p["best"]
            text = f"{regret:+.2f}" if kind == "classification" else f"{regret:+.3f}"
            cells.append(f"**{text}**" if regret > bar else text)
        lines.append(f"| {p['task']} | {p['optimizer']} | " + " | ".join(cells) + " |")
    return lines


def _paired(p: dict, rule: str) -> str:
    """How much worse ``rule`` is than torch-lr-finder, seed by seed: the mean paired
    difference and its standard error (each seed trains both suggestions on its own model)."""
    sign = 1.0 if p["kind"] == "classification" else -1.0
    ours = np.array(p["rules"][rule]["scores"], dtype=np.float64)
    theirs = np.array(p["rules"]["torch-lr-finder"]["scores"], dtype=np.float64)
    diff = sign * (theirs - ours)
    error = float(np.std(diff, ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else math.inf
    unit = "pt" if p["kind"] == "classification" else "nats"
    verdict = "within seed noise" if float(np.mean(diff)) <= 2 * error else "beyond seed noise"
    return f"paired over seeds {float(np.mean(diff)):+.3g} +- {error:.2g} {unit}, {verdict}"


def quality_bar(pairs: list[dict]) -> list[str]:
    """Issue 4's bar, checked for the default recommendation of ``find_lr``."""
    rule = "default"

    def name(p: dict) -> str:
        return f"{p['task']} {p['optimizer']}"

    missed = [p for p in pairs if p["rules"][rule]["regret"] > BAR[p["kind"]]]
    worse = [p for p in pairs if p["rules"][rule]["regret"] > p["rules"]["torch-lr-finder"]["regret"] + 1e-9]
    slow = [p for p in pairs if p["time"]["finder_ratio"] >= 0.10]
    miss_text = ", ".join(f"{name(p)} ({_fmt_regret(p['rules'][rule]['regret'], p['kind'])})" for p in missed)
    worse_text = ", ".join(
        f"{name(p)} ({_fmt_regret(p['rules'][rule]['regret'], p['kind'])} vs "
        f"{_fmt_regret(p['rules']['torch-lr-finder']['regret'], p['kind'])}; {_paired(p, rule)})"
        for p in worse
    )
    slow_text = ", ".join(f"{name(p)} ({p['time']['finder_ratio']:.0%})" for p in slow)
    return [
        "Quality bar for `find_lr`'s default recommendation (`minimum/3` for SGD, `minimum/30` for Adam):",
        "",
        f"- within 1 point / 0.02 nats of the grid best: {len(pairs) - len(missed)}/{len(pairs)} pairs"
        + (f"; missed on {miss_text}" if missed else ""),
        f"- no worse than torch-lr-finder: {len(pairs) - len(worse)}/{len(pairs)} pairs"
        + (f"; worse on {worse_text}" if worse else ""),
        f"- finder under 10% of one training run: {len(pairs) - len(slow)}/{len(pairs)} pairs"
        + (f"; over on {slow_text}" if slow else ""),
    ]


def compute(cache: Cache) -> float:
    """Minutes of training and finder time behind the numbers, from the cache."""
    seconds = 0.0
    for key, value in cache.data.items():
        if key.startswith("suggest|"):
            seconds += value["lrlab_seconds"] + value["halving_seconds"] + value["torch_lr_finder_seconds"]
        elif not key.startswith(("pair|", "time|")):
            seconds += value["seconds"]
    return seconds / 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="*", default=list(TASKS))
    parser.add_argument("--optimizers", nargs="*", default=list(OPTIMIZERS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--lm-epochs", type=int, default=None, help="epochs of the language models (default: the task's, 3)"
    )
    parser.add_argument("--time-repeats", type=int, default=3, help="repeats of the side-by-side timing")
    parser.add_argument("--retime", action="store_true", help="measure the finder/run times again")
    parser.add_argument("--lm-seeds", type=int, default=3, help="seeds for the language models (slow)")
    parser.add_argument("--cache", type=Path, default=Path("lrlab-runs/bench_finder/cache.json"))
    parser.add_argument("--no-write", action="store_true", help="print the section, do not write docs")
    args = parser.parse_args()

    from lrlab.store.sqlite import Store
    from lrlab.training.tasks import get_task

    torch.set_num_threads(1)
    cache = Cache(args.cache)
    store = Store(args.cache.parent / "runs.db")
    seeds = list(range(args.seeds))
    started = time.perf_counter()
    pairs = []
    for task_name in args.tasks:
        task = get_task(task_name)
        is_lm = task.kind == "language_model"
        epochs = args.lm_epochs if is_lm and args.lm_epochs else task.default_epochs
        for optimizer in args.optimizers:
            pair_seeds = list(range(args.lm_seeds)) if is_lm else seeds
            pair = evaluate_pair(cache, store, task_name, optimizer, pair_seeds, epochs)
            pair["time"] = time_pair(
                cache, task_name, optimizer, pair["best_lr"], args.time_repeats, args.retime
            )
            pairs.append(pair)
            cache.put(f"pair|{task_name}|{optimizer}", pair)
            text, best_rule = summarise(pairs, args, time.perf_counter() - started, compute(cache))
            print(
                f"[{time.strftime('%H:%M:%S')}] {task_name} {optimizer}: best rule so far {best_rule}",
                flush=True,
            )
            if not args.no_write:
                write_section("finder", text)
    print(text)


if __name__ == "__main__":
    main()
