"""What recording a run costs, and the finder inside Lightning next to Lightning's own.

1. ``recording``: a plain PyTorch loop (an MLP 784-512-512-10, batch 128, SGD momentum 0.9,
   synthetic data) in two identical copies, one recorded by ``lrlab.track`` + ``run.log`` on
   every step, one not, stepped alternately so drift in the machine's load hits both alike;
   the overhead is the ratio of their median step times (wall and CPU), median over repeats.
2. ``lightning-finder``: on one model (an MLP on sklearn's digits, SGD momentum 0.9, batch
   64), per seed, ``lrlab.lightning.LRFinder``'s LR and Lightning's ``Tuner.lr_find``
   suggestion, each then trained 300 steps from the same initial weights; training accuracy
   over the whole training set.

Run: ``python -m benchmarks.bench_recording`` (``--no-write`` prints without writing
docs/benchmarks.md; ``--only recording`` or ``--only finder``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks._common import write_section

CACHE = Path("lrlab-runs") / "bench_recording"


def _mlp_step_fn(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512),
                                torch.nn.ReLU(), torch.nn.Linear(512, 10))  # fmt: skip
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(128, 784), torch.randint(0, 10, (128,))

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return model, opt, step


def recording(repeats: int = 7, steps: int = 300, warmup: int = 30) -> dict:
    """Three identical models and optimizers, one recorded by ``lrlab.track`` (``run.log`` every
    step), one not, one that only reads its gradients' norms in a step pre-hook (the bound),
    stepped in turn in a random order per step: each step's wall and CPU time. Per
    repeat the overhead is the recorded arm's median step over the plain arm's, and the same
    with means (which include the batched SQLite writes); the result is the median over
    repeats with their range."""
    import lrlab

    torch.set_num_threads(1)
    _m, _o, plain = _mlp_step_fn()
    _m2, opt, recorded = _mlp_step_fn()  # same seed: the same weights, data and work
    model3, opt3, bound = _mlp_step_fn()  # the bound: every gradient read once, nothing else
    params3, kept = list(model3.parameters()), []
    opt3.register_step_pre_hook(lambda *_: kept.append(torch._foreach_norm([p.grad for p in params3])))
    load_before = os.getloadavg()
    repeat_rows = []
    with tempfile.TemporaryDirectory() as tmp, lrlab.track(opt, name="bench", db=Path(tmp) / "r.db") as run:

        def logged():
            run.log(loss=recorded())

        arms = (("plain", plain), ("recorded", logged), ("bound", bound))
        shuffle = random.Random(0)
        for _ in range(warmup):
            for _arm, fn in arms:
                fn()
        for _ in range(repeats):
            wall: dict[str, list[float]] = {arm: [] for arm, _fn in arms}
            cpu: dict[str, list[float]] = {arm: [] for arm, _fn in arms}
            for _i in range(steps):
                kept.clear()
                order = list(arms)
                shuffle.shuffle(order)  # each arm after each other (and itself) alike, on average
                for arm, fn in order:
                    t0, c0 = time.perf_counter(), time.thread_time()
                    fn()
                    cpu[arm].append(time.thread_time() - c0)
                    wall[arm].append(time.perf_counter() - t0)
            repeat_rows.append({
                "plain_ms": statistics.median(wall["plain"]) * 1e3,
                "recorded_ms": statistics.median(wall["recorded"]) * 1e3,
                "wall": statistics.median(wall["recorded"]) / statistics.median(wall["plain"]) - 1,
                "cpu": statistics.median(cpu["recorded"]) / statistics.median(cpu["plain"]) - 1,
                "wall_mean": statistics.mean(wall["recorded"]) / statistics.mean(wall["plain"]) - 1,
                "cpu_mean": statistics.mean(cpu["recorded"]) / statistics.mean(cpu["plain"]) - 1,
                "bound": statistics.median(wall["bound"]) / statistics.median(wall["plain"]) - 1,
            })  # fmt: skip
        loss = recorded()
        t0 = time.perf_counter()
        for _ in range(1000):  # the cost of log() alone, on the same (cache-warm) gradients
            run.log(loss=loss)
        log_ms = (time.perf_counter() - t0) / 1000 * 1e3
        written = run.steps
    load_after = os.getloadavg()

    def summary(key: str) -> dict:
        values = [row[key] for row in repeat_rows]
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}

    step_ms = statistics.median(row["plain_ms"] for row in repeat_rows)
    return {
        "step_ms": step_ms,
        "recorded_step_ms": statistics.median(row["recorded_ms"] for row in repeat_rows),
        **{key: summary(key) for key in ("wall", "cpu", "wall_mean", "cpu_mean", "bound")},
        "log_ms": log_ms,
        "log_share": log_ms / step_ms,
        "steps": written,
        "repeats": repeats,
        "steps_per_repeat": steps,
        "load_before": load_before,
        "load_after": load_after,
        "cpus": os.cpu_count(),
        "repeat_rows": repeat_rows,
    }


INSTRUMENT_ARMS = (
    ("track, instruments off", False),
    ("track, default instruments", None),
    ("default instruments with probe_loss= (the step probe on)", "default+probe"),
    ("update_ratio alone", "update_ratio"),
    ("lr_audit alone", "lr_audit"),
    ("spikes alone", "spikes"),
    ("step_probe alone (3 forward passes every 10 steps)", "step_probe"),
    ("sharpness every 100 steps (off by default)", "sharpness"),
)


def instrument_costs(repeats: int = 3, steps: int = 150, warmup: int = 20) -> dict:
    """The share of a step each instrument costs: the MLP of :func:`recording` in one copy per
    arm (unrecorded; recorded by ``lrlab.track`` with no instruments, the default ones, each
    default one alone, the sharpness every 100 steps), stepped in turn in a random order per
    step; per arm the median step over the unrecorded median step, median over repeats. An
    instrument's share is its arm's overhead minus that of tracking with no instruments."""
    import lrlab
    from lrlab.schedules import constant

    torch.set_num_threads(1)
    _m, _o, plain = _mlp_step_fn()
    arms: list[tuple[str, Any]] = [("unrecorded", plain)]
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        for index, (label, which) in enumerate(INSTRUMENT_ARMS):
            model, opt, step_fn = _mlp_step_fn()
            x, y = torch.randn(128, 784), torch.randint(0, 10, (128,))

            def probe(model=model, x=x, y=y):
                return torch.nn.functional.cross_entropy(model(x), y)

            probed = which in ("sharpness", "step_probe", "default+probe")
            run = stack.enter_context(lrlab.track(
                opt, name="bench", db=Path(tmp) / f"r{index}.db", schedule=constant(0.01),
                instruments=None if which == "default+probe" else which, probe_loss=probe if probed else None,
            ))  # fmt: skip
            arms.append((label, lambda run=run, step_fn=step_fn: run.log(loss=step_fn())))
        shuffle = random.Random(0)
        for _ in range(warmup):
            for _arm, fn in arms:
                fn()
        rows = []
        for _ in range(repeats):
            wall: dict[str, list[float]] = {arm: [] for arm, _fn in arms}
            for _i in range(steps):
                order = list(arms)
                shuffle.shuffle(order)
                for arm, fn in order:
                    t0 = time.perf_counter()
                    fn()
                    wall[arm].append(time.perf_counter() - t0)
            base, mean = statistics.median(wall["unrecorded"]), statistics.mean(wall["unrecorded"])
            row = {arm: statistics.median(v) / base - 1 for arm, v in wall.items()}
            row |= {f"{arm} (mean)": statistics.mean(v) / mean - 1 for arm, v in wall.items()}
            rows.append(row | {"step_ms": base * 1e3})
    keys = [arm for arm, _fn in arms] + [f"{arm} (mean)" for arm, _fn in arms]
    result = {key: statistics.median(r[key] for r in rows) for key in keys}
    result["step_ms"] = statistics.median(r["step_ms"] for r in rows)
    result["repeats"], result["steps"] = repeats, steps
    return result


def vectorized_instrument_costs(repeats: int = 5, members: int = 16) -> dict:
    """The instruments of a vectorised group (the update ratio of every member at every step,
    the step probe every 10): ``members`` digits-mlp runs (Adam, batch 32, 3 epochs) trained
    together with the default instruments and with none, alternately, ``repeats`` times; the
    median wall time of each and their ratio."""
    from lrlab.core.records import RunConfig
    from lrlab.store.sqlite import Store
    from lrlab.training.vectorized.trainer import train_vectorized

    torch.set_num_threads(1)
    base = RunConfig(task="digits-mlp", lr=0.01, optimizer="adam", epochs=3, batch_size=32, seed=0)
    configs = [base.replace(lr=1e-3 * 1.2**i, schedule=None) for i in range(members)]
    times: dict[str, list[float]] = {"off": [], "default": []}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(repeats + 1):  # the first pair warms up, unmeasured
            for arm, setting in (("off", False), ("default", None)) if rep % 2 else (("default", None), ("off", False)):
                t0 = time.perf_counter()
                train_vectorized(configs, Store(Path(tmp) / f"{arm}{rep}.db"), [f"r{i}" for i in range(members)],
                                 instruments=setting)  # fmt: skip
                if rep:
                    times[arm].append(time.perf_counter() - t0)
    off, on = statistics.median(times["off"]), statistics.median(times["default"])
    return {"off_s": off, "default_s": on, "overhead": on / off - 1, "repeats": repeats, "members": members,
            "load": os.getloadavg()[0]}  # fmt: skip


def _vectorized_section(r: dict) -> str:
    return (
        "### The same instruments in a vectorised group\n\n"
        f"{r['members']} digits-mlp runs (Adam, batch 32, 3 epochs) trained together by the vectorised "
        "trainer, with the default instruments (the update ratio of every member at every step, the step "
        f"probe every 10 steps on a batch of 32) and with none, alternately, {r['repeats']} times: median "
        f"{r['default_s']:.2f} s against {r['off_s']:.2f} s, **{r['overhead']:+.0%}** (load average "
        f"{r['load']:.1f} after). Off with `instruments=False` where the time matters more than the readings."
    )


def _instrument_section(r: dict) -> str:
    off = r["track, instruments off"]
    lines = [
        "## What each instrument costs (`python -m benchmarks.bench_recording --only instruments`)\n",
        "The MLP of the section above (one thread, SGD momentum 0.9, batch 128), one copy per arm, stepped in "
        f"turn in a random order per step, {r['repeats']} repeats of {r['steps']} steps; the median step of each "
        f"arm over the unrecorded median step ({r['step_ms']:.2f} ms). An instrument's share is its arm's "
        "overhead minus that of `lrlab.track` with `instruments=False`; the mean step counts the rare "
        "expensive ones (the step probe every 10 steps, the sharpness every 100, the SQLite writes), the median "
        "does not. The step probe and the sharpness read the loss of a fixed batch of 128 (`probe_loss=`).\n",
        "| arm | overhead, median step | overhead, mean step | the instrument's share (median) | share (mean) |",
        "|---|---|---|---|---|",
    ]
    off_mean = r["track, instruments off (mean)"]
    for label, _which in INSTRUMENT_ARMS:
        mean = r[f"{label} (mean)"]
        shares = (
            ("-", "-")
            if label == "track, instruments off"
            else (f"{r[label] - off:+.1%}", f"{mean - off_mean:+.1%}")
        )
        lines.append(f"| {label} | {r[label]:+.1%} | {mean:+.1%} | {shares[0]} | {shares[1]} |")
    lines.append(
        "\nThe update ratio copies the weights into buffers it keeps before each step and takes fused norms "
        "before and after it; the LR "
        "audit and the spike rule read numbers already on the host, in batches. `warmup` and `eval_mode` "
        "add no work of their own (they read the update ratio and a flag). The step probe runs three forward "
        "passes of its batch every 10th step (none on the others), so its cost shows in the mean step only."
    )
    return "\n".join(lines)


def _digits(seed: int):
    from sklearn.datasets import load_digits
    from torch.utils.data import DataLoader, TensorDataset

    data = load_digits()
    x = torch.tensor(data.data / 16.0, dtype=torch.float32)
    y = torch.tensor(data.target, dtype=torch.long)
    g = torch.Generator().manual_seed(seed)
    return x, y, DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True, generator=g)


def _module(lr: float):
    import lightning.pytorch as pl

    class MLP(pl.LightningModule):
        def __init__(self, lr: float) -> None:
            super().__init__()
            self.lr = lr
            self.net = torch.nn.Sequential(
                torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)
            )

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)

    return MLP(lr)


def _trainer(**kw):
    import lightning.pytorch as pl

    return pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, accelerator="cpu", **kw)  # fmt: skip


def _train_accuracy(seed: int, lr: float, steps: int = 300) -> float:
    torch.manual_seed(seed)
    x, y, loader = _digits(seed)
    model = _module(lr)
    _trainer(max_steps=steps).fit(model, loader)
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def finder(seeds=(0, 1, 2)) -> list[dict]:
    from lightning.pytorch.tuner import Tuner

    from lrlab.lightning import LRFinder

    rows = []
    for seed in seeds:
        torch.manual_seed(seed)
        _x, _y, loader = _digits(seed)
        callback = LRFinder()
        _trainer(max_steps=1, callbacks=[callback]).fit(_module(1e-3), loader)  # the test, then 1 step
        ours = callback.lr
        torch.manual_seed(seed)
        _x, _y, loader = _digits(seed)
        model = _module(1e-3)
        with tempfile.TemporaryDirectory() as tmp:  # its checkpoint goes there, not in the cwd
            tuner = Tuner(_trainer(max_steps=1, default_root_dir=tmp))
            found = tuner.lr_find(model, train_dataloaders=loader, update_attr=False)
        theirs = float(found.suggestion())
        rows.append({"seed": seed, "lrlab": ours, "lightning": theirs,
                     "acc_lrlab": _train_accuracy(seed, ours), "acc_lightning": _train_accuracy(seed, theirs)})  # fmt: skip
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--only", choices=["recording", "finder", "instruments"])
    args = parser.parse_args()
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    CACHE.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "instruments"):
        body = _instrument_section(instrument_costs()) + "\n\n" + _vectorized_section(vectorized_instrument_costs())
        print(body)
        if not args.no_write:
            write_section("instrument-costs", body)
    if args.only in (None, "recording"):
        r = recording()

        def pct(key: str) -> str:
            v = r[key]
            return f"{v['median']:+.1%} ({v['min']:+.1%} .. {v['max']:+.1%})"

        load = f"{r['load_before'][0]:.1f} before, {r['load_after'][0]:.1f} after"
        body = (
            "## Recording a run (`python -m benchmarks.bench_recording`)\n\n"
            "A plain PyTorch loop: an MLP 784-512-512-10 (670k parameters), batch 128, cross-entropy, SGD "
            "momentum 0.9, one thread; a step is `zero_grad`, forward, backward, `step`. Three identical "
            "copies (same weights, data and work): one recorded with `lrlab.track` + `run.log(loss=...)` "
            "every step (every group's LR, momentum, loss, gradient norm; rows written to SQLite every "
            "1000 steps), one not, and one whose only addition is a step pre-hook reading every "
            "gradient's norm (`torch._foreach_norm`), the least any recorder of the per-step gradient "
            "norm can cost; stepped in turn, in a fresh random order each step, so that the machine's load "
            "and the cache left by the step before hit all alike; "
            f"{r['repeats']} repeats of {r['steps_per_repeat']} steps each. Overhead: the recorded "
            "median step over the unrecorded median step, per repeat; the median over repeats and "
            "(in brackets) their range. The mean-based ratio includes the SQLite writes.\n\n"
            "| unrecorded step | recorded step | overhead, wall (median step) | overhead, CPU (median step) "
            "| overhead, wall (mean step) | bound: the gradient norm alone, wall | `run.log` alone |\n"
            "|---|---|---|---|---|---|---|\n"
            f"| {r['step_ms']:.2f} ms | {r['recorded_step_ms']:.2f} ms | {pct('wall')} | {pct('cpu')} | "
            f"{pct('wall_mean')} | {pct('bound')} | {r['log_ms']:.3f} ms ({r['log_share']:.1%} of a step) |\n\n"
            f"Recording costs {r['wall']['median'] - r['bound']['median']:+.1%} of a step beyond reading the "
            "gradients once.\n\n"
            "Almost all of the cost is the gradient norm: reading every gradient once (2.7 MB here). "
            "`lrlab.track` takes it inside `optimizer.step()`, before the update, while backward's "
            "gradients are still in the CPU's cache; `run.log` alone repeats log() on the same, "
            "cache-warm gradients. Losses stay tensors until 50 steps are read at once.\n\n"
            f"Machine: {r['cpus']} CPU cores shared with other work (load average, 1 min: {load}), "
            f"torch {torch.__version__}.\n"
        )
        print(body)
        (CACHE / "recording.json").write_text(json.dumps(r))
        if not args.no_write:
            write_section("recording", body)
    if args.only in (None, "finder"):
        rows = finder()
        (CACHE / "finder.json").write_text(json.dumps(rows))
        lines = [
            "## The finder inside Lightning (`python -m benchmarks.bench_recording --only finder`)\n",
            "An MLP 64-128-10 on sklearn's digits (SGD momentum 0.9, batch 64), per seed: the LR of "
            "`lrlab.lightning.LRFinder` and of Lightning's `Tuner.lr_find().suggestion()`, each then trained "
            "300 steps from the same initial weights; accuracy over the training set.\n",
            "| seed | lrlab LR | train acc | Lightning LR | train acc |",
            "|---|---|---|---|---|",
        ]
        for row in rows:
            lines.append(f"| {row['seed']} | {row['lrlab']:.3g} | {row['acc_lrlab']:.3f} | "
                         f"{row['lightning']:.3g} | {row['acc_lightning']:.3f} |")  # fmt: skip
        body = "\n".join(lines) + "\n"
        print(body)
        if not args.no_write:
            write_section("lightning-finder", body)


if __name__ == "__main__":
    main()
