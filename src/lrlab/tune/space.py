"""Search spaces over schedules: TOML tables (or dicts) validated into a :class:`Space`.

A space names the schedule families to try, each with ranges for its own parameters, and
the optimizers::

    [space]
    optimizer = ["sgd(momentum=0.9)", "adam"]     # a list is a categorical choice
    warmup = { run = [0.0, 0.1] }                  # optional: warmup steps, a fraction of the run

    [space.cyclic]                                 # a family: cyclic knobs only when it is drawn
    max_lr = { from_finder = [0.3, 3] }            # x the range test's LR of the drawn optimizer
    base_lr = { ratio = [0.02, 0.5] }              # a fraction of the family's peak LR
    step_size = { epochs = [0.5, 3] }              # half a cycle, in epochs
    shape = ["triangle", "sine"]
    cycle_decay = { uniform = [0.3, 1.0] }         # decays lie in (0, 1]

    [space.one_cycle]
    max_lr = { log = [0.01, 1.0] }                 # log-uniform
    pct_start = { uniform = [0.1, 0.5] }

    [space.plateau]                                # reduce on plateau, driven by each trial's
    lr = { from_finder = [0.3, 3] }                # validation loss at every epoch's end
    factor = { uniform = [0.1, 0.7] }
    patience = { int = [0, 3] }                    # epochs: a trial runs a few

A value is a number or string (fixed), a list (categorical), or a table with one of
``log``, ``uniform``, ``int``, ``from_finder``, ``ratio`` (learning rates other than the
peak), ``epochs``, ``run`` (a fraction in (0, 1]) or ``steps`` (step counts). Parameters
a family needs and the space leaves out take the run's numbers where they have one
(``total_steps``) and the family's defaults otherwise. :func:`Space.sample` draws one
configuration through an Optuna trial (define-by-run, so conditional knobs are only drawn
for the family that has them).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from lrlab.schedules import Schedule, parse, warmup
from lrlab.schedules._base import REGISTRY

__all__ = ["FORMS", "Choice", "Context", "Param", "Space", "SpaceError", "lr_param", "parse_space"]

FORMS = ("log", "uniform", "int", "from_finder", "ratio", "epochs", "run", "steps")
# Learning-rate parameters, the peak one of each family first.
_LR_PARAMS = ("lr", "max_lr", "base_lr", "final_lr", "start_lr", "end_lr")
_PEAK = {"cyclic": "max_lr", "one_cycle": "max_lr", "linear": "start_lr"}
# Parameters counted in optimizer steps.
_STEP_PARAMS = ("step_size", "step_size_down", "period", "total_steps", "decay_steps", "warmup_steps")
# Multiplicative decays: (0, 1].
_DECAYS = {("cyclic", "cycle_decay"), ("cyclic", "gamma"), ("cosine_restarts", "decay"),
           ("step_decay", "gamma"), ("exponential", "decay_rate")}  # fmt: skip
# Filled from the run when the space does not give them.
_AUTO = ("total_steps",)
# Families a space cannot search (combinators are built by the space itself).
_NOT_SEARCHABLE = ("warmup", "sequence", "multistep")
_RESERVED = ("optimizer", "warmup")
# The largest step count a space may name (far beyond any run: a larger one is a typo).
MAX_STEP_COUNT = 10**12
# The most epochs an ``epochs`` range may name (a sweep file's limit).
MAX_EPOCH_COUNT = 100_000


class SpaceError(ValueError):
    """A space that cannot be searched; the message names the key and what is allowed."""


class Trial(Protocol):  # the part of optuna.Trial a space uses
    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...
    def suggest_int(self, name: str, low: int, high: int) -> int: ...
    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


@dataclass(frozen=True)
class Context:
    """The run's numbers a space needs to turn a draw into a schedule.

    ``finder_lrs`` maps an optimizer spec to its range test's LR (for ``from_finder``).
    """

    steps_per_epoch: int
    total_steps: int
    finder_lrs: Mapping[str, float] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class Param:
    """One parameter of the space: fixed (``form="fixed"``), categorical, or a range."""

    name: str
    form: str  # fixed | choice | log | uniform | int | from_finder | ratio | epochs | run | steps
    values: tuple[Any, ...]

    @property
    def searched(self) -> bool:
        return self.form != "fixed" and not (self.form == "choice" and len(self.values) == 1)

    def draw(self, trial: Trial, key: str) -> Any:
        """The raw draw (a multiplier for ``from_finder``/``ratio``, epochs for ``epochs``)."""
        if not self.searched:
            return self.values[0]
        if self.form == "choice":
            return trial.suggest_categorical(key, list(self.values))
        low, high = self.values
        if self.form in ("int", "steps"):
            return trial.suggest_int(key, int(low), int(high))
        if low == high:
            return low
        log = self.form in ("log", "from_finder", "ratio")
        return trial.suggest_float(key, float(low), float(high), log=log)


@dataclass(frozen=True)
class Choice:
    """One drawn configuration: the optimizer, the schedule object, the peak LR and the raw
    draws (``params``, as Optuna names them)."""

    optimizer: str
    schedule: Schedule
    lr: float
    family: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Family:
    name: str
    params: dict[str, Param]
    warmup: Param | None

    @property
    def peak(self) -> str:
        return _PEAK.get(self.name, "lr")


@dataclass(frozen=True)
class Space:
    """A validated search space (see the module docstring for the format)."""

    optimizers: tuple[str, ...]
    families: dict[str, Family]
    warmup: Param | None = None

    @property
    def needs_finder(self) -> bool:
        return any(p.form == "from_finder" for f in self.families.values() for p in f.params.values())

    @property
    def searched(self) -> list[str]:
        """The names of every searched parameter (Optuna's names)."""
        names = ["optimizer"] if len(self.optimizers) > 1 else []
        names += ["family"] if len(self.families) > 1 else []
        for family in self.families.values():
            names += [f"{family.name}.{k}" for k, p in family.params.items() if p.searched]
            warm = family.warmup or self.warmup
            if warm is not None and warm.searched:
                names.append(f"{family.name}.warmup")
        return names

    def check(self, context: Context, where: str = "space") -> None:
        """Build every family at the corners of its ranges with the run's numbers
        (``context``): :class:`SpaceError` naming the family when one refuses, so that a
        space the run cannot use fails before anything trains."""
        _probe(self, where, context)

    def sample(self, trial: Trial, context: Context) -> Choice:
        """Draw one configuration through ``trial`` (an ``optuna.Trial``)."""
        optimizer = (
            trial.suggest_categorical("optimizer", list(self.optimizers))
            if len(self.optimizers) > 1
            else self.optimizers[0]
        )
        names = list(self.families)
        family = self.families[trial.suggest_categorical("family", names) if len(names) > 1 else names[0]]
        raw = {
            f"{family.name}.{k}": p.draw(trial, f"{family.name}.{k}") for k, p in family.params.items()
        }
        warm = family.warmup or self.warmup
        warm_value = warm.draw(trial, f"{family.name}.warmup") if warm is not None else None
        schedule, lr = build(family, optimizer, raw, warm, warm_value, context)
        params = {"optimizer": optimizer, "family": family.name, **raw}
        if warm_value is not None:
            params[f"{family.name}.warmup"] = warm_value
        return Choice(optimizer, schedule, lr, family.name, params)


def build(
    family: Family,
    optimizer: str,
    raw: Mapping[str, Any],
    warm: Param | None,
    warm_value: Any,
    context: Context,
) -> tuple[Schedule, float]:
    """The schedule of one draw, and its peak LR. Raises ``ValueError`` naming a parameter."""
    warm_steps = 0
    if warm is not None:
        warm_steps = _steps(warm, warm_value, context, minimum=0)
        if warm_steps >= context.total_steps:
            raise ValueError(f"warmup of {warm_steps} steps leaves none of the run's {context.total_steps}")
    inner_steps = context.total_steps - warm_steps
    values: dict[str, Any] = {}
    order = sorted(family.params, key=lambda k: k != family.peak)  # the peak first: ratios need it
    for key in order:
        value = _value(family, key, raw[f"{family.name}.{key}"], values, optimizer, context, inner_steps)
        values[key] = _round(value) if isinstance(value, float) else value
    fields = {f.name for f in dataclasses.fields(REGISTRY[family.name])}  # type: ignore[arg-type]
    for key in _AUTO:
        if key in fields and key not in values:
            values[key] = inner_steps
    schedule: Schedule = REGISTRY[family.name](**values)
    lr = float(values.get(family.peak, schedule(0)))
    if warm_steps > 0:
        schedule = warmup(schedule, steps=warm_steps)
    return schedule, lr


def _value(
    family: Family,
    key: str,
    value: Any,
    values: Mapping[str, Any],
    optimizer: str,
    context: Context,
    run_steps: int,
) -> Any:
    """A draw of ``family.key`` as the schedule's value: a multiplier of the range test's LR
    or of the peak LR (in ``values``) as an LR, epochs or a fraction of the run as steps."""
    param = family.params[key]
    if param.form == "from_finder":
        if optimizer not in context.finder_lrs:
            raise ValueError(f"{family.name}.{key} needs the range test of {optimizer!r}")
        return float(value) * float(context.finder_lrs[optimizer])
    if param.form == "ratio":
        return float(value) * values[family.peak]
    if param.form in ("epochs", "run", "steps") or (key in _STEP_PARAMS and param.form == "int"):
        return _steps(param, value, context, minimum=1, run_steps=run_steps)
    return value


def _round(value: float) -> float:
    # Six significant digits: the spec strings stay readable and the run ids stable.
    return float(f"{value:.6g}")


def _steps(param: Param, value: Any, context: Context, *, minimum: int, run_steps: int | None = None) -> int:
    total = context.total_steps if run_steps is None else run_steps
    if param.form == "epochs":
        count = round(float(value) * context.steps_per_epoch)
    elif param.form == "run":
        count = round(float(value) * total)
    else:
        count = int(value)
    return max(minimum, count)


# ---------------------------------------------------------------- parsing


def parse_space(data: Mapping[str, Any], where: str = "space") -> Space:
    """Validate a ``[space]`` table (see the module docstring); raises :class:`SpaceError`."""
    if not isinstance(data, Mapping):
        raise SpaceError(f"{where} must be a table of schedule families, got {data!r}")
    optimizers = data.get("optimizer", "sgd")
    optimizers = [optimizers] if isinstance(optimizers, str) else optimizers
    if not isinstance(optimizers, list) or not optimizers or not all(isinstance(o, str) for o in optimizers):
        raise SpaceError(f"{where}.optimizer must be an optimizer spec or a non-empty list of them")
    for spec in optimizers:
        try:
            from lrlab.sweeps.spec import check_optimizer

            check_optimizer(spec)
        except ValueError as exc:
            raise SpaceError(f"{where}.optimizer = {spec!r}: {exc}") from None
    top_warmup = _warmup_param(data.get("warmup"), f"{where}.warmup") if "warmup" in data else None
    families: dict[str, Family] = {}
    for name, table in data.items():
        if name in _RESERVED:
            continue
        families[name] = _family(name, table, f"{where}.{name}")
    if not families:
        searchable = ", ".join(n for n in REGISTRY if n not in _NOT_SEARCHABLE)
        raise SpaceError(f"{where} names no schedule family: add a table such as [{where}.cosine] (families: {searchable})")
    space = Space(tuple(dict.fromkeys(optimizers)), families, top_warmup)
    _probe(space, where)
    return space


def lr_param(value: Any, where: str) -> Param:
    """Learning rates given as a number, a list of numbers, ``{log = [a, b]}`` or
    ``{from_finder = [a, b]}`` (PBT's initial LRs); :class:`SpaceError` naming ``where``."""
    param = _param("pbt", "lr", value, where)
    if param.form not in ("log", "from_finder", "fixed", "choice"):
        raise SpaceError(f"{where}: expected {{log = [a, b]}}, {{from_finder = [a, b]}}, a number or a list of numbers")
    if param.form in ("fixed", "choice") and not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in param.values
    ):
        raise SpaceError(f"{where}: learning rates are numbers > 0, got {value!r}")
    return param


def _family(name: str, table: Any, where: str) -> Family:
    searchable = [n for n in REGISTRY if n not in _NOT_SEARCHABLE]
    if name not in searchable:
        raise SpaceError(f"{where}: unknown schedule family {name!r} (families: {', '.join(searchable)})")
    if not isinstance(table, Mapping):
        raise SpaceError(f"{where} must be a table of the family's parameters, got {table!r}")
    if name == "plateau" and "reductions" in table:
        raise SpaceError(
            f"{where}.reductions: the reductions are what a run's validation loss does to the LR, not a knob "
            "(search lr, factor, patience, threshold, cooldown, min_lr)"
        )
    fields = [f for f in dataclasses.fields(REGISTRY[name])]  # type: ignore[arg-type]
    params, warm = _family_params(name, table, {f.name for f in fields}, where)
    required = [f.name for f in fields if f.default is dataclasses.MISSING and f.name not in _AUTO]
    missing = [k for k in required if k not in params]
    if missing:
        raise SpaceError(f"{where}: missing {', '.join(missing)} ({name} needs {', '.join(required)}; give a value or a range)")
    _check_ratios(name, params, where)
    _check_lr_order(name, params, where)
    return Family(name, params, warm)


def _family_params(
    name: str, table: Mapping[str, Any], known: set[str], where: str
) -> tuple[dict[str, Param], Param | None]:
    """The family's parameters and its own warmup, read in the table's order."""
    params: dict[str, Param] = {}
    warm = None
    for key, value in table.items():
        if key == "warmup":
            warm = _warmup_param(value, f"{where}.warmup")
            continue
        if key not in known:
            raise SpaceError(f"{where}.{key}: {name} has no parameter {key!r} (it has: {', '.join(sorted(known))}, warmup)")
        params[key] = _param(name, key, value, f"{where}.{key}")
    return params, warm


def _check_ratios(name: str, params: Mapping[str, Param], where: str) -> None:
    """A ratio is a fraction of the family's peak LR, which must be there and not a ratio."""
    peak = _PEAK.get(name, "lr")
    for key, param in params.items():
        if param.form == "ratio" and (key == peak or peak not in params):
            raise SpaceError(f"{where}.{key}: a ratio is a fraction of {name}'s peak LR {peak!r}, which cannot be a ratio itself")


def _warmup_param(value: Any, where: str) -> Param:
    param = _param("warmup", "steps", value, where)
    if param.form == "ratio" or param.form == "from_finder" or param.form == "log":
        raise SpaceError(f"{where}: warmup is a step count: a number, {{run = [a, b]}}, {{epochs = [a, b]}} or {{steps = [a, b]}}")
    return param


def _check_lr_order(name: str, params: Mapping[str, Param], where: str) -> None:
    """``base_lr`` below ``max_lr`` whatever is drawn, when both are absolute."""
    if name != "cyclic" or "base_lr" not in params or "max_lr" not in params:
        return
    base, peak = params["base_lr"], params["max_lr"]
    absolute = ("fixed", "log", "uniform")
    if base.form in absolute and peak.form in absolute and max(base.values) > min(peak.values):
        raise SpaceError(
            f"{where}: base_lr can be drawn above max_lr ({max(base.values):g} > {min(peak.values):g}); "
            "keep the ranges apart or give base_lr = {ratio = [a, b]}, a fraction of max_lr"
        )


def _param(family: str, key: str, value: Any, where: str) -> Param:
    """One parameter of a table: a list (a choice), a number or string (fixed) or a range table."""
    is_steps = key in _STEP_PARAMS or (family, key) == ("warmup", "steps")
    if isinstance(value, list):
        if not value or not all(isinstance(v, (str, int, float, bool)) for v in value):
            raise SpaceError(f"{where}: a list is a categorical choice and needs one or more numbers or strings")
        for item in value:
            _check_fixed(item, key, is_steps, where)
        return Param(key, "choice", tuple(dict.fromkeys(value)))
    if isinstance(value, (str, int, float, bool)):
        _check_fixed(value, key, is_steps, where)
        return Param(key, "fixed", (value,))
    if not isinstance(value, Mapping):
        raise SpaceError(f"{where}: expected a value, a list of choices or a range table, got {value!r}")
    form, low, high = _range_table(value, where)
    _check_range(
        _Range(key, form, low, high, is_lr=key in _LR_PARAMS, is_steps=is_steps, is_decay=(family, key) in _DECAYS),
        where,
    )  # fmt: skip
    if form in ("int", "steps"):  # whole numbers as ints: a family that wants an int gets one
        return Param(key, form, (int(low), int(high)))
    return Param(key, form, (low, high))


def _check_fixed(value: Any, key: str, is_steps: bool, where: str) -> None:
    """A fixed or categorical number is finite, a learning rate a number and a step count
    in range."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if key in _LR_PARAMS and not number:
        raise SpaceError(f"{where}: a learning rate is a number > 0, got {value!r}")
    if not number:
        return
    if not math.isfinite(value):
        raise SpaceError(f"{where}: expected a finite number, got {value!r}")
    if is_steps and not 0 <= value <= MAX_STEP_COUNT:
        raise SpaceError(f"{where}: a step count lies from 0 to {MAX_STEP_COUNT:.0e}, got {value!r}")


def _range_table(value: Mapping[str, Any], where: str) -> tuple[str, float, float]:
    """``{form = [low, high]}``: its one form and two finite bounds, low <= high."""
    forms = [f for f in value if f in FORMS]
    unknown = [f for f in value if f not in FORMS]
    if unknown or len(forms) != 1:
        raise SpaceError(f"{where}: a range table has exactly one of {', '.join(FORMS)}, got {', '.join(map(str, value)) or 'none'}")
    form = forms[0]
    bounds = value[form]
    if (
        not isinstance(bounds, list)
        or len(bounds) != 2
        or any(isinstance(b, bool) or not isinstance(b, (int, float)) or not math.isfinite(b) for b in bounds)
    ):
        raise SpaceError(f"{where}: {form} = [low, high] needs two finite numbers, got {bounds!r}")
    low, high = float(bounds[0]), float(bounds[1])
    if low > high:
        raise SpaceError(f"{where}: low {low:g} is above high {high:g} (expected {form} = [low, high] with low <= high)")
    return form, low, high


@dataclass(frozen=True)
class _Range:
    """A range of one parameter, with what kind of parameter it is, for :data:`_RANGE_RULES`."""

    key: str
    form: str
    low: float
    high: float
    is_lr: bool
    is_steps: bool
    is_decay: bool


# What a range may not be, in the order it is checked: (broken, message after "{where}: ").
_RANGE_RULES: tuple[tuple[Callable[[_Range], bool], str], ...] = (
    (lambda r: r.form in ("from_finder", "ratio") and not r.is_lr,
     "{form} applies to learning rates (" + ", ".join(_LR_PARAMS) + "), not {key!r}"),
    (lambda r: r.form in ("epochs", "run", "steps") and not r.is_steps,
     "{form} applies to step counts (" + ", ".join(_STEP_PARAMS) + ", warmup), not {key!r}"),
    (lambda r: r.form in ("log", "from_finder", "ratio") and r.low <= 0, "{form} needs low > 0, got {low:g}"),
    (lambda r: r.form == "ratio" and r.high > 1, "a ratio of the peak LR lies in (0, 1], got high {high:g}"),
    (lambda r: r.form == "run" and (r.low < 0 or r.high > 1),
     "a fraction of the run lies in [0, 1], got [{low:g}, {high:g}]"),
    (lambda r: r.form in ("epochs", "steps", "int") and r.low < 0, "{form} needs low >= 0, got {low:g}"),
    (lambda r: r.form in ("int", "steps") and not (r.low.is_integer() and r.high.is_integer()),
     "{form} = [low, high] needs whole numbers, got [{low:g}, {high:g}]"),
    (lambda r: r.form == "epochs" and r.high > MAX_EPOCH_COUNT,
     "epochs = [low, high] is at most " + f"{MAX_EPOCH_COUNT:,}" + " epochs (more than any run trains), got high {high:g}"),
    (lambda r: r.form in ("steps", "int") and r.high > MAX_STEP_COUNT,
     "{form} = [low, high] is at most " + f"{MAX_STEP_COUNT:.0e}" + " (more than any run trains), got high {high:g}"),
    (lambda r: r.is_decay and not (r.low > 0 and r.high <= 1), "a decay lies in (0, 1], got [{low:g}, {high:g}]"),
    (lambda r: r.form == "uniform" and r.is_lr and r.low <= 0, "learning rates must be > 0, got low {low:g}"),
)  # fmt: skip


def _check_range(bounds: _Range, where: str) -> None:
    for broken, message in _RANGE_RULES:
        if broken(bounds):
            raise SpaceError(f"{where}: " + message.format(**dataclasses.asdict(bounds)))


def _probe(space: Space, where: str, context: Context | None = None) -> None:
    """Build every family at the corners of its ranges and at every categorical value, with
    the run's numbers (stand-ins without ``context``): a value the family refuses fails now,
    with the family's message."""
    if context is None:
        context = Context(steps_per_epoch=50, total_steps=1000)
    finder = {o: float(context.finder_lrs.get(o, 0.1)) for o in space.optimizers}
    context = dataclasses.replace(context, finder_lrs=finder)
    for family in space.families.values():
        choices = {k: p for k, p in family.params.items() if p.form == "choice"}
        warm = family.warmup or space.warmup
        for corner in (0, 1):
            warm_value = None if warm is None else (
                warm.values[0] if warm.form in ("fixed", "choice") else warm.values[corner])
            raw = _corner(family, corner)
            variants = [raw] + [
                {**raw, f"{family.name}.{k}": v} for k, p in choices.items() for v in p.values[1:]
            ]
            for values in variants:
                try:
                    schedule, _lr = build(family, space.optimizers[0], values, warm, warm_value, context)
                    parse(str(schedule))  # what the store and the printed code read back
                except (ValueError, TypeError, ArithmeticError) as exc:
                    raise SpaceError(f"{where}.{family.name}: {exc}".splitlines()[0]) from None


def _corner(family: Family, corner: int) -> dict[str, Any]:
    """The draws of a family at one corner of its ranges (0: every low, 1: every high),
    fixed and categorical parameters at their first value."""
    return {
        f"{family.name}.{key}": param.values[0] if param.form in ("fixed", "choice") else param.values[corner]
        for key, param in family.params.items()
    }
