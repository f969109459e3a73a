"""A user task: any function returning an ``lrlab.training.tasks.Task``.

Use it from a sweep file (``task = "examples/my_task.py:two_moons"``) or the command
line (``lrlab find --task examples/my_task.py:two_moons``). Keyword options come from
the sweep file's ``task_options`` table.

    lrlab sweep examples/my_task.toml
"""

from __future__ import annotations

import torch
from sklearn.datasets import make_moons
from torch import nn

from lrlab.training.tasks import Task, TensorPairs


def two_moons(samples: int = 1000, noise: float = 0.2, hidden: int = 32) -> Task:
    """Two interleaving half-circles, a small MLP classifier; a fixed 80/20 split."""
    x, y = make_moons(n_samples=samples, noise=noise, random_state=0)
    x = torch.tensor(x, dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.long)
    cut = int(0.8 * samples)

    def model() -> nn.Module:
        return nn.Sequential(
            nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 2)
        )

    return Task(
        name="two-moons",
        kind="classification",  # or "language_model": outputs (batch, time, vocab)
        default_epochs=20,
        default_batch_size=32,
        model_factory=model,  # called after torch.manual_seed(seed)
        train_data=TensorPairs(x[:cut], y[:cut]),
        val_data=TensorPairs(x[cut:], y[cut:]),
        options={"samples": samples, "noise": noise, "hidden": hidden},
    )
