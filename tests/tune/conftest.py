"""A tiny digits task for tune tests: 4 steps an epoch."""

from __future__ import annotations

from typing import Any

TINY = {"train_size": 128, "val_size": 64}


def tiny_spec(name: str = "t", **changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name,
        "task": "digits-linear",
        "task_options": dict(TINY),
        "epochs": 3,
        "batch_size": 32,
        "trials": 6,
        "sampler": "random",
        "space": {
            "optimizer": ["sgd(momentum=0.9)", "adam"],
            "cosine": {"lr": {"log": [1e-3, 1.0]}},
            "cyclic": {"max_lr": {"log": [0.01, 1.0]}, "base_lr": {"ratio": [0.05, 0.5]},
                       "step_size": {"epochs": [0.5, 1.5]}, "shape": ["triangle", "sine"]},
        },
    }  # fmt: skip
    spec.update(changes)
    return spec
