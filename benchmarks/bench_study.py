"""The study's recommendation against a full grid over LR x schedule.

For each task: ``lrlab study`` (small budget, SGD+momentum and Adam) versus a grid of
constant-spaced LRs (3 per decade over 1e-4..3) x the same nine schedule families, each
run trained for the same number of epochs with the same seed. Reported: the best
validation accuracy of each, the gap, and the compute of each in optimizer steps (the
range tests included) and in wall time.

Run: ``python -m benchmarks.bench_study [--jobs 2]``.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._common import write_section
from lrlab.optim.grammar import resolve_optimizer
from lrlab.store.sqlite import Store
from lrlab.study import run_study
from lrlab.study.plan import BUDGETS, study_schedules
from lrlab.sweeps import run_sweep
from lrlab.training.tasks import get_task

TASKS = ("digits-linear", "digits-mlp")
OPTIMIZERS = ("sgdm", "adam")
GRID_LRS = [float(f"{v:.3g}") for v in np.logspace(-4, np.log10(3.0), 14)]


def _steps(db: Path, run_ids: list[str]) -> int:
    with sqlite3.connect(db) as conn:
        marks = ",".join("?" * len(run_ids))
        return int(
            conn.execute(f"SELECT COUNT(*) FROM step_metrics WHERE run_id IN ({marks})", run_ids).fetchone()[
                0
            ]
        )


def _best_accuracy(store: Store, run_ids: list[str]) -> tuple[float, str]:
    best, label = -1.0, ""
    epochs = store.epochs_for(run_ids)
    for run in store.runs(ids=run_ids):
        if run.status != "done" or not epochs.get(run.id):
            continue
        accuracy = epochs[run.id][-1].val_accuracy or 0.0
        if accuracy > best:
            best, label = accuracy, f"{run.config.optimizer} {run.config.schedule}"
    return best, label


def bench_task(task_name: str, jobs: int, workdir: Path) -> dict[str, object]:
    task = get_task(task_name)
    epochs = BUDGETS["small"].epochs(task.default_epochs)
    total_steps = epochs * len(task.train_loader(task.default_batch_size, 0))

    study_db = workdir / f"{task_name}-study.db"
    started = time.perf_counter()
    result = run_study(task_name, Store(study_db), budget="small", optimizers=OPTIMIZERS, jobs=jobs)
    study_seconds = time.perf_counter() - started
    study_ids = [r.id for r in result.runs]
    finder_steps = sum(len(f.lrs) for f in result.finders.values())
    study_steps = _steps(study_db, study_ids) + finder_steps
    best = result.recommendation.best
    study_accuracy = best.accuracy or 0.0

    grid_db = workdir / f"{task_name}-grid.db"
    grid_store = Store(grid_db)
    grid_ids: list[str] = []
    started = time.perf_counter()
    for optimizer in OPTIMIZERS:
        for index, lr in enumerate(GRID_LRS):
            spec = {
                "name": f"grid-{task_name}-{optimizer}-{index}",
                "task": task_name,
                "epochs": epochs,
                "seeds": [0],
                "grid": {
                    "lr": [lr],
                    "optimizer": [resolve_optimizer(optimizer)],
                    "schedule": [str(s) for s in study_schedules(lr, lr / 4, lr, total_steps).values()],
                },
            }
            grid_ids += [r.id for r in run_sweep(spec, grid_store, jobs=jobs)]
    grid_seconds = time.perf_counter() - started
    grid_steps = _steps(grid_db, grid_ids)
    grid_accuracy, grid_label = _best_accuracy(grid_store, grid_ids)
    return {
        "task": task_name,
        "epochs": epochs,
        "study_accuracy": study_accuracy,
        "study_choice": f"{best.optimizer} {best.schedule}",
        "grid_accuracy": grid_accuracy,
        "grid_choice": grid_label,
        "study_runs": len(study_ids),
        "grid_runs": len(grid_ids),
        "compute_ratio": study_steps / grid_steps,
        "time_ratio": study_seconds / grid_seconds,
        "study_seconds": study_seconds,
        "grid_seconds": grid_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--tasks", default=",".join(TASKS))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.tasks.split(","):
            rows.append(bench_task(name, args.jobs, Path(tmp)))
            print(rows[-1], flush=True)
    lines = [
        "## Study vs full grid (`benchmarks/bench_study.py`)",
        "",
        f"Study: small budget, optimizers {', '.join(OPTIMIZERS)}, one range test each, nine schedules at the "
        "suggested LR and at 3x it (the budget's LR factors 1 and 3, cyclic bounds scaled alike). "
        f"Grid: {len(GRID_LRS)} LRs ({GRID_LRS[0]:g}..{GRID_LRS[-1]:g}, 3 per decade) x the same "
        "nine schedule families (cyclic between lr/4 and lr, one-cycle peaking at lr) x the same optimizers, "
        "same epochs, seed 0. Target: within 1% accuracy of the grid's best at no more than a fifth of its compute.",
        "",
        "| task | epochs | study best acc. | grid best acc. | gap | study runs | grid runs "
        "| compute (steps) study/grid | wall time study/grid | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        gap = r["grid_accuracy"] - r["study_accuracy"]  # type: ignore[operator]
        ok = gap <= 0.01 and r["compute_ratio"] <= 0.2  # type: ignore[operator]
        lines.append(
            f"| {r['task']} | {r['epochs']} | {r['study_accuracy']:.2%} | {r['grid_accuracy']:.2%} | {gap:+.2%} "
            f"| {r['study_runs']} | {r['grid_runs']} | {r['compute_ratio']:.3f} | {r['time_ratio']:.3f} "
            f"| {'meets the target' if ok else 'MISSES the target'} |"
        )
    lines += [
        "",
        "Choices: "
        + "; ".join(f"{r['task']}: study `{r['study_choice']}`, grid `{r['grid_choice']}`" for r in rows),
    ]
    write_section("study", "\n".join(lines))


if __name__ == "__main__":
    main()
