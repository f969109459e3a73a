"""Typed runs for tests: a config dict with sweep-file placeholders -> a ``RunConfig``."""

from __future__ import annotations

from typing import Any

from lrlab.core.records import RunConfig
from lrlab.sweeps import substitute
from lrlab.training.resolve import steps_per_epoch
from lrlab.training.tasks import get_task


def typed_config(config: dict[str, Any]) -> RunConfig:
    """``{lr}``, ``{total_steps}`` and ``{steps_per_epoch}`` in the schedules are filled as a
    sweep fills them (a task that cannot be built counts one step per epoch: its run fails)."""
    config = dict(config)
    try:
        task = get_task(config["task"], **config.get("task_options", {}))
        per_epoch = steps_per_epoch(task, config.get("batch_size") or task.default_batch_size)
        epochs = config.get("epochs") or task.default_epochs
    except (ValueError, RuntimeError):
        per_epoch, epochs = 1, config.get("epochs") or 1
    numbers = {"lr": config["lr"], "total_steps": epochs * per_epoch, "steps_per_epoch": per_epoch}
    for key in ("schedule", "momentum"):
        if isinstance(config.get(key), str):
            config[key] = substitute(config[key], **numbers)
    return RunConfig.from_dict(config)
