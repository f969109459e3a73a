"""Records built directly (real input data for the pure report functions)."""

from __future__ import annotations

import numpy as np

from lrlab.core.records import EpochRecord, RunRecord, StepSeries


def run(rid, lr, seed=0, status="done", diverged_step=None, sweep="s", **config):
    cfg = {"task": "digits-mlp", "optimizer": "sgd", "schedule": f"constant(lr={lr!r})", "lr": lr,
           "seed": seed, "epochs": 5, "batch_size": 32, **config}  # fmt: skip
    return RunRecord(rid, sweep, status, cfg, seed, diverged_step=diverged_step)


def epochs(rid, train, val, error=None, spe=10):
    error = error if error is not None else [None] * len(train)
    return [
        EpochRecord(rid, e + 1, (e + 1) * spe, t, v, err, None if err is None else 1 - err, float(e))
        for e, (t, v, err) in enumerate(zip(train, val, error))
    ]


def steps(rid, loss, grad, lr=0.1, epoch_len=10):
    loss = np.asarray(loss, dtype=np.float64)
    n = len(loss)
    lrs = np.broadcast_to(np.asarray(lr, dtype=np.float64), (n,)).copy()
    return StepSeries(rid, np.arange(n), np.arange(n) // epoch_len + 1, lrs, lrs[:, None], np.full(n, np.nan),
                      loss, np.asarray(grad, dtype=np.float64))  # fmt: skip
