"""A range test of a task: task -> model -> optimizer -> ``find_lr`` -> a stored record.

The one place this sequence lives; ``lrlab find`` and the study both call it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lrlab.core.records import FinderRecord

if TYPE_CHECKING:
    from lrlab.finder.result import FinderResult
    from lrlab.training.tasks import Task

__all__ = ["task_range_test"]


def task_range_test(
    task: Task,
    task_ref: str,
    optimizer: str,
    *,
    batch_size: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    sweep: str | None = None,
    progress: Callable[[int, int, float, float], None] | None = None,
    **finder_options: Any,
) -> tuple[FinderResult, FinderRecord]:
    """Run ``find_lr`` on a fresh model of ``task`` (weights and batch order from ``seed``)
    with ``optimizer`` (a spec), and return the result and its record for the store.

    ``task_ref`` is how runs name the task (``RunConfig.task``), so that the report finds
    the range test beside the runs. ``finder_options`` go to ``find_lr`` (``num_iter``,
    ``start_lr``, ``end_lr``, ``mode``, ``amp``, ``halving``...).
    """
    from lrlab.finder import find_lr
    from lrlab.optim.grammar import make_optimizer
    from lrlab.training.resolve import resolve_device

    torch_device = resolve_device(device)
    size = batch_size or task.default_batch_size
    model = task.make_model(seed).to(torch_device)
    opt = make_optimizer(optimizer, model.parameters(), finder_options.get("start_lr", 1e-7))
    result = find_lr(model, opt, task.loss_fn, task.train_loader(size, seed), progress=progress, **finder_options)
    record = result.to_record(
        task_ref, optimizer, sweep=sweep,
        config={"task": task_ref, **_options(task), "batch_size": size, "seed": seed, "device": str(torch_device)},
    )  # fmt: skip
    return result, record


def _options(task: Task) -> dict[str, Any]:
    """The task's options that are set (``{"task_options": {...}}``; nothing when none is),
    so that a stored range test names the variant of the task it measured."""
    options = {k: v for k, v in (getattr(task, "options", None) or {}).items() if v is not None}
    return {"task_options": options} if options else {}
