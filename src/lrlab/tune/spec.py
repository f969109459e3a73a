"""Tune files: TOML -> a validated :class:`TuneSpec` (pydantic), in the sweep-file style.

Example tune file::

    name = "tune-digits"
    task = "digits-mlp"
    epochs = 6
    trials = 24                    # the budget: trials finished (completed or pruned) ...
    max_steps = 60000              # ... and/or optimizer steps spent, whichever comes first
    pruner = "hyperband"           # hyperband, halving or none
    audit_pruned = 2               # pruned trials re-trained to full length (short-horizon bias)

    [space]
    optimizer = ["sgd(momentum=0.9)", "adam"]
    [space.cosine]
    lr = { log = [1e-3, 1.0] }

The ``[space]`` table is :mod:`lrlab.tune.space`'s.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from lrlab.core.records import DEFAULT_DIVERGENCE_FACTOR
from lrlab.sweeps.spec import (
    MAX_BATCH_SIZE,
    MAX_EPOCHS,
    _format_errors,
    check_optimizer,
    check_task,
    read_toml,
)
from lrlab.tune.space import Space, SpaceError, lr_param, parse_space

__all__ = ["METHODS", "PRUNERS", "SAMPLERS", "TuneSpec", "TuneSpecError", "load_tune"]

SAMPLERS = ("tpe", "random")
PRUNERS = ("hyperband", "halving", "none")
METHODS = ("optuna", "pbt")
_CHOICES = {"method": METHODS, "sampler": SAMPLERS, "pruner": PRUNERS}
MAX_TRIALS = 10_000
MAX_DEPTH = 8  # tables and lists inside a tune file


class TuneSpecError(ValueError):
    """A tune file that cannot be used; the message names the key, the value and what is allowed."""


class Pbt(BaseModel):
    """Population-based training: ``population`` members trained together, every
    ``interval`` epochs the worst ``quantile`` copy the best and perturb their LR."""

    model_config = ConfigDict(extra="forbid")
    optimizer: str = "sgd(momentum=0.9)"
    population: int = Field(default=8, ge=2, le=256)
    interval: float = Field(default=1.0, gt=0, le=MAX_EPOCHS, allow_inf_nan=False)  # epochs between exploit steps
    quantile: float = Field(default=0.25, gt=0, le=0.5, allow_inf_nan=False)
    perturb: tuple[float, float] = (0.8, 1.25)
    lr: Any = None  # the initial LRs: {log = [a, b]} or {from_finder = [a, b]}

    @field_validator("optimizer")
    @classmethod
    def _optimizer(cls, value: str) -> str:
        check_optimizer(value)
        return value

    @field_validator("perturb")
    @classmethod
    def _perturb(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not all(math.isfinite(v) and v > 0 for v in value):
            raise ValueError(f"perturbation factors must be finite numbers > 0, got {list(value)}")
        return value

    @field_validator("lr")
    @classmethod
    def _lr(cls, value: Any) -> Any:
        if value is not None:
            try:
                lr_param(value, "pbt.lr")
            except SpaceError as exc:
                raise ValueError(str(exc).removeprefix("pbt.lr: ")) from None
        return value


class TuneSpec(BaseModel):
    """A tune file, validated. See the module docstring for the format."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    task: str
    task_options: dict[str, Any] = Field(default_factory=dict)
    method: str = "optuna"
    epochs: int | None = Field(default=None, ge=1, le=MAX_EPOCHS)
    batch_size: int | None = Field(default=None, ge=1, le=MAX_BATCH_SIZE)
    seeds: list[int] = Field(default_factory=lambda: [0])
    trials: int = Field(default=20, ge=1, le=MAX_TRIALS)
    max_steps: int | None = Field(default=None, ge=1)
    sampler: str = "tpe"
    sampler_seed: int = Field(default=0, ge=0)
    pruner: str = "hyperband"
    audit_pruned: int = Field(default=0, ge=0, le=MAX_TRIALS)
    storage: str | None = None
    divergence_factor: float | None = Field(default=DEFAULT_DIVERGENCE_FACTOR, gt=0)
    finder_iters: int = Field(default=100, ge=10, le=100_000)
    pbt: Pbt | None = None
    space: Space | None = None
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def raw(self) -> dict[str, Any]:
        """The file's tables as read (what the store keeps for people)."""
        return self._raw

    @field_validator("task")
    @classmethod
    def _task(cls, value: str) -> str:
        return check_task(value)

    @field_validator("method", "sampler", "pruner")
    @classmethod
    def _one_of(cls, value: str, info: ValidationInfo) -> str:
        allowed = _CHOICES[str(info.field_name)]
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return value

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: list[int]) -> list[int]:
        if not value or len(set(value)) != len(value) or any(not 0 <= s < 2**63 for s in value):
            raise ValueError("expected distinct seeds, whole numbers from 0 to 2**63 - 1")
        return value

    @field_validator("space", mode="before")
    @classmethod
    def _space(cls, value: Any) -> Any:
        if value is None or isinstance(value, Space):
            return value
        try:
            return parse_space(value)
        except SpaceError as exc:
            raise ValueError(str(exc)) from None


def load_tune(source: str | Path | dict[str, Any]) -> TuneSpec:
    """Read and validate a tune file (TOML) or a dict; raises :class:`TuneSpecError`."""
    try:
        data, where = read_toml(source, "tune", TuneSpecError)
    except RecursionError:
        raise TuneSpecError(f"{source}: values are nested more than {MAX_DEPTH} levels deep "
                            f"(tables and lists nest at most {MAX_DEPTH} levels)") from None
    _check_depth(data, where)
    try:
        spec = TuneSpec.model_validate(data)
    except ValidationError as exc:
        raise TuneSpecError(_format_space_errors(exc, where)) from None
    spec._raw = dict(data)
    if spec.method == "optuna" and spec.space is None:
        raise TuneSpecError(f"{where}: missing the [space] table (the schedule families and ranges to search)")
    if spec.method == "pbt" and spec.pbt is None:
        raise TuneSpecError(f"{where}: method = \"pbt\" needs a [pbt] table (population, interval, lr)")
    return spec


def _check_depth(data: Any, where: str) -> None:
    """Tables and lists nested at most :data:`MAX_DEPTH` deep (a tune file needs four), read
    without recursion: deeper is a mistake, and would overflow the stack further on."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, key, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise TuneSpecError(f"{where}: {key or 'the file'} is nested more than {MAX_DEPTH} levels deep "
                                f"(tables and lists nest at most {MAX_DEPTH} levels)")  # fmt: skip
        if isinstance(value, dict):
            stack += [(v, f"{key}.{k}" if key else str(k), depth + 1) for k, v in value.items()]
        elif isinstance(value, (list, tuple)):
            stack += [(v, key, depth + 1) for v in value]


def _format_space_errors(error: ValidationError, where: str) -> str:
    # A space error already names its key path (space.cosine.lr: ...); say it once.
    for item in error.errors():
        if item["loc"] and item["loc"][0] == "space":
            return f"{where}: {item['msg'].removeprefix('Value error, ')}"
    return _format_errors(error, where)
