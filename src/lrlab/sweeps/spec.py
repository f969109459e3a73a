"""Sweep files: TOML -> a validated :class:`SweepSpec` (pydantic).

Example sweep file::

    name = "digits-lr"
    task = "digits-mlp"
    epochs = 5
    batch_size = 64
    seeds = [0, 1]

    [grid]
    lr = { logspace = [1e-3, 1.0, 7] }          # or a list: lr = [0.01, 0.1]
    optimizer = ["sgd(momentum=0.9)", "adam"]
    schedule = ["constant(lr={lr})", "cosine(lr={lr}, total_steps={total_steps})"]

Each combination of the grid axes and the seeds is one run (``lrlab.sweeps.grid``);
``{lr}``, ``{total_steps}`` and ``{steps_per_epoch}`` are placeholders in the schedule
(and momentum) specs that :func:`substitute` fills with the run's numbers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lrlab.core.records import DEFAULT_DIVERGENCE_FACTOR

__all__ = ["Finetune", "Grid", "SweepSpec", "SweepSpecError", "check_task", "load_sweep", "substitute"]

PLACEHOLDERS = ("lr", "total_steps", "steps_per_epoch")
# Bounds that keep a typo from hanging the machine (a logspace of ten million points).
MAX_AXIS_VALUES = 10_000
MAX_RUNS = 100_000
MAX_EPOCHS = 100_000
MAX_BATCH_SIZE = 1 << 20
_CHECK = {"lr": 0.1, "total_steps": 1000, "steps_per_epoch": 10}


def check_optimizer(spec: str) -> None:
    """``spec`` parses and torch's own optimizer accepts its hyperparameters (``momentum=-1``
    is refused here, before anything trains)."""
    import torch

    from lrlab.optim.grammar import make_optimizer

    make_optimizer(spec, [torch.zeros(1, requires_grad=True)], lr=0.1)


def check_task(value: str) -> str:
    """``value`` when it names a task ``get_task`` builds (a built-in name, or a
    ``module:function`` / ``file.py:function`` reference), else ``ValueError``: the ``task``
    of a sweep file and of a tune file."""
    from lrlab.training.tasks import BUILTIN_TASKS, is_reference

    if not is_reference(value):
        raise ValueError(
            f"unknown task (built-in: {', '.join(BUILTIN_TASKS)}; "
            "or 'package.module:function' or 'path/to/file.py:function')"
        )
    return value


def substitute(spec: str, *, lr: float, total_steps: int, steps_per_epoch: int) -> str:
    """Put numbers in place of ``{lr}``, ``{total_steps}`` and ``{steps_per_epoch}``.

    >>> substitute("cosine(lr={lr}, total_steps={total_steps})", lr=0.1, total_steps=50, steps_per_epoch=5)
    'cosine(lr=0.1, total_steps=50)'
    """
    values = {
        "lr": repr(float(lr)),
        "total_steps": str(int(total_steps)),
        "steps_per_epoch": str(int(steps_per_epoch)),
    }
    out = spec
    for key, value in values.items():
        out = out.replace("{" + key + "}", value)
    if "{" in out or "}" in out:
        start = out.find("{")
        raise ValueError(
            f"schedule {spec!r} has an unknown placeholder near {out[start : start + 20]!r} "
            "(known: {lr}, {total_steps}, {steps_per_epoch})"
        )
    return out


class SweepSpecError(ValueError):
    """A sweep file that cannot be used; the message names the key path, value and expectation."""


# ---------------------------------------------------------------- the spec


class _Range(BaseModel):
    model_config = ConfigDict(extra="forbid")
    logspace: tuple[float, float, int] | None = None
    linspace: tuple[float, float, int] | None = None

    @model_validator(mode="after")
    def _one(self) -> _Range:
        chosen = [k for k in ("logspace", "linspace") if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise ValueError(
                "expected exactly one of logspace = [start, stop, n] or linspace = [start, stop, n]"
            )
        start, stop, count = getattr(self, chosen[0])
        if not 1 <= count <= MAX_AXIS_VALUES:
            raise ValueError(f"n must be from 1 to {MAX_AXIS_VALUES}, got {count}")
        if chosen[0] == "logspace" and (start <= 0 or stop <= 0):
            raise ValueError(f"logspace needs start and stop > 0, got {start!r}, {stop!r}")
        return self

    def values(self) -> list[float]:
        if self.logspace is not None:
            start, stop, count = self.logspace
            if count == 1:
                return [float(start)]
            a, b = math.log10(start), math.log10(stop)
            raw = [10 ** (a + (b - a) * i / (count - 1)) for i in range(count)]
        else:
            assert self.linspace is not None
            start, stop, count = self.linspace
            raw = [start + (stop - start) * i / max(count - 1, 1) for i in range(count)]
        # Six significant digits: readable in tables and stable in the run ids.
        return [float(f"{v:.6g}") for v in raw]


class Grid(BaseModel):
    """The grid axes; every combination (times the seeds) is one run."""

    model_config = ConfigDict(extra="forbid")
    lr: Any
    optimizer: list[str] = Field(default_factory=lambda: ["sgd"])
    schedule: list[str] = Field(default_factory=lambda: ["constant(lr={lr})"])
    momentum: list[str] | None = None
    lr_mult: list[dict[str, float]] | None = None
    batch_size: list[int] | None = None

    @field_validator("lr", mode="before")
    @classmethod
    def _lrs(cls, value: Any) -> Any:
        expected = "expected a learning rate, a list of them, or {logspace = [start, stop, n]}"
        if isinstance(value, dict):
            try:
                rng = _Range.model_validate(value)
            except ValidationError as exc:
                raise ValueError(
                    f"{exc.errors()[0]['msg'].removeprefix('Value error, ')} ({expected})"
                ) from None
            values = rng.values()
            result: Any = rng
        else:
            items = value if isinstance(value, list) else [value]
            if not items or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in items):
                raise ValueError(expected)
            values = result = [float(v) for v in items]
        bad = [v for v in values if not (v > 0 and math.isfinite(v))]
        if bad:
            raise ValueError(f"learning rates must be finite and > 0, got {bad[0]!r}")
        return result

    @field_validator("optimizer")
    @classmethod
    def _optimizers(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("expected at least one optimizer")
        for index, spec in enumerate(value):
            try:
                check_optimizer(spec)
            except ValueError as exc:
                raise ValueError(f"item {index}: {exc}") from None
        return value

    @field_validator("schedule", "momentum")
    @classmethod
    def _schedules(cls, value: list[str] | None) -> list[str] | None:
        from lrlab.schedules import parse

        if value is None:
            return value
        if not value:
            raise ValueError("expected at least one schedule spec")
        for index, spec in enumerate(value):
            try:
                parse(substitute(spec, **_CHECK))
            except ValueError as exc:
                raise ValueError(f"item {index}: {exc}") from None
        return value

    @field_validator("batch_size")
    @classmethod
    def _batch_sizes(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or any(not 1 <= v <= MAX_BATCH_SIZE for v in value)):
            raise ValueError(f"expected a non-empty list of batch sizes from 1 to {MAX_BATCH_SIZE}")
        return value

    @model_validator(mode="after")
    def _one_warmup(self) -> Grid:
        from lrlab.core.records import double_warmup
        from lrlab.schedules import parse

        for optimizer in self.optimizer:
            for spec in self.schedule:
                twice = double_warmup(optimizer, parse(substitute(spec, **_CHECK)), spec)
                if twice is not None:
                    raise ValueError(twice)
        return self

    def plateaus(self) -> list[str]:
        """The schedule specs of the grid that hold a ``plateau(...)`` node."""
        from lrlab.schedules import parse
        from lrlab.schedules.plateau import find_plateaus

        return [spec for spec in self.schedule if find_plateaus(parse(substitute(spec, **_CHECK)))]

    def size(self) -> int:
        """How many runs one seed of this grid has (computed without expanding it)."""
        count = len(self.lrs())
        for axis in (self.optimizer, self.schedule, self.momentum, self.lr_mult, self.batch_size):
            count *= len(axis) if axis else 1
        return count

    def lrs(self) -> list[float]:
        if isinstance(self.lr, _Range):
            return self.lr.values()
        return list(self.lr) if isinstance(self.lr, list) else [self.lr]


class Finetune(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: dict[str, float] | None = None
    layer_decay: float | None = Field(default=None, gt=0, le=1)
    freeze: list[str] | None = None
    unfreeze_every: int | None = Field(default=None, ge=1)


class SweepSpec(BaseModel):
    """A sweep file, validated. See the module docstring for the format."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    task: str
    task_options: dict[str, Any] = Field(default_factory=dict)
    epochs: int | None = Field(default=None, ge=1, le=MAX_EPOCHS)
    batch_size: int | None = Field(default=None, ge=1, le=MAX_BATCH_SIZE)
    seeds: list[int] = Field(default_factory=lambda: [0])
    divergence_factor: float | None = Field(default=DEFAULT_DIVERGENCE_FACTOR, gt=0)
    threads: int | None = Field(default=None, ge=1, le=1024)  # torch threads per run (default 1)
    finetune: Finetune | None = None
    vectorize: bool = False  # train runs differing only in lr/schedule/momentum/seed together
    max_group: int | None = Field(default=None, ge=1)  # most runs per vectorised group
    grid: Grid

    @field_validator("task")
    @classmethod
    def _task(cls, value: str) -> str:
        return check_task(value)

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("expected at least one seed")
        if len(set(value)) != len(value):
            raise ValueError("seeds must be distinct")
        if any(not 0 <= seed < 2**63 for seed in value):
            raise ValueError("seeds must be whole numbers from 0 to 2**63 - 1")
        return value

    @model_validator(mode="after")
    def _bounded(self) -> SweepSpec:
        runs = self.grid.size() * len(self.seeds)
        if runs > MAX_RUNS:
            raise ValueError(f"the grid has {runs} runs; at most {MAX_RUNS} are allowed in one sweep")
        return self

    @model_validator(mode="after")
    def _plateau_metric(self) -> SweepSpec:
        """A plateau schedule is driven by the task's validation metric: its ``mode`` must
        follow that metric's direction (the task is built for the check only when the grid
        has a plateau; one that cannot be built is reported where the sweep builds it)."""
        plateaus = self.grid.plateaus()
        if not plateaus:
            return self
        from lrlab.schedules import parse
        from lrlab.training.resolve import check_plateau
        from lrlab.training.tasks import get_task

        try:
            task = get_task(self.task, **self.task_options)
        except Exception:  # reported, in one line, where the sweep builds it (build_task)
            return self
        for spec in plateaus:
            check_plateau(parse(substitute(spec, **_CHECK)), task)
        return self


def _format_errors(error: ValidationError, source: str) -> str:
    parts = []
    for item in error.errors():
        loc = ".".join(str(p) for p in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        if item["type"] == "missing":
            parts.append(f"{loc}: missing required key")
            continue
        shown = item.get("input")
        text = json.dumps(shown, default=str)
        if len(text) > 80:
            text = text[:77] + "..."
        parts.append(f"{loc or '<top>'} = {text}: {message}" if "input" in item else f"{loc}: {message}")
    return f"{source}: " + "; ".join(dict.fromkeys(parts))


def read_toml(source: str | Path | dict[str, Any], kind: str, error: type[Exception]) -> tuple[dict[str, Any], str]:
    """A ``kind`` file's table and the name to quote in errors (a dict passes through);
    a missing file, a file that is not UTF-8 or not TOML raises ``error`` with one line."""
    if isinstance(source, dict):
        return source, kind
    path = Path(source)
    where = str(path)
    if not path.is_file():
        raise error(f"no {kind} file {where!r}")
    try:
        import tomllib
    except ImportError:  # pragma: no cover - Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        return tomllib.loads(path.read_text(encoding="utf-8")), where
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{where}: not valid TOML: {exc}") from None


def load_sweep(source: str | Path | dict[str, Any]) -> SweepSpec:
    """Read and validate a sweep file (TOML) or a dict; raises ``SweepSpecError``."""
    data, where = read_toml(source, "sweep", SweepSpecError)
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise SweepSpecError(_format_errors(exc, where)) from None
