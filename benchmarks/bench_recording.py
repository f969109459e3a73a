"""What recording a run costs, and the finder inside Lightning next to Lightning's own.

1. ``recording``: a plain PyTorch loop (an MLP 784-512-512-10, batch 128, SGD momentum 0.9,
   synthetic data) timed with and without ``lrlab.track`` + ``run.log`` on every step, in
   interleaved blocks (recorded, unrecorded, ...) so drift in the machine's load hits both
   alike; the overhead is the median block time ratio, with the spread over blocks.
2. ``lightning-finder``: on one model (an MLP on sklearn's digits, SGD momentum 0.9, batch
   64), per seed, ``lrlab.lightning.LRFinder``'s LR and Lightning's ``Tuner.lr_find``
   suggestion, each then trained 300 steps from the same initial weights; training accuracy
   over the whole training set.

Run: ``python -m benchmarks.bench_recording`` (``--no-write`` prints without writing
docs/benchmarks.md; ``--only recording`` or ``--only finder``).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
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


def recording(blocks: int = 30, steps: int = 50) -> dict:
    import lrlab

    torch.set_num_threads(1)
    _model, opt, step = _mlp_step_fn()
    for _ in range(20):
        step()
    plain, recorded = [], []
    with tempfile.TemporaryDirectory() as tmp, lrlab.track(opt, name="bench", db=Path(tmp) / "r.db") as run:
        for block in range(blocks):
            for recorded_first in (block % 2 == 1, block % 2 == 0):  # alternate which goes first
                t0 = time.perf_counter()
                if recorded_first:
                    for _ in range(steps):
                        run.log(loss=step())
                    recorded.append(time.perf_counter() - t0)
                else:
                    for _ in range(steps):
                        step()
                    plain.append(time.perf_counter() - t0)
        loss = step()
        t0 = time.perf_counter()
        for _ in range(1000):  # the cost of log() alone, on the same gradients
            run.log(loss=loss)
        log_ms = (time.perf_counter() - t0) / 1000 * 1e3
        written = run.steps
    ratios = [r / p for r, p in zip(recorded, plain)]
    return {
        "step_ms": statistics.median(plain) / steps * 1e3,
        "recorded_step_ms": statistics.median(recorded) / steps * 1e3,
        "overhead": statistics.median(ratios) - 1,
        "q1": float(np.quantile(ratios, 0.25)) - 1,
        "q3": float(np.quantile(ratios, 0.75)) - 1,
        "log_ms": log_ms,
        "log_share": log_ms / (statistics.median(plain) / steps * 1e3),
        "steps": written,
        "blocks": blocks,
    }


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
    parser.add_argument("--only", choices=["recording", "finder"])
    args = parser.parse_args()
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    CACHE.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "recording"):
        r = recording()
        body = (
            "## Recording a run (`python -m benchmarks.bench_recording`)\n\n"
            "A plain PyTorch loop (MLP 784-512-512-10, batch 128, SGD momentum 0.9, one thread), "
            f"{r['blocks']} interleaved blocks of 50 steps with and without `lrlab.track` + `run.log` every step "
            "(every group's LR, momentum, loss, gradient norm; rows written to SQLite in batches).\n\n"
            "| unrecorded step | recorded step | overhead (median) | overhead (quartiles) | `run.log` alone |\n"
            "|---|---|---|---|---|\n"
            f"| {r['step_ms']:.2f} ms | {r['recorded_step_ms']:.2f} ms | {r['overhead']:+.1%} | "
            f"{r['q1']:+.1%} .. {r['q3']:+.1%} | {r['log_ms']:.3f} ms ({r['log_share']:.1%} of a step) |\n\n"
            "The block ratio includes the machine's load changing between blocks; `run.log` alone is the "
            "recording cost itself (1000 calls on the same gradients, SQLite writes included).\n"
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
