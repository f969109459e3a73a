"""A synthetic-but-realistic sweep, for benchmarks, demos and tests of the report.

The curves follow the shape of real training at several LRs (the article's Figure 2):
a small LR learns slowly and overfits, a good LR converges, a large LR plateaus with a
large gradient (oscillation), a too-large LR diverges. Deterministic given ``seed``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from lrlab.core.records import EpochRecord, FinderRecord, RunRecord, StepSeries

if TYPE_CHECKING:
    from lrlab.store.sqlite import Store


@dataclass
class SyntheticSweep:
    runs: list[RunRecord]
    epochs: dict[str, list[EpochRecord]]
    steps: dict[str, StepSeries]
    finders: list[FinderRecord] = field(default_factory=list)


Template = str | Callable[[float, int], str]


def synthetic_sweep(
    lrs: tuple[float, ...] = (0.001, 0.01, 0.1, 0.5, 2.0),
    seeds: tuple[int, ...] = (0, 1),
    optimizers: tuple[str, ...] = ("sgd",),
    schedules: tuple[Template, ...] = ("constant(lr={lr})",),
    *,
    epochs: int = 10,
    steps_per_epoch: int = 50,
    sweep: str = "synthetic",
    task: str = "digits-mlp",
    seed: int = 0,
    lr_scale: Mapping[str, float] | None = None,
) -> SyntheticSweep:
    """Runs for every (optimizer, schedule, lr, seed); ``{lr}`` and ``{total_steps}`` in a
    schedule are replaced (a callable template gets ``(lr, total_steps)``). ``lr_scale``
    maps an optimizer to how much larger its LRs act (Adam's 1e-3 acts like SGD's 0.3):
    its grid is ``lrs / scale``, so every optimizer has its own U-curve on the LR axis."""
    rng = np.random.default_rng(seed)
    out = SyntheticSweep([], {}, {})
    total = epochs * steps_per_epoch
    t = np.arange(total, dtype=np.float64)
    for optimizer in optimizers:
        scale = (lr_scale or {}).get(optimizer, 1.0)
        for template in schedules:
            for base in lrs:
                lr = float(f"{base / scale:.4g}")
                for s in seeds:
                    if callable(template):
                        spec = template(lr, total)
                    else:
                        spec = template.replace("{lr}", repr(lr)).replace("{total_steps}", str(total))
                    config = {
                        "task": task, "optimizer": optimizer, "schedule": spec, "lr": lr, "seed": s,
                        "epochs": epochs, "batch_size": 32,
                    }  # fmt: skip
                    rid = f"{sweep}-{optimizer}-{_short(spec)}-{lr:g}-s{s}"
                    rid = f"{rid}-{len(out.runs)}" if rid in out.steps else rid
                    run, eps, series = _one_run(rid, sweep, config, lr, t, steps_per_epoch, rng, spec, scale)
                    out.runs.append(run)
                    out.epochs[rid] = eps
                    out.steps[rid] = series
    return out


# The schedules a study compares (lrlab.study.plan.study_schedules), as templates.
STUDY_SCHEDULES: tuple[Template, ...] = (
    "constant(lr={lr})",
    lambda lr, n: f"step_decay(lr={lr!r}, step_size={-(-n // 3)}, gamma=0.1)",
    lambda lr, n: f"exponential(lr={lr!r}, decay_rate=0.01, decay_steps={n})",
    "cosine(lr={lr}, total_steps={total_steps})",
    lambda lr, n: f"warmup(cosine(lr={lr!r}, total_steps={n - max(1, n // 20)}), steps={max(1, n // 20)})",
    lambda lr, n: f"cyclic(base_lr={lr / 3:.4g}, max_lr={lr * 3:.4g}, step_size={max(1, n // 6)})",
    lambda lr, n: f"cyclic(base_lr={lr / 3:.4g}, max_lr={lr * 3:.4g}, step_size={max(1, n // 6)}, mode='triangular2')",
    lambda lr, n: f"cyclic(base_lr={lr / 3:.4g}, max_lr={lr * 3:.4g}, step_size={max(1, n // 6)}, shape='sine', cycle_decay=0.5)",
    lambda lr, n: f"one_cycle(max_lr={lr * 3:.4g}, total_steps={n})",
)  # fmt: skip
STUDY_OPTIMIZERS = ("sgd", "sgd(momentum=0.9)", "adam")
STUDY_LR_SCALE = {"sgd": 1.0, "sgd(momentum=0.9)": 10.0, "adam": 300.0}


def study_sweep(
    lrs: tuple[float, ...] = (0.03, 0.1),
    seeds: tuple[int, ...] = (0,),
    *,
    epochs: int = 10,
    steps_per_epoch: int = 50,
    sweep: str = "study",
    seed: int = 0,
) -> SyntheticSweep:
    """Shaped like ``lrlab study``: 3 optimizers x the study's 9 schedules x ``lrs`` x
    ``seeds`` (the defaults: 54 runs, like the small budget), each optimizer at its own LRs,
    with one range test per optimizer. The cyclic and one-cycle schedules peak at 3x the LR,
    so the largest LRs diverge there first."""
    out = synthetic_sweep(
        lrs, seeds, STUDY_OPTIMIZERS, STUDY_SCHEDULES, epochs=epochs, steps_per_epoch=steps_per_epoch,
        sweep=sweep, seed=seed, lr_scale=STUDY_LR_SCALE,
    )  # fmt: skip
    out.finders = [synthetic_finder(o, STUDY_LR_SCALE[o], sweep=sweep) for o in STUDY_OPTIMIZERS]
    return out


def synthetic_finder(optimizer: str, scale: float = 1.0, *, sweep: str | None = None) -> FinderRecord:
    """A range test whose loss falls from 2.3 and blows up near lr=1.5 (divided by ``scale``)."""
    lrs = np.geomspace(1e-5, 10.0, 100) / scale
    acting = lrs * scale
    losses = 2.3 - 1.6 * np.tanh(acting / 0.05) + 40 * np.maximum(0.0, acting - 0.6) ** 2
    rid = f"finder-{optimizer}-{scale:g}"
    best = float(lrs[np.argmin(losses)])
    return FinderRecord(
        rid, "digits-mlp", optimizer, lrs, losses, losses.copy(), {"minimum/10": best / 10, "valley": best / 4},
        best / 10, "minimum/10", base_lr=best / 30, max_lr=best / 3, sweep=sweep, config={"rule": "minimum/10"},
    )  # fmt: skip


def _short(template: str) -> str:
    return template.split("(")[0]


def _one_run(rid, sweep, config, lr, t, spe, rng, spec, scale=1.0):  # type: ignore[no-untyped-def]
    from lrlab.schedules import parse

    lr_t = np.asarray(parse(spec)(t), dtype=np.float64)
    config = dict(config)
    lr_act = lr_t * scale  # how the curve reacts: the optimizer's LR as SGD would feel it
    lr, lr_t, recorded = lr * scale, lr_act, lr_t
    progress = np.cumsum(lr_t) * 0.05  # learning "distance" covered so far
    floor = 0.05 + 0.6 * max(0.0, np.log10(max(lr, 1e-9) / 0.1)) ** 2 * (lr > 0.1)
    loss = floor + (2.3 - floor) * np.exp(-progress)
    noise = rng.normal(0.0, 1.0, len(t))
    loss = loss * (1 + 0.05 * noise * min(1.0, lr_t.mean() * 4 + 0.2))
    grad = 0.3 + 2.0 * np.exp(-progress) + 3.0 * lr_t * (lr > 0.3) + 0.1 * np.abs(noise)
    status, diverged = "done", None
    if lr_t.max() >= 1.5:
        diverged = int(rng.integers(max(2, len(t) // 10), max(3, len(t) // 4)))
        ramp = min(20, diverged)
        loss[diverged - ramp : diverged] *= np.geomspace(1, 50, ramp)
        loss[diverged] = np.inf
        grad[diverged - ramp : diverged + 1] *= np.geomspace(1, 1e4, ramp + 1)
        loss, grad, lr_t, t, recorded = (
            loss[: diverged + 1],
            grad[: diverged + 1],
            lr_t[: diverged + 1],
            t[: diverged + 1],
            recorded[: diverged + 1],
        )
        status = "diverged"
    n = len(t)
    epoch = (t // spe + 1).astype(np.int64)
    has_momentum = "momentum" in config["optimizer"] or config["optimizer"] == "adam"
    momentum = np.full(n, 0.9 if has_momentum else np.nan)
    recorded = recorded[:n]
    series = StepSeries(rid, t.astype(np.int64), epoch, recorded, recorded[:, None], momentum, loss, grad)
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
    for finder in sweep.finders:
        store.save_finder_result(finder)
