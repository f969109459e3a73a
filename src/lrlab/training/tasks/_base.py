"""The Task type: a model factory, deterministic data loaders, a loss and metrics."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from lrlab.core.records import Objective

__all__ = ["TASK_KINDS", "Task", "TensorPairs", "batch_count", "fingerprint_change", "task_fingerprint"]

TASK_KINDS = ("classification", "language_model", "regression")


class TensorPairs(Dataset):
    """``(inputs, targets)`` tensors indexed a whole batch at a time (no per-item collation)."""

    def __init__(self, inputs: Tensor, targets: Tensor) -> None:
        if len(inputs) != len(targets):
            raise ValueError(f"inputs and targets differ in length: {len(inputs)} != {len(targets)}")
        self.inputs = inputs
        self.targets = targets

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: Any) -> tuple[Tensor, Tensor]:
        if isinstance(index, list):
            # A tensor index is several times faster than a Python list of ints.
            index = torch.as_tensor(index, dtype=torch.long)
        return self.inputs[index], self.targets[index]

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:  # pragma: no cover - map-style
        raise TypeError("index a TensorPairs")


def batch_count(examples: int, batch_size: int, drop_last: bool = False) -> int:
    """How many batches a loader of ``batch_size`` makes of ``examples`` (the last one
    partial unless ``drop_last``): ``len(DataLoader)``, without building one.

    >>> batch_count(100, 32), batch_count(100, 32, drop_last=True), batch_count(96, 32)
    (4, 3, 3)
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return examples // batch_size if drop_last else -(-examples // batch_size)


def _loader(dataset: Dataset, batch_size: int, generator: torch.Generator | None) -> DataLoader:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(dataset, TensorPairs):
        sampler = (
            RandomSampler(dataset, generator=generator)
            if generator is not None
            else SequentialSampler(dataset)
        )
        # batch_size=None with a batch sampler: the dataset gets a list of indices per batch.
        return DataLoader(
            dataset, batch_size=None, sampler=BatchSampler(sampler, batch_size, drop_last=False)
        )
    return DataLoader(dataset, batch_size=batch_size, shuffle=generator is not None, generator=generator)


# The metrics each kind's ``evaluate`` reports, and which way each is better.
_KIND_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("val_loss", "val_error", "val_accuracy"),
    "language_model": ("val_loss",),
    "regression": ("val_loss", "val_mae", "val_r2"),
}
_HIGHER_IS_BETTER = {"val_loss": False, "val_error": False, "val_accuracy": True, "val_mae": False,
                     "val_r2": True}  # fmt: skip
_FIXED = ("val_loss", "val_error", "val_accuracy")

MetricFn = Callable[[Tensor, Tensor], "Tensor | float"]


@dataclass(init=False)
class Task:
    """A learning problem the loop can train.

    Build one from tensors or datasets and a model factory; a subclass may override any
    method. ``kind`` is ``"classification"`` (outputs ``(batch, classes)`` logits),
    ``"language_model"`` (outputs ``(batch, time, vocab)`` logits, targets ``(batch, time)``)
    or ``"regression"`` (outputs shaped like the targets; mean squared error; ``val_mae``
    and ``val_r2`` reported beside ``val_loss``).

    A custom task names its own loss and metrics: ``loss_fn(output, target)`` (a mean),
    ``metrics={"val_mae": fn}`` (each ``fn(output, target)`` a batch mean, averaged over
    the validation set), the ``objective`` metric every "best" is judged on and its
    direction (``higher_is_better``); ``loss_name``/``loss_unit`` label the loss.

    Example:
        >>> import torch
        >>> x, y = torch.randn(40, 3), torch.randint(0, 2, (40,))
        >>> task = Task("toy", "classification", 2, 8, lambda: torch.nn.Linear(3, 2),
        ...             TensorPairs(x[:32], y[:32]), TensorPairs(x[32:], y[32:]))
        >>> sorted(task.evaluate(task.make_model(0), task.val_loader(8)))
        ['val_accuracy', 'val_error', 'val_loss']
    """

    name: str
    kind: str
    default_epochs: int
    default_batch_size: int
    model_factory: Callable[[], nn.Module]
    train_data: Dataset
    val_data: Dataset
    options: dict[str, Any] = field(default_factory=dict)
    custom_loss: Callable[[Tensor, Tensor], Tensor] | None = None
    metric_fns: dict[str, MetricFn] = field(default_factory=dict)
    objective_metric: str | None = None
    higher_is_better: bool | None = None
    loss_name: str | None = None
    loss_unit: str | None = None

    def __init__(
        self,
        name: str,
        kind: str,
        default_epochs: int,
        default_batch_size: int,
        model_factory: Callable[[], nn.Module],
        train_data: Dataset,
        val_data: Dataset,
        options: dict[str, Any] | None = None,
        *,
        loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
        metrics: dict[str, MetricFn] | None = None,
        objective: str | None = None,
        higher_is_better: bool | None = None,
        loss_name: str | None = None,
        loss_unit: str | None = None,
        custom_loss: Callable[[Tensor, Tensor], Tensor] | None = None,
        metric_fns: dict[str, MetricFn] | None = None,
        objective_metric: str | None = None,
    ) -> None:
        self.name, self.kind = name, kind
        self.default_epochs, self.default_batch_size = default_epochs, default_batch_size
        self.model_factory, self.train_data, self.val_data = model_factory, train_data, val_data
        self.options = {} if options is None else options
        self.custom_loss = loss_fn if loss_fn is not None else custom_loss
        self.metric_fns = dict(metrics if metrics is not None else (metric_fns or {}))
        self.objective_metric = objective if objective is not None else objective_metric
        self.higher_is_better = higher_is_better
        self.loss_name, self.loss_unit = loss_name, loss_unit
        self.__post_init__()

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise ValueError(f"kind must be one of {', '.join(TASK_KINDS)}, got {self.kind!r}")
        if self.default_epochs < 1 or self.default_batch_size < 1:
            raise ValueError("default_epochs and default_batch_size must be >= 1")
        if self.custom_loss is not None and not callable(self.custom_loss):
            raise ValueError(f"loss_fn must be a function (output, target) -> loss, got {self.custom_loss!r}")
        for key, fn in self.metric_fns.items():
            if not isinstance(key, str) or not key or key in _FIXED or not callable(fn):
                raise ValueError(
                    f"metrics must map new metric names (not {', '.join(_FIXED)}) to functions "
                    f"(output, target) -> value, got {key!r}: {fn!r}"
                )
        if self.objective_metric is not None:
            self._check_objective(self.objective_metric)

    def _check_objective(self, metric: str) -> None:
        if metric not in self.metric_names:
            raise ValueError(
                f"objective {metric!r} is not a metric of task {self.name!r} (it has: {', '.join(self.metric_names)})"
            )
        if self.higher_is_better is None and metric not in _HIGHER_IS_BETTER:
            raise ValueError(f"objective {metric!r}: say which way is better (higher_is_better=True or False)")

    @property
    def metric_names(self) -> tuple[str, ...]:
        """Every metric ``evaluate`` reports that is not None."""
        return _KIND_METRICS[self.kind] + tuple(self.metric_fns)

    @property
    def stock_metrics(self) -> bool:
        """Whether the task uses its kind's built-in loss and metrics, unchanged (the
        vectorised trainer evaluates those for every member at once)."""
        return (
            self.kind in ("classification", "language_model")
            and self.custom_loss is None
            and not self.metric_fns
            and type(self).loss_fn is Task.loss_fn
            and type(self).evaluate is Task.evaluate
        )

    @property
    def objective(self) -> Objective:
        """What every "best" of this task is judged on, and how its loss is named (stored
        with each run, read by the report and the study)."""
        base = Objective.for_kind(self.kind)
        metric = self.objective_metric or base.metric
        if self.higher_is_better is not None:
            higher = bool(self.higher_is_better)
        else:
            higher = _HIGHER_IS_BETTER.get(metric, base.higher_is_better)
        loss, unit = base.loss, base.unit
        if self.custom_loss is not None:
            loss = getattr(self.custom_loss, "__name__", None) or type(self.custom_loss).__name__
            unit = ""
        loss = self.loss_name or loss
        unit = self.loss_unit if self.loss_unit is not None else unit
        others = tuple(m for m in self.metric_names if m not in (metric, "val_loss"))
        return Objective(metric, higher, loss, unit, others)

    @classmethod
    def from_loaders(
        cls,
        name: str,
        model_fn: Callable[[], nn.Module],
        train_loader: DataLoader,
        val_loader: DataLoader,
        *,
        kind: str = "classification",
        epochs: int = 10,
        options: dict[str, Any] | None = None,
        **custom: Any,
    ) -> Task:
        """A task from the user's own ``DataLoader`` objects: their datasets, batch size and
        collation; the study reorders the training batches by seed (shuffled, from a seeded
        generator) and may change the batch size. ``custom`` takes ``loss_fn``, ``metrics``,
        ``objective``, ``higher_is_better``, ``loss_name``, ``loss_unit``.
        """
        for label, loader in (("train_loader", train_loader), ("val_loader", val_loader)):
            if not isinstance(loader, DataLoader):
                raise ValueError(f"{label} must be a torch DataLoader, got {type(loader).__name__}")
        batch = train_loader.batch_size or getattr(train_loader.batch_sampler, "batch_size", None) or 32
        task = _LoaderTask(name, kind, epochs, int(batch), model_fn, train_loader.dataset, val_loader.dataset,
                           options, **custom)  # fmt: skip
        task.loaders = (train_loader, val_loader)
        return task

    def make_model(self, seed: int) -> nn.Module:
        """A freshly initialised model; the same seed gives the same weights."""
        torch.manual_seed(seed)
        return self.model_factory()

    def train_loader(self, batch_size: int, seed: int) -> DataLoader:
        """Shuffled batches; the same seed gives the same order, epoch after epoch."""
        return _loader(self.train_data, batch_size, torch.Generator().manual_seed(int(seed)))

    def val_loader(self, batch_size: int) -> DataLoader:
        return _loader(self.val_data, batch_size, None)

    def steps_per_epoch(self, batch_size: int) -> int:
        """Optimizer steps in one epoch at ``batch_size``: ``len(self.train_loader(batch_size,
        seed))``, counted from the training set's length without building a loader (a
        subclass with a ``train_loader`` of its own is counted on one)."""
        if type(self).train_loader is not Task.train_loader:
            return len(self.train_loader(batch_size, 0))
        return batch_count(len(self.train_data), batch_size)

    def loss_fn(self, output: Tensor, target: Tensor) -> Tensor:
        """The task's ``loss_fn`` when given; else mean cross-entropy (in nats per token for a
        language model) or, for regression, the mean squared error."""
        if self.custom_loss is not None:
            return self.custom_loss(output, target)
        if self.kind == "language_model":
            return F.cross_entropy(output.reshape(-1, output.shape[-1]), target.reshape(-1))
        if self.kind == "regression":
            return F.mse_loss(_like(output, target), target.to(output.dtype))
        return F.cross_entropy(output, target)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader: DataLoader) -> dict[str, float | None]:
        """``val_loss`` (mean over examples or tokens), ``val_error`` and ``val_accuracy``
        (None unless classification), ``val_mae`` and ``val_r2`` for regression, and each
        of the task's own ``metrics`` (averaged over examples)."""
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        total_loss, count, correct = 0.0, 0, 0
        abs_err, sq_err, y_sum, y_sq = 0.0, 0.0, 0.0, 0.0
        custom = dict.fromkeys(self.metric_fns, 0.0)
        try:
            for inputs, targets in loader:
                inputs, targets = inputs.to(device), targets.to(device)
                output = model(inputs)
                n = targets.numel()
                total_loss += float(self.loss_fn(output, targets)) * n
                count += n
                if self.kind == "classification":
                    correct += int((output.argmax(dim=-1) == targets).sum())
                elif self.kind == "regression":
                    y = targets.double()
                    diff = _like(output, targets).double() - y
                    abs_err += float(diff.abs().sum())
                    sq_err += float(diff.square().sum())
                    y_sum += float(y.sum())
                    y_sq += float(y.square().sum())
                for key, fn in self.metric_fns.items():
                    custom[key] += float(fn(output, targets)) * n
        finally:
            model.train(was_training)
        if count == 0:
            raise ValueError(f"task {self.name!r} has an empty validation set")
        result: dict[str, float | None] = {"val_loss": total_loss / count, "val_error": None, "val_accuracy": None}
        if self.kind == "classification":
            accuracy = correct / count
            result.update(val_error=1.0 - accuracy, val_accuracy=accuracy)
        elif self.kind == "regression":
            spread = y_sq - y_sum * y_sum / count
            result["val_mae"] = abs_err / count
            result["val_r2"] = 1.0 - sq_err / spread if spread > 0 else None
        result.update({key: value / count for key, value in custom.items()})
        return result


def _like(output: Tensor, target: Tensor) -> Tensor:
    """``output`` shaped like ``target`` when they hold as many numbers (``(batch, 1)`` vs
    ``(batch,)``), so that no broadcasting turns a mean squared error into nonsense."""
    if output.shape != target.shape and output.numel() == target.numel():
        return output.reshape(target.shape)
    return output


class _LoaderTask(Task):
    """A task built by :meth:`Task.from_loaders`: batches come through the user's loaders'
    collation (their ``collate_fn``), reordered by a seeded generator."""

    loaders: tuple[DataLoader, DataLoader]

    def train_loader(self, batch_size: int, seed: int) -> DataLoader:
        given = self.loaders[0]
        return DataLoader(
            given.dataset, batch_size=batch_size, shuffle=True, collate_fn=given.collate_fn,
            generator=torch.Generator().manual_seed(int(seed)), drop_last=given.drop_last,
        )  # fmt: skip

    def steps_per_epoch(self, batch_size: int) -> int:
        given = self.loaders[0]
        return batch_count(len(given.dataset), batch_size, drop_last=given.drop_last)

    def val_loader(self, batch_size: int) -> DataLoader:
        given = self.loaders[1]
        return DataLoader(given.dataset, batch_size=batch_size, shuffle=False, collate_fn=given.collate_fn)


# ---------------------------------------------------------------- fingerprint

FINGERPRINT_SAMPLES = 8  # rows of each dataset hashed (evenly spaced, first and last included)


def task_fingerprint(task: Task) -> dict[str, Any]:
    """What a run's config cannot see of ``task``, as plain data to store beside its runs:
    the model (parameter count, names and shapes of parameters and buffers, the module
    tree's classes), the data (sizes, and a hash of a few evenly spaced rows) and the
    options (kind, objective, metrics, loss, ``options``). A study, sweep or tune whose
    task's fingerprint changed under the same name does not resume into old results
    (:func:`fingerprint_change` says what changed). Cheap: one model built (the global
    RNG state is kept) and at most ``FINGERPRINT_SAMPLES`` rows read per dataset. A task
    that fingerprints itself (a trainable function: its source and options) says its own."""
    import hashlib
    import json

    own = getattr(task, "fingerprint", None)
    if callable(own):
        return own()
    key = (id(task.model_factory), id(task.train_data), id(task.val_data), task.kind, id(task.custom_loss))
    cached = getattr(task, "_fingerprint", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    with torch.random.fork_rng(devices=[]):
        model = task.make_model(0)
    shapes = [(name, tuple(p.shape), str(p.dtype)) for name, p in model.named_parameters()]
    shapes += [(name, tuple(b.shape), str(b.dtype)) for name, b in model.named_buffers()]
    tree = [(name, type(module).__qualname__) for name, module in model.named_modules()]

    def digest(value: Any) -> str:
        return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]

    objective = task.objective
    fingerprint = {
        "model": {
            "parameters": int(sum(p.numel() for p in model.parameters())),
            "shapes": digest(shapes),
            "architecture": digest(tree),
        },
        "data": {
            "train": _size(task.train_data),
            "val": _size(task.val_data),
            "rows": digest([_rows(task.train_data), _rows(task.val_data)]),
        },
        "options": {
            "kind": task.kind,
            "objective": f"{objective.metric} ({'higher' if objective.higher_is_better else 'lower'} is better)",
            "loss": objective.loss,
            "metrics": ", ".join(task.metric_names),
            "task_options": digest(task.options),
        },
    }
    vars(task)["_fingerprint"] = (key, fingerprint)  # one model built per task object, however many sweeps ask
    return fingerprint


def fingerprint_change(stored: Any, current: dict[str, Any]) -> tuple[str, str] | None:
    """What changed from the ``stored`` fingerprint to ``current`` and how, in words
    (``("the model", "parameters 4,801 -> 49: shapes differ")``), or None when nothing did
    (or when ``stored`` is no fingerprint: results stored before fingerprints resume as
    before)."""
    if not isinstance(stored, dict) or not all(isinstance(stored.get(k), dict) for k in current):
        return None
    old_model, model = stored["model"], current["model"]
    if old_model != model:
        if old_model.get("shapes") != model["shapes"]:
            why = "shapes differ"
        elif old_model.get("architecture") != model["architecture"]:
            why = "same shapes, other layers"
        else:
            why = "another model"
        if old_model.get("parameters") != model["parameters"]:
            why = f"parameters {_count(old_model.get('parameters'))} -> {_count(model['parameters'])}: {why}"
        return "the model", why
    old_data, data = stored["data"], current["data"]
    if old_data != data:
        sizes = [f"{label} examples {_count(old_data.get(key))} -> {_count(data[key])}"
                 for key, label in (("train", "training"), ("val", "validation"))
                 if old_data.get(key) != data[key]]  # fmt: skip
        return "the data", ", ".join(sizes) if sizes else "same sizes, other rows"
    old_options, options = stored["options"], current["options"]
    changed = [f"{key} {old_options.get(key)} -> {value}" for key, value in options.items()
               if old_options.get(key) != value and key != "task_options"]  # fmt: skip
    if old_options.get("task_options") != options["task_options"]:
        changed.append("its options")
    return ("the task", "; ".join(changed)) if changed else None


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def _size(data: Any) -> int | None:
    try:
        return len(data)
    except Exception:  # an iterable dataset: no length to compare
        return None


def _rows(data: Any) -> list[str]:
    """Hashes of up to ``FINGERPRINT_SAMPLES`` evenly spaced rows of ``data`` (none when it
    cannot be indexed)."""
    import hashlib

    size = _size(data)
    if not size or not hasattr(data, "__getitem__"):
        return []
    count = min(size, FINGERPRINT_SAMPLES)
    picks = sorted({round(i * (size - 1) / max(count - 1, 1)) for i in range(count)})
    out = []
    for index in picks:
        try:
            row = data[index]
        except Exception:
            return []
        out.append(hashlib.sha256(_row_bytes(row)).hexdigest()[:16])
    return out


def _row_bytes(value: Any) -> bytes:
    """The bytes of a row: its tensors' and arrays' values, numbers and strings as written;
    other objects by their type only (their repr may hold an address)."""
    import numpy as np

    if isinstance(value, Tensor):
        t = value.detach().cpu().contiguous()
        try:
            body = t.reshape(-1).view(torch.uint8).numpy().tobytes()
        except (RuntimeError, TypeError):
            body = repr(t.tolist()).encode()
        return f"tensor{tuple(t.shape)}{t.dtype}".encode() + body
    if isinstance(value, np.ndarray):
        return f"array{value.shape}{value.dtype}".encode() + np.ascontiguousarray(value).tobytes()
    if isinstance(value, (tuple, list)):
        return b"(" + b",".join(_row_bytes(v) for v in value) + b")"
    if isinstance(value, dict):
        return b"{" + b",".join(repr(k).encode() + b":" + _row_bytes(v) for k, v in sorted(value.items(), key=str)) + b"}"
    if value is None or isinstance(value, (bool, int, float, str, bytes, np.generic)):
        return repr(value).encode()
    return type(value).__qualname__.encode()
