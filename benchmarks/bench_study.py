"""The study's recommendation against a full grid over LR x schedule, seeds in both.

For each task and its optimizer: ``run_study`` (small budget: three LRs around the range
test's recommendation x nine schedules with one seed, then the best quarter with three
seeds) versus a grid of LRs (3 per decade over three decades, chosen per optimizer family
before any result) x the same nine schedule families, every grid configuration trained with
the same three seeds and the same epochs. Both are ranked by the one scorer
(``lrlab.core.ranking.rank``, the mean over seeds of the task's objective). Reported: the
study's pick and the grid's best (mean over the three seeds), the gap (accuracy points,
nats, or relative MSE), and the compute of each in optimizer steps (range tests included).

LR-free contenders (``--lrfree``, a section of its own): for each task, the study of its optimizer
again with ``prodigy`` and ``schedulefree_adamw`` beside it, in a store of its own (a copy of the
task's study store, so the optimizer's own runs are reused; both in ``lrlab-runs/bench_study/lrfree/``,
so the comparison above is unchanged):
the study's pick, each LR-free optimizer's best configuration with its seeds, tie or not with the
recommendation within the paired seed noise, and its compute against the tuned study's.

It also times the README's ``lrlab study`` (digits-mlp, sgd, sgdm and adam) in a fresh store,
with the machine's load average beside it.

Results are cached in ``lrlab-runs/bench_study/`` (the stores and the first wall times), so a
re-run only retrains what is missing. Run: ``python -m benchmarks.bench_study [--jobs 2]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import write_section
from lrlab.core.ranking import rank
from lrlab.core.records import RunConfig
from lrlab.optim.grammar import resolve_optimizer
from lrlab.store.sqlite import Store
from lrlab.study import run_study
from lrlab.study.plan import BUDGETS, study_schedules
from lrlab.sweeps import RunPlan, run_plans
from lrlab.training.resolve import steps_per_epoch
from lrlab.training.tasks import get_task

CACHE = Path("lrlab-runs/bench_study")
SEEDS = (0, 1, 2)
# name -> (task reference, optimizer, kind); the regression MLP and the small character LSTM
# are defined in benchmarks/bench_tune.py.
TASKS: dict[str, tuple[str, str]] = {
    "digits-linear": ("digits-linear", "sgdm"),
    "digits-mlp": ("digits-mlp", "adam"),
    "chars-lstm-small": ("benchmarks.bench_tune:chars_lstm_small", "adam"),
    "regression-mlp": ("benchmarks.bench_tune:regression_mlp", "sgdm"),
}
# 3 per decade over three decades, by optimizer family (set before any result was seen).
GRID_LRS = {
    "sgdm": [float(f"{v:.3g}") for v in np.logspace(-3, 0, 10)],
    "adam": [float(f"{v:.3g}") for v in np.logspace(-4, -1, 10)],
}
TARGETS = {"classification": 0.01, "language_model": 0.02, "regression": 0.05}


def _steps(db: Path, run_ids: list[str]) -> int:
    store = Store(db, readonly=True)
    return sum(store.step_count(rid) for rid in dict.fromkeys(run_ids))


def _timed(cache: dict[str, Any], key: str, fn: Any) -> tuple[Any, float]:
    """``fn()`` and its wall time: the time of the first (uncached) run is kept in ``cache``."""
    started = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - started
    if key not in cache or seconds > cache[key]:  # a re-run on a warm store only reads results
        cache[key] = seconds
    return value, cache[key]


def _gap(kind: str, study: float, grid: float, study_acc: float | None, grid_acc: float | None) -> float:
    """How far the study's pick is behind the grid's best, in the target's unit."""
    if kind == "classification":
        return (grid_acc or 0.0) - (study_acc or 0.0)
    if kind == "regression":
        return (study - grid) / grid
    return study - grid


def bench_task(label: str, jobs: int, times: dict[str, Any]) -> dict[str, Any]:
    ref, optimizer = TASKS[label]
    task = get_task(ref)
    spec = resolve_optimizer(optimizer)
    epochs = BUDGETS["small"].epochs(task.default_epochs)
    total_steps = epochs * steps_per_epoch(task, task.default_batch_size)

    study_db = CACHE / f"{label}-study.db"
    result, study_seconds = _timed(
        times, f"{label}/study",
        lambda: run_study(ref, Store(study_db), budget="small", optimizers=[optimizer], jobs=jobs),
    )  # fmt: skip
    study_ids = [r.id for r in result.runs]
    study_steps = _steps(study_db, study_ids) + sum(len(f.lrs) for f in result.finders.values())
    rec = result.recommendation
    best = rec.best

    grid_db = CACHE / f"{label}-grid.db"
    grid_store = Store(grid_db)

    def grid() -> list[str]:
        ids: list[str] = []
        for seed in SEEDS:  # one sweep per seed, so that every run's batches come from its own seed
            sweep = f"grid-{label}-seed{seed}"
            plans = [
                RunPlan.of(sweep, RunConfig(task=ref, lr=lr, optimizer=spec, schedule=s, seed=seed, epochs=epochs,
                                            batch_size=task.default_batch_size))
                for lr in GRID_LRS[optimizer] for s in study_schedules(lr, lr / 4, lr, total_steps).values()
            ]  # fmt: skip
            described = {"name": sweep, "task": ref, "epochs": epochs, "seeds": [seed],
                         "grid": {"lr": GRID_LRS[optimizer], "optimizer": [spec], "schedule": "study_schedules"}}  # fmt: skip
            ids += [r.id for r in run_plans(plans, grid_store, sweep, described, jobs=jobs, vectorize=True)]
        return ids

    grid_ids, grid_seconds = _timed(times, f"{label}/grid", grid)
    grid_steps = _steps(grid_db, grid_ids)
    grid_runs = grid_store.runs(ids=grid_ids)
    ranked = rank(grid_runs, grid_store.epochs_for(grid_ids))
    top = ranked[0]
    kind = task.kind
    gap = _gap(kind, best.score, top.mean, best.accuracy, top.accuracy)
    lrs = GRID_LRS[optimizer]
    return {
        "task": label,
        "kind": kind,
        "optimizer": optimizer,
        "epochs": epochs,
        "metric": rec.metric,
        "study": best.score,
        "study_sd": best.sd,
        "study_acc": best.accuracy,
        "study_choice": f"{best.schedule_name} lr={best.lr:.3g}",
        "tie": rec.tie,
        "grid": top.mean,
        "grid_sd": top.sd,
        "grid_acc": top.accuracy,
        "grid_choice": f"{top.config.schedule} (lr={top.config.lr:.3g})",
        "grid_edge": top.config.lr in (lrs[0], lrs[-1]),
        "gap": gap,
        "ok_gap": gap <= TARGETS[kind],
        "study_runs": len(study_ids),
        "grid_runs": len(grid_ids),
        "finalists": result.extras.get("finalists"),
        "compute_ratio": study_steps / grid_steps,
        "time_ratio": study_seconds / grid_seconds,
        "study_seconds": study_seconds,
        "grid_seconds": grid_seconds,
    }


LR_FREE_CONTENDERS = ("prodigy", "schedulefree_adamw")
LR_FREE_CACHE = CACHE / "lrfree"  # stores of their own: the comparison above is never touched


def _study_store(label: str, jobs: int, times: dict[str, Any]) -> tuple[Any, Path]:
    """The task's own study (the comparison's), from its cached store, and its store."""
    ref, optimizer = TASKS[label]
    db = LR_FREE_CACHE / f"{label}-study.db"
    result, _seconds = _timed(
        times, f"{label}/lrfree-base", lambda: run_study(ref, Store(db), budget="small", optimizers=[optimizer], jobs=jobs)
    )
    return result, db


def bench_lrfree(label: str, jobs: int, times: dict[str, Any]) -> dict[str, Any]:
    """The task's study with the LR-free contenders beside its optimizer, in a copy of its store."""
    import sqlite3
    from contextlib import closing

    ref, optimizer = TASKS[label]
    base, base_db = _study_store(label, jobs, times)
    base_steps = _steps(base_db, [r.id for r in base.runs]) + sum(len(f.lrs) for f in base.finders.values())
    db = LR_FREE_CACHE / f"{label}-lrfree.db"
    if not db.exists():  # SQLite's backup: a plain file copy would miss what is still in the WAL
        with closing(sqlite3.connect(base_db)) as source, closing(sqlite3.connect(db)) as target:
            source.backup(target)
    optimizers = [optimizer, *LR_FREE_CONTENDERS]
    result, seconds = _timed(
        times, f"{label}/lrfree", lambda: run_study(ref, Store(db), budget="small", optimizers=optimizers, jobs=jobs)
    )
    best = result.recommendation.best
    return {
        "task": label, "optimizer": optimizer, "kind": get_task(ref).kind, "metric": result.recommendation.metric,
        "base_pick": f"{base.recommendation.best.schedule_name} lr={base.recommendation.best.lr:.3g}",
        "base_score": base.recommendation.best.score, "base_sd": base.recommendation.best.sd,
        "pick": f"{best.optimizer} + {best.schedule_name} lr={best.lr:.3g}", "pick_score": best.score,
        "pick_sd": best.sd, "base_steps": base_steps, "seconds": seconds,
        "lines": [line.to_dict() for line in result.verdict.lr_free],
    }  # fmt: skip


def lrfree_section(labels: list[str], jobs: int, times: dict[str, Any], times_file: Path) -> None:
    """Run the LR-free comparison on ``labels`` and write its section of docs/benchmarks.md."""
    rows = []
    for name in labels:
        rows.append(bench_lrfree(name, jobs, times))
        times_file.write_text(json.dumps(times, indent=1))
        print(rows[-1], flush=True)
    lines = [
        "## LR-free contenders in the study (`python -m benchmarks.bench_study --lrfree`)",
        "",
        "For each task, the study above with `prodigy` and `schedulefree_adamw` beside its optimizer "
        "(`run_study(budget=\"small\", optimizers=[its optimizer, \"prodigy\", \"schedulefree_adamw\"])`, in a "
        "store of its own so the comparison above is unchanged). Prodigy has no range test and trains at lr=1 "
        "(a multiplier on its own estimate) with a constant and a cosine schedule; schedule-free AdamW gets its "
        "range test and a constant LR at the study's three LR factors. They go through the same successive "
        "halving; the best configuration of an LR-free optimizer that missed the cut is promoted to seeds 1 "
        "and 2 as well. Each LR-free optimizer's best configuration is judged against the study's "
        "recommendation (or, where it is the recommendation, against the best configuration of the task's "
        "optimizer) on the paired seed noise: per-seed differences over seeds 0, 1, 2, a tie when the mean "
        "difference is within two standard errors. Compute: its optimizer steps (runs and range test) against "
        "those of the task's study without it. Scores are the task's objective (validation error, validation "
        "loss in nats, validation MSE), mean ± sd over 3 seeds; lower is better.",
        "",
        "| task | study pick without them | study pick with them | LR-free optimizer | its best (mean ± sd, seeds) "
        "| against the recommendation | margin (noise) | compute / the tuned study's | its estimate (d*lr) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for line in r["lines"]:
            score = "-" if line["score"] is None else f"{line['score']:.4f} ± {line['sd']:.4f} ({line['seeds']})"
            verdict = {"ties": "ties within the noise", "behind": "behind by more than the noise",
                       "ahead": "ahead by more than the noise"}.get(line["verdict"], line["verdict"])  # fmt: skip
            if r["pick"].startswith(f"{line['optimizer']} + "):  # judged against the best of the task's optimizer
                verdict = f"is the recommendation; {verdict} against the best {r['optimizer']}"
            margin = "-" if line["margin"] is None else (
                f"{line['margin']:+.4f} ({line['noise']:.4f})" if line["noise"] is not None else f"{line['margin']:+.4f}"
            )  # fmt: skip
            estimate = "-" if line["estimate_first"] is None else (
                f"{line['estimate_first']:.3g} -> {line['estimate_last']:.3g}, x{line['estimate_tail']:.2f} over the last tenth"
            )  # fmt: skip
            lines.append(
                f"| {r['task']} | {r['optimizer']} {r['base_pick']}: {r['base_score']:.4f} ± {r['base_sd']:.4f} "
                f"| {r['pick']}: {r['pick_score']:.4f} ± {r['pick_sd']:.4f} | {line['optimizer']} "
                f"| {line['schedule']}: {score} | {verdict} | {margin} "
                f"| {line['steps'] / r['base_steps']:.3f} ({line['steps']:,} steps) | {estimate} |"
            )
    lines += [
        "",
        "Margin: the recommendation's mean advantage over the LR-free configuration, per seed paired "
        "(negative: the LR-free one scored better); noise: two standard errors of the per-seed differences. "
        "Wall time of the four LR-free studies (their new runs only; LR-free optimizers train one run at a time, "
        f"not stacked): {sum(r['seconds'] for r in rows) / 60:.1f} minutes.",
    ]
    body = "\n".join(lines)
    print(body)
    write_section("study-lrfree", body)


def time_readme(times: dict[str, Any]) -> dict[str, Any]:
    """The README's ``lrlab study`` in a fresh store and folder (cached after the first run)."""
    if "readme" not in times:
        load_before = os.getloadavg()[0]
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "lrlab.cli", "study", "--quiet"], cwd=tmp,
                                  capture_output=True, text=True)  # fmt: skip
            seconds = time.perf_counter() - started
            found = re.search(r"Study \S+: (\d+) runs", done.stdout)
            runs = int(found.group(1)) if found else 0
        times["readme"] = {"seconds": seconds, "rc": done.returncode, "runs": runs, "load_before": load_before,
                           "load_after": os.getloadavg()[0], "cpus": os.cpu_count()}  # fmt: skip
    return times["readme"]


def readme_section(repeats: int) -> None:
    """Time the README's ``lrlab study`` ``repeats`` times, each in a fresh store, and write the
    median and range to their own section of docs/benchmarks.md."""
    import statistics

    timings = []
    for _ in range(repeats):
        timings.append(time_readme({}))
        print(timings[-1], flush=True)
    seconds = [t["seconds"] for t in timings]
    body = (
        "## The README's `lrlab study` (`python -m benchmarks.bench_study --readme-only 3`)\n\n"
        f"The README's main job (digits-mlp with sgd, sgd with momentum and adam, small budget, "
        f"{timings[0]['runs']} runs, 2 jobs), each time in a fresh store and folder: median "
        f"{statistics.median(seconds):.0f} s over {repeats} runs (from {min(seconds):.0f} s to {max(seconds):.0f} s; "
        f"exit codes {', '.join(str(t['rc']) for t in timings)}) on {timings[0]['cpus']} CPU cores, load average "
        f"(1 min) {timings[0]['load_before']:.1f} before the first and {timings[-1]['load_after']:.1f} after the last. "
        "Target: under 60 s on an idle machine of this kind.\n"
    )
    print(body)
    write_section("readme-study", body)


def _fmt(kind: str, value: float | None, acc: float | None, sd: float) -> str:
    if kind == "classification":
        return f"{(acc or 0):.2%} (err {value:.4f} ± {sd:.4f})"
    return f"{value:.4f} ± {sd:.4f}"


def _gap_text(kind: str, gap: float) -> str:
    if kind == "classification":
        return f"{gap * 100:+.2f} points"
    if kind == "regression":
        return f"{gap:+.1%} MSE"
    return f"{gap:+.4f} nats"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--no-readme", action="store_true", help="Do not time the README's lrlab study.")
    parser.add_argument("--readme-only", type=int, metavar="N", default=0,
                        help="Only time the README's lrlab study, N times in fresh stores.")  # fmt: skip
    parser.add_argument("--lrfree", action="store_true",
                        help="Only the LR-free contenders (prodigy, schedulefree_adamw) in each task's study.")  # fmt: skip
    args = parser.parse_args()
    if args.readme_only:
        readme_section(args.readme_only)
        return
    if args.lrfree:
        LR_FREE_CACHE.mkdir(parents=True, exist_ok=True)
        times_file = LR_FREE_CACHE / "times.json"
        times = json.loads(times_file.read_text()) if times_file.exists() else {}
        lrfree_section(args.tasks.split(","), args.jobs, times, times_file)
        return
    CACHE.mkdir(parents=True, exist_ok=True)
    times_file = CACHE / "times.json"
    times = json.loads(times_file.read_text()) if times_file.exists() else {}
    rows = []
    for name in args.tasks.split(","):
        rows.append(bench_task(name, args.jobs, times))
        times_file.write_text(json.dumps(times, indent=1))
        print(rows[-1], flush=True)
    readme = None if args.no_readme else time_readme(times)
    times_file.write_text(json.dumps(times, indent=1))
    lines = [
        "## Study vs full grid (`benchmarks/bench_study.py`)",
        "",
        "Study: `run_study(budget=\"small\")` with one optimizer per task: one range test, three LRs (a third "
        "of, one and three times the range test's recommendation) x nine schedules with seed 0, each schedule "
        "extended by the same factor where its best LR is the smallest or largest tried (at most two more LRs), "
        "then the best "
        "quarter (at least three) with seeds 0, 1, 2 (successive halving); its pick is the best finalist by the "
        "mean over the three seeds, or the simpler of the top two when their margin is within the paired seed "
        "noise. Grid: 10 LRs (3 per decade: 1e-3..1 for SGD with momentum, 1e-4..0.1 for Adam) x the same nine "
        "schedule families (cyclic between lr/4 and lr, one-cycle peaking at lr), every configuration with "
        "seeds 0, 1, 2, the same epochs; its best is the best mean over the three seeds. Both ranked by the "
        "task's objective (validation error, validation loss in nats, validation MSE). Targets: within 1 "
        "accuracy point / 0.02 nats / 5% relative MSE of the grid's best at no more than a fifth of its "
        "compute. Both scores are measured on the seeds they were chosen on, so both carry the same "
        "selection optimism.",
        "",
        "| task | optimizer | epochs | study pick (mean ± sd, 3 seeds) | grid best (mean ± sd, 3 seeds) | gap "
        "| study runs | grid runs | compute study/grid | wall time study/grid | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ok = r["ok_gap"] and r["compute_ratio"] <= 0.2
        lines.append(
            f"| {r['task']} | {r['optimizer']} | {r['epochs']} "
            f"| {_fmt(r['kind'], r['study'], r['study_acc'], r['study_sd'])} "
            f"| {_fmt(r['kind'], r['grid'], r['grid_acc'], r['grid_sd'])} | {_gap_text(r['kind'], r['gap'])} "
            f"| {r['study_runs']} | {r['grid_runs']} | {r['compute_ratio']:.3f} | {r['time_ratio']:.3f} "
            f"| {'meets the target' if ok else 'MISSES the target'} |"
        )
    met = sum(1 for r in rows if r["ok_gap"] and r["compute_ratio"] <= 0.2)
    lines += [
        "",
        f"{met} of {len(rows)} tasks meet both targets. Choices: "
        + "; ".join(
            f"{r['task']}: study `{r['study_choice']}`{' (tied with its runner-up within the seed noise)' if r['tie'] else ''}, "
            f"grid `{r['grid_choice']}`{' (at the edge of the grid)' if r['grid_edge'] else ''}"
            for r in rows
        )
        + ".",
    ]
    first_run = sum(v for k, v in times.items() if k != "readme" and isinstance(v, float))
    lines += [
        "",
        f"Wall time: the first, uncached run of the four studies and grids took {first_run / 60:.1f} minutes "
        "on this shared machine; a re-run reads them from `lrlab-runs/bench_study/`. The grid trains the 90 "
        "runs of one seed stacked in groups of up to 32, the study groups of 9 plus a range test, so its "
        "wall-time ratio is larger than its compute ratio (on digits-linear, where a group of runs takes a "
        "second, the study's range test and process start dominate).",
    ]
    if readme is not None:
        lines += [
            "",
            f"The README's `lrlab study` (digits-mlp, sgd, sgdm and adam, small budget, 2 jobs, runs vectorised) "
            f"took {readme['seconds']:.0f} s for {readme['runs']} runs in a fresh store (exit code {readme['rc']}) "
            f"on {readme['cpus']} CPU cores with a load average of {readme['load_before']:.1f} before and "
            f"{readme['load_after']:.1f} after: the machine was shared with other work, so an idle machine of "
            "this kind is faster.",
        ]
    write_section("study", "\n".join(lines))


if __name__ == "__main__":
    main()
