"""``lrlab tune`` against the study, the full LR x schedule grid and one-cycle at the finder's LR.

For each task (a CNN, a character language model, a regression MLP) and the optimizers
SGD+momentum and Adam, each method picks one configuration from runs with seed 0:

- **study**: ``run_study`` (small budget: one range test per optimizer, nine schedules at
  the anchor LR and 3x it);
- **grid**: 14 LRs (1e-4..3, 3 per decade) x the study's nine schedule families;
- **one-cycle**: one-cycle peaking at the range test's LR, for each optimizer;
- **tune**: Optuna (multivariate TPE, Hyperband pruning) over the same families with
  ranges for their knobs and LRs from the range test, stopped at 2x the study's compute
  (and, in a second row, at a fifth of the grid's).

Every chosen configuration is then trained again with three held-out seeds (1, 2, 3):
the final metric is their mean and sd. Compute is optimizer steps (range tests included).
Short-horizon bias: after the tune, every pruned trial is trained to full length (not
charged to the tune) to count how often pruning killed a trial that would have won.

Run: ``python -m benchmarks.bench_tune [--jobs 1] [--tasks digits-cnn,...]``. Stores and
results are cached under ``lrlab-runs/bench-tune/`` (delete it to measure afresh).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmarks._common import write_section
from lrlab.core.ranking import rank
from lrlab.core.records import RunConfig
from lrlab.optim.grammar import resolve_optimizer
from lrlab.schedules import one_cycle
from lrlab.store.sqlite import Store
from lrlab.study import run_study
from lrlab.study.plan import study_schedules
from lrlab.sweeps import RunPlan, run_plans
from lrlab.training.tasks import Task, TensorPairs, get_task

CACHE = Path("lrlab-runs/bench-tune")
OPTIMIZERS = ("sgdm", "adam")
GRID_LRS = [float(f"{v:.3g}") for v in np.logspace(-4, np.log10(3.0), 14)]
EVAL_SEEDS = (1, 2, 3)
# Small versions of the built-in tasks (task references, so that the study takes them too).
TASKS: dict[str, dict[str, Any]] = {
    "digits-cnn": {"ref": "benchmarks.bench_tune:digits_cnn_small", "options": {}, "epochs": 3},
    "chars-lstm": {"ref": "benchmarks.bench_tune:chars_lstm_small", "options": {}, "epochs": 3},
    "regression-mlp": {"ref": "benchmarks.bench_tune:regression_mlp", "options": {}, "epochs": 6},
}


def digits_cnn_small() -> Task:
    """The digits CNN on 768 training and 256 validation images."""
    return get_task("digits-cnn", train_size=768, val_size=256)


def chars_lstm_small() -> Task:
    """The character LSTM (64 units) on 256 training and 64 validation sequences of 32 characters."""
    return get_task("chars-lstm", corpus_chars=40000, block_size=32, train_size=256, val_size=64, hidden=64)


# ---------------------------------------------------------------- the regression task


class RegressionTask(Task):
    """A regression task (mean squared error; no classes): lrlab's built-in kinds are
    classification and language models, so this one is defined here."""

    def __post_init__(self) -> None:  # the built-in kinds check does not know "regression"
        if self.default_epochs < 1 or self.default_batch_size < 1:
            raise ValueError("default_epochs and default_batch_size must be >= 1")

    def loss_fn(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(output, target)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader: Any) -> dict[str, float | None]:
        was_training = model.training
        model.eval()
        total, count = 0.0, 0
        try:
            for inputs, targets in loader:
                total += float(nn.functional.mse_loss(model(inputs), targets, reduction="sum"))
                count += targets.numel()
        finally:
            model.train(was_training)
        return {"val_loss": total / count, "val_error": None, "val_accuracy": None}


def regression_mlp(train_size: int = 1024, val_size: int = 256, features: int = 8) -> Task:
    """y = sin(x.w1) + (x.w2)^2 / 2 + noise, fitted by a 2-layer MLP (fixed data seed)."""
    generator = torch.Generator().manual_seed(1234)
    x = torch.randn(train_size + val_size, features, generator=generator)
    w1, w2 = torch.randn(features, generator=generator), torch.randn(features, generator=generator) / 2
    y = (torch.sin(x @ w1) + 0.5 * (x @ w2) ** 2 + 0.1 * torch.randn(len(x), generator=generator)).unsqueeze(1)

    def model() -> nn.Module:
        return nn.Sequential(nn.Linear(features, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))

    return RegressionTask("regression-mlp", "regression", 6, 32, model,
                          TensorPairs(x[:train_size], y[:train_size]), TensorPairs(x[train_size:], y[train_size:]),
                          {"train_size": train_size, "val_size": val_size, "features": features})  # fmt: skip


# ---------------------------------------------------------------- the methods


def _steps(store: Store, run_ids: list[str]) -> int:
    return sum(store.step_count(rid) for rid in set(run_ids))


def _best(store: Store, run_ids: list[str]) -> RunConfig:
    runs = store.runs(ids=run_ids)
    return rank(runs, store.epochs_for([r.id for r in runs]))[0].config


def _grid(name: str, cfg: dict[str, Any], store: Store, jobs: int, total_steps: int, batch: int) -> dict[str, Any]:
    plans = []
    for optimizer in OPTIMIZERS:
        spec = resolve_optimizer(optimizer)
        for lr in GRID_LRS:
            for schedule in study_schedules(lr, lr / 4, lr, total_steps).values():
                plans.append(RunPlan.of(f"grid-{name}", RunConfig(
                    task=cfg["ref"], task_options=cfg["options"], optimizer=spec, lr=lr, schedule=schedule,
                    seed=0, epochs=cfg["epochs"], batch_size=batch)))  # fmt: skip
    records = run_plans(plans, store, f"grid-{name}", {"bench": "grid"}, jobs=jobs, vectorize=True)
    ids = [r.id for r in records]
    return {"config": _best(store, ids), "steps": _steps(store, ids), "runs": len(ids)}


def _one_cycle(name: str, cfg: dict[str, Any], store: Store, finders: dict[str, float], total_steps: int,
               batch: int) -> dict[str, Any]:  # fmt: skip
    plans = [RunPlan.of(f"onecycle-{name}", RunConfig(task=cfg["ref"], task_options=cfg["options"], optimizer=opt,
                                                      lr=lr, schedule=one_cycle(lr, total_steps=total_steps), seed=0,
                                                      epochs=cfg["epochs"], batch_size=batch))
             for opt, lr in finders.items()]  # fmt: skip
    records = run_plans(plans, store, f"onecycle-{name}", {"bench": "one-cycle"})
    ids = [r.id for r in records]
    # The range tests are the study's (the same ones): counted here too.
    return {"config": _best(store, ids), "steps": _steps(store, ids), "runs": len(ids)}


def _space() -> dict[str, Any]:
    lr = {"from_finder": [0.1, 10]}
    return {
        "optimizer": [resolve_optimizer(o) for o in OPTIMIZERS],
        "constant": {"lr": lr},
        "step_decay": {"lr": lr, "step_size": {"run": [0.2, 0.5]}, "gamma": {"uniform": [0.1, 0.5]}},
        "exponential": {"lr": lr, "decay_steps": {"run": [1.0, 1.0]}, "decay_rate": {"log": [0.005, 0.5]}},
        "cosine": {"lr": lr, "warmup": {"run": [0.0, 0.1]}},
        "cyclic": {"max_lr": lr, "base_lr": {"ratio": [0.05, 0.5]}, "step_size": {"run": [0.05, 0.5]},
                   "mode": ["triangular", "triangular2"], "shape": ["triangle", "sine"],
                   "cycle_decay": {"uniform": [0.3, 1.0]}},
        "one_cycle": {"max_lr": lr, "pct_start": {"uniform": [0.1, 0.5]}},
    }  # fmt: skip


def _tune(name: str, cfg: dict[str, Any], store: Store, budget: int, label: str) -> dict[str, Any]:
    from lrlab.tune import tune

    spec = {"name": f"tune-{name}-{label}", "task": cfg["ref"], "task_options": cfg["options"], "epochs": cfg["epochs"],
            "trials": 500, "max_steps": budget, "pruner": "hyperband", "space": _space()}  # fmt: skip
    db = store.path
    result = tune(spec, store, resume=True, storage=f"sqlite:///{Path(db).parent / f'optuna-{name}.db'}")
    audit = tune({**spec, "trials": len(result.trials), "audit_pruned": 500}, store, resume=True,
                 storage=f"sqlite:///{Path(db).parent / f'optuna-{name}.db'}")  # fmt: skip
    best = result.recommendation.best
    return {"config": next(r.config for r in result.runs if r.id == best.run_ids[0]), "steps": result.compute_steps,
            "runs": len(result.trials), "pruned": audit.bias.pruned, "audited": audit.bias.audited,
            "beat_best": audit.bias.beat_best, "best_was_pruned": audit.bias.best_was_pruned,
            "pruned_low": audit.bias.pruned_low_lr, "pruned_high": audit.bias.pruned_high_lr}  # fmt: skip


def _evaluate(name: str, method: str, config: RunConfig, store: Store, jobs: int) -> tuple[float, float]:
    plans = [RunPlan.of(f"eval-{name}", config.replace(seed=seed)) for seed in EVAL_SEEDS]
    records = run_plans(plans, store, f"eval-{name}", {"bench": "held-out seeds"}, jobs=jobs)
    ranked = rank(records, store.epochs_for([r.id for r in records]))
    if not ranked:
        return math.nan, math.nan
    return ranked[0].mean, ranked[0].sd


def bench_task(name: str, jobs: int) -> dict[str, Any]:
    cfg = TASKS[name]
    folder = CACHE / name
    folder.mkdir(parents=True, exist_ok=True)
    store = Store(folder / "lrlab.db")
    task = get_task(cfg["ref"], **cfg["options"])
    batch = task.default_batch_size
    total_steps = cfg["epochs"] * len(task.train_loader(batch, 0))
    started = time.perf_counter()
    study = _study(name, cfg, store, jobs)
    grid = _grid(name, cfg, store, jobs, total_steps, batch)
    cycle = _one_cycle(name, cfg, store, study["finders"], total_steps, batch)
    cycle["steps"] += study["finder_steps"]
    tune_2x = _tune(name, cfg, store, 2 * study["steps"], "2x-study")
    tune_fifth = _tune(name, cfg, store, grid["steps"] // 5, "fifth-grid")
    methods = {"study": study, "grid": grid, "one-cycle": cycle, "tune (2x study)": tune_2x,
               "tune (grid/5)": tune_fifth}  # fmt: skip
    out: dict[str, Any] = {"task": name, "epochs": cfg["epochs"], "total_steps": total_steps, "methods": {}}
    for method, found in methods.items():
        mean, sd = _evaluate(name, method, found["config"], store, jobs)
        out["methods"][method] = {**{k: v for k, v in found.items() if k not in ("config", "finders")},
                                  "mean": mean, "sd": sd, "choice": f"{found['config'].optimizer} "
                                  f"{found['config'].schedule}"}  # fmt: skip
    out["seconds"] = time.perf_counter() - started
    out["metric"] = "val_error" if task.kind == "classification" else "val_loss"
    return out


def _study(name: str, cfg: dict[str, Any], store: Store, jobs: int) -> dict[str, Any]:
    result = run_study(cfg["ref"], store, budget="small", optimizers=OPTIMIZERS, jobs=jobs, epochs=cfg["epochs"])
    finder_steps = sum(len(f.lrs) for f in result.finders.values())
    ids = [r.id for r in result.runs]
    return {"config": _best(store, ids), "steps": _steps(store, ids) + finder_steps, "runs": len(ids),
            "finders": {k: float(f.lr) for k, f in result.finders.items()}, "finder_steps": finder_steps}  # fmt: skip


def _noise(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Two standard errors of the difference of two means over the held-out seeds."""
    return 2 * math.sqrt((a["sd"] ** 2 + b["sd"] ** 2) / len(EVAL_SEEDS))


def _verdict(row: dict[str, Any], method: str) -> str:
    methods = row["methods"]
    tuned, grid, study = methods[method], methods["grid"], methods["study"]
    noise, gap = _noise(tuned, grid), tuned["mean"] - grid["mean"]
    ratio = tuned["steps"] / grid["steps"]
    if abs(gap) <= noise:
        text = "ties with the grid (inside the seed noise)"
    else:
        text = "beats the grid" if gap < 0 else "is more than the seed noise behind the grid"
    text += f" (gap {gap:+.3g}, noise {noise:.3g}) at {ratio:.2f} of its compute"
    study_gap = study["mean"] - grid["mean"]
    if study_gap > _noise(study, grid):
        beats = study["mean"] - tuned["mean"] > _noise(study, tuned)
        text += (f"; the study is more than noise behind the grid ({study_gap:+.3g}), and tune "
                 f"{'beats' if beats else 'does not beat'} the study by more than noise")  # fmt: skip
    else:
        text += "; the study itself is within noise of the grid here"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--tasks", default=",".join(TASKS))
    args = parser.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.tasks.split(","):
        cached = CACHE / f"{name}.json"
        if cached.exists():
            rows.append(json.loads(cached.read_text()))
        else:
            rows.append(bench_task(name, args.jobs))
            cached.write_text(json.dumps(rows[-1], indent=1))
        print(json.dumps(rows[-1]), flush=True)
    write_section("tune", _section(rows))


def _section(rows: list[dict[str, Any]]) -> str:
    lines = [
        "## Tune vs study vs full grid (`benchmarks/bench_tune.py`)",
        "",
        f"Each method picks one configuration from seed-0 runs (optimizers {', '.join(OPTIMIZERS)}): the study "
        f"(small budget); the grid ({len(GRID_LRS)} LRs {GRID_LRS[0]:g}..{GRID_LRS[-1]:g} x the study's nine "
        "schedule families); one-cycle peaking at the range test's LR; `lrlab tune` (multivariate TPE, Hyperband "
        "pruning, the same families with ranges for their knobs, LRs 0.1x..10x the range test's) stopped at 2x the "
        "study's compute, and at a fifth of the grid's. The chosen configuration is then trained with three "
        "held-out seeds (1, 2, 3): final validation error (classifier) or loss (language model: nats per token; "
        "regression: MSE), mean ± sd, lower is better. Compute: optimizer steps, range tests included. "
        "A gap within 2 standard errors of the difference of the means is a tie.",
        "",
        "| task | method | final metric (3 held-out seeds) | compute (steps) | vs grid compute | runs/trials | choice |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        grid_steps = row["methods"]["grid"]["steps"]
        for method, m in row["methods"].items():
            lines.append(f"| {row['task']} | {method} | {m['mean']:.4g} ± {m['sd']:.2g} | {m['steps']} | "
                         f"{m['steps'] / grid_steps:.3f} | {m['runs']} | `{m['choice']}` |")  # fmt: skip
    for method in ("tune (2x study)", "tune (grid/5)"):
        lines += ["", f"Verdict, {method} against the grid:", ""]
        lines += [f"- {row['task']}: {_verdict(row, method)}." for row in rows]
    lines += ["", "Short-horizon bias (every pruned trial of the 2x-study tune trained to full length afterwards, "
              "not charged to it):", ""]  # fmt: skip
    for row in rows:
        t = row["methods"]["tune (2x study)"]
        low = "-" if t["pruned_low"] is None else f"{t['pruned_low']:.0%}"
        high = "-" if t["pruned_high"] is None else f"{t['pruned_high']:.0%}"
        lines.append(f"- {row['task']}: {t['pruned']} of {t['runs']} trials pruned ({low} of the trials below "
                     f"their optimizer's median peak LR, {high} above); {t['beat_best']} of {t['audited']} pruned "
                     f"trials beat the best unpruned trial at full length; the best at full length "
                     f"{'had been pruned' if t['best_was_pruned'] else 'was never pruned'}.")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
