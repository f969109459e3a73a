"""A synthetic-but-realistic sweep, for benchmarks, demos and tests of the report.

The curves follow the shape of real training at several LRs (the article's Figure 2):
a small LR learns slowly and overfits, a good LR converges, a large LR plateaus with a
large gradient (oscillation), a too-large LR diverges. Deterministic given ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from lrlab.store.records import EpochRecord, RunRecord, StepSeries

if TYPE_CHECKING:
    from lrlab.store.sqlite import Store


@dataclass
class SyntheticSweep:
    runs: list[RunRecord]
    epochs: dict[str, list[EpochRecord]]
    steps: dict[str, StepSeries]


def synthetic_sweep(
    lrs: tuple[float, ...] = (0.001, 0.01, 0.1, 0.5, 2.0),
    seeds: tuple[int, ...] = (0, 1),
    optimizers: tuple[str, ...] = ("sgd",),
    schedules: tuple[str, ...] = ("constant(lr={lr})",),
    *,
    epochs: int = 10,
    steps_per_epoch: int = 50,
    sweep: str = "synthetic",
    task: str = "digits-mlp",
    seed: int = 0,
) -> SyntheticSweep:
    """Runs for every (optimizer, schedule, lr, seed); ``{lr}`` in a schedule is replaced."""
    rng = np.random.default_rng(seed)
    out = SyntheticSweep([], {}, {})
    total = epochs * steps_per_epoch
    t = np.arange(total, dtype=np.float64)
    for optimizer in optimizers:
        for template in schedules:
            for lr in lrs:
                for s in seeds:
                    spec = template.replace("{lr}", repr(lr)).replace("{total_steps}", str(total))
                    config = {
                        "task": task, "optimizer": optimizer, "schedule": spec, "lr": lr, "seed": s,
                        "epochs": epochs, "batch_size": 32,
                    }  # fmt: skip
                    rid = f"{sweep}-{optimizer}-{_short(template)}-{lr:g}-s{s}"
                    run, eps, series = _one_run(rid, sweep, config, lr, t, steps_per_epoch, rng, spec)
                    out.runs.append(run)
                    out.epochs[rid] = eps
                    out.steps[rid] = series
    return out


def _short(template: str) -> str:
    return template.split("(")[0]


def _one_run(rid, sweep, config, lr, t, spe, rng, spec):  # type: ignore[no-untyped-def]
    from lrlab.schedules import parse

    lr_t = np.asarray(parse(spec)(t), dtype=np.float64)
    progress = np.cumsum(lr_t) * 0.05  # learning "distance" covered so far
    floor = 0.05 + 0.6 * max(0.0, np.log10(max(lr, 1e-9) / 0.1)) ** 2 * (lr > 0.1)
    loss = floor + (2.3 - floor) * np.exp(-progress)
    noise = rng.normal(0.0, 1.0, len(t))
    loss = loss * (1 + 0.05 * noise * min(1.0, lr_t.mean() * 4 + 0.2))
    grad = 0.3 + 2.0 * np.exp(-progress) + 3.0 * lr_t * (lr > 0.3) + 0.1 * np.abs(noise)
    status, diverged = "done", None
    if lr >= 1.5:
        diverged = int(rng.integers(max(2, len(t) // 10), max(3, len(t) // 4)))
        ramp = min(20, diverged)
        loss[diverged - ramp : diverged] *= np.geomspace(1, 50, ramp)
        loss[diverged] = np.inf
        grad[diverged - ramp : diverged + 1] *= np.geomspace(1, 1e4, ramp + 1)
        loss, grad, lr_t, t = (
            loss[: diverged + 1],
            grad[: diverged + 1],
            lr_t[: diverged + 1],
            t[: diverged + 1],
        )
        status = "diverged"
    n = len(t)
    epoch = (t // spe + 1).astype(np.int64)
    momentum = np.full(n, 0.9) if "momentum" in config["optimizer"] else np.full(n, np.nan)
    series = StepSeries(rid, t.astype(np.int64), epoch, lr_t, lr_t[:, None], momentum, loss, grad)
    records = []
    # Small LRs overfit late: the validation loss turns back up while training keeps falling.
    overfit = 0.04 * (lr <= 0.01)
    for e in range(1, int(config["epochs"]) + 1):
        end = e * spe
        if end > n or (diverged is not None and end > diverged):
            break
        train = float(np.mean(loss[end - spe : end]))
        val = train + 0.03 + overfit * max(0, e - 4) ** 1.3 + 0.01 * rng.normal()
        error = min(0.9, 0.02 + 0.4 * val)
        records.append(EpochRecord(rid, e, end, train, val, error, 1 - error, float(e)))
    run = RunRecord(rid, sweep, status, config, config["seed"], diverged_step=diverged)
    return run, records, series


def save_to_store(store: Store, sweep: SyntheticSweep, name: str | None = None) -> None:
    """Write ``sweep`` into a real store through its run lifecycle (begin, metrics, end);
    ``name`` (default: the runs' own sweep name) is the sweep they are filed under."""
    from dataclasses import replace

    if name is not None:
        store.upsert_sweep(name, {"synthetic": True})
    for run in sweep.runs:
        store.begin_run(replace(run, sweep=name or run.sweep))
        series = sweep.steps[run.id]
        rows = [
            (int(s), int(e), [float(lr)], None if np.isnan(m) else float(m), float(loss), float(g))
            for s, e, lr, m, loss, g in zip(
                series.step, series.epoch, series.lr, series.momentum, series.loss, series.grad_norm
            )
        ]
        store.append_metrics(run.id, rows, sweep.epochs[run.id])
        store.end_run(run.id, run.status, diverged_step=run.diverged_step)
