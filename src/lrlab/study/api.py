"""``lrlab.study(model_fn, train, val, ...)``: the whole study on the user's own model.

The model, data, loss and metrics are the user's; the study is the one of ``lrlab study``
(range tests, sweeps of schedules derived from them, a recommendation judged against the
seed noise, a report), stored in the lrlab store under the task's ``name``, so that a study
stopped half-way resumes where it was and ``lrlab report`` finds it.

Example (a regression MLP; ``train`` and ``val`` may be datasets, ``DataLoader`` objects
or ``(inputs, targets)`` tensor pairs)::

    import lrlab
    result = lrlab.study(lambda: nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 1)),
                         (x_train, y_train), (x_val, y_val), name="houses", epochs=10)
    print(result)                              # the recommendation, in words
    schedule = result.schedule_for(len(train_loader) * epochs)   # in your run's steps
    result.report("houses.html")
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lrlab.store.location import DEFAULT_DB

if TYPE_CHECKING:
    import torch
    from torch import nn

    from lrlab.core.horizon import HorizonAdvice
    from lrlab.core.verdict import StudyVerdict
    from lrlab.schedules import Schedule
    from lrlab.store.sqlite import Store
    from lrlab.study.recommend import Recommendation
    from lrlab.study.run import StudyResult
    from lrlab.training.tasks import Task

__all__ = ["TASK_KEYWORDS", "UserStudy", "study", "user_task"]

DEFAULT_EPOCHS = 10
DEFAULT_BATCH_SIZE = 32
DEFAULT_STORE = DEFAULT_DB  # the one default store, shared with the CLI, lrlab.track and the recorders


@dataclass(frozen=True)
class UserStudy:
    """What :func:`study` found: ``recommendation``, the stored ``sweeps`` (``name`` is the
    study's), the ``task`` it trained, and the store they are in (``store_path``)."""

    result: StudyResult
    task: Task
    store_path: Path

    @property
    def name(self) -> str:
        return self.result.name

    @property
    def sweeps(self) -> list[str]:
        return list(self.result.sweeps)

    @property
    def recommendation(self) -> Recommendation:
        return self.result.recommendation

    @property
    def schedule(self) -> Schedule:
        """The recommended schedule as measured, over the study's ``total_steps``."""
        return self.result.recommendation.best.schedule

    @property
    def optimizer(self) -> str:
        return self.result.recommendation.best.optimizer

    def schedule_for(self, total_steps: int) -> Schedule:
        """The recommended schedule for a run of ``total_steps`` optimizer steps
        (``len(train_loader) * epochs``): each step count (warmup, cycle, decay) keeps
        its fraction of the run, and the LRs follow the horizon law measured on the
        run-length ladder (``lrlab.core.horizon``; :meth:`horizon` says which rule and why).
        A run longer than the longest measured warns in one line."""
        from lrlab.study.codegen import schedule_for

        return schedule_for(self.schedule, self.result.total_steps, total_steps)

    def horizon(self, total_steps: int) -> HorizonAdvice:
        """What :meth:`schedule_for` does to the LR on a run of ``total_steps``: kept or scaled,
        with the interval, the reason in words, and a warning when the run is longer than the
        run lengths measured."""
        from lrlab.core.horizon import horizon_advice

        return horizon_advice(self.result.total_steps, total_steps)

    def code(self) -> dict[str, str]:
        """Code to paste for PyTorch, Lightning, Hugging Face and Keras."""
        from lrlab.study.summary import all_snippets

        return all_snippets(self.result)

    def report(self, path: str | Path, *, image_dir: str | Path | None = None) -> Path:
        """Write the study's HTML report to ``path``: the study's stored verdict first (the
        one ``print(result)`` gives), then every run and the range tests."""
        from lrlab.report import load_report_data, write_report
        from lrlab.store.sqlite import Store

        out = Path(path)
        if out.suffix.lower() not in (".html", ".htm"):
            raise ValueError(f"report path must end in .html, got {str(out)!r}")
        out.parent.mkdir(parents=True, exist_ok=True)
        store = Store(self.store_path)
        try:
            data = load_report_data(store, sweep=self.result.name)  # the study's record: its runs and verdict
            write_report(data, out, image_dir=None if image_dir is None else Path(image_dir))
        finally:
            store.close()
        return out

    @property
    def verdict(self) -> StudyVerdict:
        """The study's verdict: the lines ``print`` shows, the leaderboard, the tie rule, the compute."""
        return self.result.verdict

    def __str__(self) -> str:
        return "\n".join(self.result.verdict.lines)


def study(
    model_fn: Callable[[], nn.Module],
    train: Any = None,
    val: Any = None,
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    metrics: dict[str, Callable[..., Any]] | None = None,
    objective: str | None = None,
    higher_is_better: bool | None = None,
    kind: str | None = None,
    name: str | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    optimizers: Sequence[str] = ("sgd", "sgdm", "adam"),
    budget: str = "small",
    store: str | Path | Store = DEFAULT_STORE,
    device: str = "auto",
    out: str | Path | None = None,
    progress: Callable[[Any], None] | None = None,
    fresh: bool = False,
    schedules: Sequence[str] | None = None,
) -> UserStudy:
    """Run lrlab's learning-rate study on ``model_fn()`` (called after ``torch.manual_seed``)
    with the user's ``train`` and ``val`` data (datasets, ``DataLoader`` objects or
    ``(inputs, targets)`` tensors).

    ``kind`` is ``"classification"``, ``"regression"`` or ``"language_model"``; left out,
    it is read off the targets (floating point: regression, integers: classification).
    ``loss_fn``, ``metrics``, ``objective`` and ``higher_is_better`` make a custom task
    (see :class:`~lrlab.training.tasks.Task`). ``name`` names the task and its sweeps
    (default: ``model_fn``'s name); a study of the same name in the same store resumes, if
    its model (architecture and parameter shapes), data (sizes and a few rows) and task
    options are the same: otherwise it is a ``ValueError`` that says what changed, and
    ``fresh=True`` replaces the stored study (a new ``name`` keeps both).
    ``epochs`` is each run's length (default: the budget's share of 10), ``optimizers``
    specs or aliases, ``budget`` one of ``lrlab.study.BUDGETS``. ``device`` is ``"auto"``
    (CUDA when there is one), ``"cpu"`` or ``"cuda"``. With ``out`` (a folder) it also
    writes ``report.html``, ``figures/`` and ``recommendation.md`` there. ``schedules``
    names the schedule families to train (default: the nine of
    ``lrlab.study.plan.SCHEDULE_NAMES``; ``"plateau"`` is there on request, see
    ``lrlab.study.plan.STUDY_FAMILIES``).

    ``model_fn`` may instead be a training function declared with ``@lrlab.trainable`` (or
    its ``.task(**options)``): it builds its own model and data, so ``train`` and ``val``
    are left out, and the study brackets the LR by short trials from its ``lr_range``.
    """
    from lrlab.store.sqlite import Store
    from lrlab.study.plan import SCHEDULE_NAMES
    from lrlab.study.run import run_study
    from lrlab.training.resolve import resolve_device

    task = _trainable_task(model_fn, train, val, name) or user_task(
        model_fn, train, val, loss_fn=loss_fn, metrics=metrics, objective=objective,
        higher_is_better=higher_is_better, kind=kind, name=name, epochs=epochs, batch_size=batch_size,
    )  # fmt: skip
    where = str(resolve_device(device))
    if not isinstance(store, Store | str | Path):
        raise ValueError(f"store must be a path (str or Path) or a Store, got {type(store).__name__}")
    if isinstance(optimizers, str):
        optimizers = (optimizers,)  # one name, not its letters
    owned = not isinstance(store, Store)
    the_store = Store(Path(store)) if owned else store
    if owned:
        Path(store).parent.mkdir(parents=True, exist_ok=True)  # type: ignore[arg-type]
    try:
        result = run_study(task, the_store, budget=budget, optimizers=tuple(optimizers), device=where,
                           epochs=epochs, out=out, progress=progress, fresh=fresh,
                           schedules=SCHEDULE_NAMES if schedules is None else tuple(schedules))  # fmt: skip
        path = Path(the_store.path)
    finally:
        if owned:
            the_store.close()
    return UserStudy(result, task, path)


def _trainable_task(fn: Any, train: Any, val: Any, name: str | None = None) -> Any:
    """The task of a function declared with ``@lrlab.trainable`` (None for anything else):
    it builds its own model and data, so ``train`` and ``val`` must be left out."""
    import dataclasses

    from lrlab.training.trial_task import as_task, is_trainable

    if not is_trainable(fn):
        if train is None or val is None:
            raise ValueError("study() needs train and val data for model_fn, or a function declared with "
                             "@lrlab.trainable in its place")  # fmt: skip
        return None
    if train is not None or val is not None:
        raise ValueError("a function declared with @lrlab.trainable builds its own data: call study(fn) "
                         "without train and val")  # fmt: skip
    task = as_task(fn)
    return dataclasses.replace(task, name=name) if name else task


def user_task(model_fn: Callable[[], nn.Module], train: Any, val: Any, **options: Any) -> Task:
    """The :class:`~lrlab.training.tasks.Task` :func:`study` trains: the same ``model_fn``,
    ``train`` and ``val``, and :func:`study`'s keywords that describe the task
    (``TASK_KEYWORDS``: ``loss_fn``, ``metrics``, ``objective``, ``higher_is_better``,
    ``kind``, ``name``, ``epochs``, ``batch_size``)."""
    from lrlab.study.checks import MAX_EPOCHS, check_whole_number
    from lrlab.training.tasks import TensorPairs

    unknown = sorted(set(options) - set(TASK_KEYWORDS))
    if unknown:
        raise TypeError(f"user_task() got unexpected keyword arguments: {', '.join(unknown)}")
    if not callable(model_fn):
        raise ValueError(f"model_fn must be a function returning a fresh torch module, got {model_fn!r}")
    name = _task_name(model_fn, options.get("name"))
    check_whole_number("epochs", options.get("epochs"), MAX_EPOCHS)
    check_whole_number("batch_size", options.get("batch_size"), 2**31 - 1)
    metrics = options.get("metrics")
    if metrics is not None and not isinstance(metrics, dict):
        raise ValueError(f"metrics must be a dict of name -> function(output, target), got {type(metrics).__name__}")
    data = [_dataset_or_loader(label, value, TensorPairs) for label, value in (("train", train), ("val", val))]
    kind = options.get("kind") or _infer_kind(data[0])
    custom = {k: options[k] for k in _CUSTOM if options.get(k) is not None}
    return _build(name, kind, model_fn, data, options.get("epochs") or DEFAULT_EPOCHS, options.get("batch_size"),
                  custom)  # fmt: skip


# study()'s keywords that describe the task, and those of them that make a custom task.
TASK_KEYWORDS = ("loss_fn", "metrics", "objective", "higher_is_better", "kind", "name", "epochs", "batch_size")
_CUSTOM = ("loss_fn", "metrics", "objective", "higher_is_better")


def _task_name(model_fn: Callable[..., Any], name: str | None) -> str:
    """``name``, or ``model_fn``'s (``my_net`` -> ``my-net``; a lambda: ``model``)."""
    if name is None:
        name = getattr(model_fn, "__name__", "") or "model"
        name = "model" if name.startswith("<") else name.replace("_", "-")
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(f"name must be a plain name (no ':'), got {name!r}")
    return name


def _build(
    name: str,
    kind: str,
    model_fn: Callable[[], nn.Module],
    data: list[Any],
    epochs: int,
    batch_size: int | None,
    custom: dict[str, Any],
) -> Task:
    """The task on two loaders (their collation kept), else on the datasets of ``data``
    (a loader's batch size the default one)."""
    from torch.utils.data import DataLoader, Dataset

    from lrlab.training.tasks import Task

    if all(isinstance(d, DataLoader) for d in data):
        task = Task.from_loaders(name, model_fn, data[0], data[1], kind=kind, epochs=epochs, **custom)
        task.default_batch_size = batch_size or task.default_batch_size
        return task
    train_data, val_data = (d.dataset if isinstance(d, DataLoader) else d for d in data)
    for label, d in (("train", train_data), ("val", val_data)):
        if not isinstance(d, Dataset) and not hasattr(d, "__getitem__"):
            raise ValueError(f"{label} must be a Dataset, a DataLoader or (inputs, targets) tensors")
    size = batch_size or next((d.batch_size for d in data if isinstance(d, DataLoader) and d.batch_size), None)
    return Task(name, kind, epochs, size or DEFAULT_BATCH_SIZE, model_fn, train_data, val_data, **custom)


def _dataset_or_loader(label: str, value: Any, pairs: type) -> Any:
    import torch

    if isinstance(value, tuple | list) and len(value) == 2 and all(isinstance(v, torch.Tensor) for v in value):
        if len(value[0]) == 0:
            raise ValueError(f"{label} is empty (no examples): give it at least one (inputs, targets) example")
        return pairs(value[0], value[1])
    if hasattr(value, "__len__") and (hasattr(value, "__getitem__") or hasattr(value, "__iter__")):
        if len(value) == 0:
            raise ValueError(f"{label} is empty")
        return value
    raise ValueError(
        f"{label} must be a Dataset, a DataLoader or an (inputs, targets) pair of tensors, got {type(value).__name__}"
    )


def _infer_kind(data: Any) -> str:
    """``regression`` for floating-point targets, else ``classification``."""
    import torch
    from torch.utils.data import DataLoader

    try:
        sample = next(iter(data)) if isinstance(data, DataLoader) else data[0]
        target = sample[1]
    except (TypeError, IndexError, KeyError, StopIteration):
        raise ValueError("cannot read (inputs, targets) from the training data: pass kind=...") from None
    target = torch.as_tensor(target)
    return "regression" if target.is_floating_point() else "classification"
