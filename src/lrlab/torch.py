"""PyTorch binding: any lrlab schedule as a ``torch.optim.lr_scheduler.LRScheduler``.

The learning rate is computed in closed form from ``last_epoch`` (the number of
``step()`` calls), so a million steps carry no recursive drift and a resumed
scheduler continues the identical sequence.

Where torch users differ:

- ``step(epoch)`` with a fractional epoch (``scheduler.step(epoch + i / iters)``, as torch
  documents for ``CosineAnnealingWarmRestarts``) evaluates the schedule at that point;
  the schedule's ``t`` is then counted in epochs (``cosine_restarts(lr, period=T_0)``
  gives torch's warm restarts).
- ``load_state_dict`` sets the optimizer's LR (and momentum) to the loaded step's, so a
  resume gives the same LR whether the optimizer's state is loaded before, after or not
  at all.
- With a ``plateau(...)`` node in the schedule, ``step(metric)`` is torch's
  ``ReduceLROnPlateau.step(val_loss)``: the metric goes to the plateau node in effect at
  the current step, then the scheduler advances one step; ``step()`` only advances, so
  ``warmup(plateau(...), steps=500)`` warms up per ``step()`` and reduces per metric.
  Without a plateau node, ``step(x)`` is a fractional epoch, as above.
- A spec string is accepted wherever a schedule is: ``LRScheduler(opt, "cosine(lr=0.1,
  total_steps=1000)")``.
- In a ``torch.optim.lr_scheduler.ChainedScheduler`` (or ``SequentialLR``) this scheduler
  *sets* the LR outright each step: schedulers before it in the chain are overridden,
  and a chainable torch scheduler after it (``ExponentialLR``, ``MultiplicativeLR``...)
  multiplies that step's value once, not cumulatively (``ExponentialLR(gamma)`` after it
  gives ``schedule(t) * gamma``). Compose lrlab schedules instead (``warmup(...)``,
  ``sequence(...)``) to combine shapes.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler as _TorchLRScheduler

from lrlab.schedules import Schedule, SequenceSchedule, Warmup, from_dict, parse
from lrlab.schedules.plateau import PlateauState, active_plateaus, initial_states, observe

__all__ = ["LRScheduler", "group_momentum", "horizon", "momentum_key"]


def _group_momentum_key(group: Mapping[str, Any]) -> str | None:
    """The one rule for "the momentum of a param group": ``momentum`` (SGD, RMSprop), else
    ``betas[0]`` (the Adam family), else none. A ``momentum`` key holding ``None`` counts
    as absent. ``momentum`` wins over ``betas`` in a group with both (no torch optimizer has
    both; a custom one may), so that the value recorded is the one a momentum schedule drives.
    """
    if group.get("momentum") is not None:
        return "momentum"
    if "betas" in group:
        return "betas"
    return None


def group_momentum(group: Mapping[str, Any]) -> float | None:
    """The momentum of a param group: ``momentum``, else ``betas[0]``, else ``None``.

    RMSprop's ``momentum=0`` is a momentum of 0.0, not ``None``; a group with both keys
    gives its ``momentum`` (see :func:`momentum_key`, the key a momentum schedule drives).

    Example:
        >>> group_momentum({"lr": 0.1, "momentum": 0.9})
        0.9
        >>> group_momentum({"lr": 0.1, "betas": (0.95, 0.999)})
        0.95
        >>> group_momentum({"lr": 0.1}) is None
        True
    """
    key = _group_momentum_key(group)
    if key == "momentum":
        return float(group["momentum"])
    if key == "betas":
        return float(group["betas"][0])
    return None


def momentum_key(optimizer: Optimizer) -> str:
    """The param-group key a momentum schedule drives: ``momentum`` or ``betas`` (the same
    rule as :func:`group_momentum`, read on the first group)."""
    key = _group_momentum_key(optimizer.param_groups[0])
    if key is not None:
        return key
    raise ValueError(
        f"a momentum schedule needs an optimizer with 'momentum' (SGD, RMSprop) or 'betas' "
        f"(Adam family); {type(optimizer).__name__} has neither"
    )


class _Chunked:
    """A schedule's values read a chunk at a time: one vectorised evaluation serves the
    next ``size`` steps, so a ``step()`` costs a list lookup. The values are those of
    ``schedule(t)`` exactly (scalar and vector evaluation agree to the bit)."""

    def __init__(self, schedule: Schedule, size: int = 1024) -> None:
        self.schedule = schedule
        self.size = size
        self.start = 0
        self.values: list[float] = []

    def __call__(self, step: float) -> float:
        if step != int(step):  # a fractional epoch: evaluated where it is
            return float(self.schedule(float(step)))
        step = int(step)
        offset = step - self.start
        if not 0 <= offset < len(self.values):
            self.start, offset = step, 0
            self.values = self.schedule(np.arange(step, step + self.size, dtype=np.float64)).tolist()
        return self.values[offset]


class LRScheduler(_TorchLRScheduler):
    """Drive ``optimizer`` with ``schedule``; call ``step()`` after ``optimizer.step()``.

    A param group with an ``lr_mult`` key gets ``schedule(t) * lr_mult`` (Caffe's
    base_lr x lr_mult). With ``momentum``, SGD's ``momentum`` or the Adam family's
    ``betas[0]`` follows that schedule too (one-cycle style).

    A schedule with a ``plateau(...)`` node takes the metric in ``step(metric)`` (once per
    epoch, as torch's ``ReduceLROnPlateau``); the plateau's ``min_lr`` bounds the schedule's
    value, before ``lr_mult``.

    Example:
        >>> import torch
        >>> from lrlab.schedules import cosine
        >>> model = torch.nn.Linear(2, 1)
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.0)
        >>> sched = LRScheduler(opt, cosine(0.1, total_steps=100))
        >>> opt.step(); sched.step(); sched.get_last_lr()
        [0.09997532801828658]
    """

    def __init__(
        self,
        optimizer: Optimizer,
        schedule: Schedule | str,
        momentum: Schedule | str | None = None,
        last_epoch: int = -1,
    ) -> None:
        schedule = parse(schedule) if isinstance(schedule, str) else schedule
        momentum = parse(momentum) if isinstance(momentum, str) else momentum
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be an lrlab schedule or its spec string, got {type(schedule).__name__}")
        if momentum is not None and not isinstance(momentum, Schedule):
            raise TypeError(
                f"momentum must be an lrlab schedule, its spec string or None, got {type(momentum).__name__}"
            )
        self.schedule = schedule
        self.momentum = momentum
        self._lr_values: _Chunked | None = None
        self._momentum_values: _Chunked | None = None
        self._momentum_key = momentum_key(optimizer) if momentum is not None else None
        # One state per plateau node (none without one): best metric, bad epochs, cooldown.
        self._plateau_states: tuple[PlateauState, ...] = initial_states(schedule)
        self._awaiting_metric = True
        # Warned once when stepped past the schedule's horizon (its total_steps).
        self._horizon_of: Schedule | None = None
        self._horizon: float | None = None
        self._past_horizon_warned = False
        if isinstance(last_epoch, bool) or not isinstance(last_epoch, numbers.Integral) or last_epoch < -1:
            raise ValueError(f"last_epoch must be a whole number >= -1 (-1: a new run), got {last_epoch!r}")
        for index, group in enumerate(optimizer.param_groups):
            _lr_mult(index, group)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:  # type: ignore[override]
        cache = self._lr_values
        if cache is None or cache.schedule is not self.schedule:
            cache = self._lr_values = _Chunked(self.schedule)
        value = cache(self.last_epoch)
        return [
            value * mult if (mult := _lr_mult(index, group)) is not None else value
            for index, group in enumerate(self.optimizer.param_groups)
        ]

    def _check_horizon(self) -> None:
        """Warn once when the scheduler has gone past the schedule's horizon (``total_steps``
        of a cosine, one-cycle, polynomial, linear or wsd, shifted by warmups and sequences):
        torch's ``OneCycleLR`` raises there; the schedule holds its final value."""
        if self._past_horizon_warned:
            return
        if self._horizon_of is not self.schedule:
            self._horizon_of, self._horizon = self.schedule, horizon(self.schedule)
        if self._horizon is not None and self.last_epoch > self._horizon:
            self._past_horizon_warned = True
            value = float(self.schedule(self.last_epoch))
            warnings.warn(
                f"the schedule {self.schedule} was stepped past its horizon: step {self.last_epoch:g} > "
                f"{self._horizon:g} steps, and it holds {value:.4g} from there on (torch's OneCycleLR raises "
                "here); build the schedule with your run's total number of steps",
                UserWarning,
                stacklevel=3,
            )

    def _get_closed_form_lr(self) -> list[float]:
        return self.get_lr()

    def step(self, epoch: float | None = None) -> None:  # type: ignore[override]
        """Advance one step; ``step(epoch)`` jumps to ``epoch`` (an int or a fraction of
        an epoch, ``epoch + i / iters``) without torch's deprecation warning.

        With a plateau node in the schedule, ``step(metric)`` feeds ``metric`` (a number
        or a one-element tensor) to the plateau node in effect at the current step, then
        advances one step."""
        if self._plateau_states:
            self._observe(epoch)
            epoch = None  # a metric, consumed: advance one step
        if epoch is None:
            super().step()
        else:
            if isinstance(epoch, bool) or not isinstance(epoch, numbers.Real) or not math.isfinite(epoch) or epoch < 0:
                raise ValueError(f"epoch must be a finite number >= 0, got {epoch!r}")
            self._step_count += 1
            self.last_epoch = int(epoch) if float(epoch).is_integer() else float(epoch)
            self._apply(self.get_lr())
        self._apply_momentum()
        self._check_horizon()

    def _observe(self, metric: Any) -> None:
        """Feed ``metric`` to the plateau node(s) in effect now (warn once if none ever comes)."""
        if metric is not None:
            self.schedule, self._plateau_states = observe(
                self.schedule, self.last_epoch, metric, self._plateau_states
            )
            self._awaiting_metric = False
        elif self._awaiting_metric and self._step_count > 0 and active_plateaus(self.schedule, self.last_epoch):
            self._awaiting_metric = False  # warned once: the same reminder on every step would be noise
            warnings.warn(
                "the schedule has a plateau(...) node but no metric was given: call "
                "scheduler.step(metric) (e.g. with the validation loss) once per epoch, or the "
                "plateau never reduces the learning rate",
                UserWarning,
                stacklevel=3,
            )

    def _apply(self, values: list[float]) -> None:
        import torch

        for group, value in zip(self.optimizer.param_groups, values, strict=True):
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(value)
            else:
                group["lr"] = value
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _apply_momentum(self) -> None:
        if self.momentum is not None:
            cache = self._momentum_values
            if cache is None or cache.schedule is not self.momentum:
                cache = self._momentum_values = _Chunked(self.momentum)
            self._set_momentum(cache(self.last_epoch))

    def _set_momentum(self, value: float) -> None:
        for group in self.optimizer.param_groups:
            if self._momentum_key == "momentum":
                group["momentum"] = value
            else:
                group["betas"] = (value, *tuple(group["betas"])[1:])

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        # Plain data, so checkpoints load with torch.load(weights_only=True); the value
        # caches are rebuilt on demand.
        for cache in _CACHES:
            state.pop(cache, None)
        state["schedule"] = self.schedule.to_dict()  # the plateau nodes' reductions so far
        state["_plateau_states"] = [plateau.to_dict() for plateau in self._plateau_states]
        state["momentum"] = None if self.momentum is None else self.momentum.to_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not isinstance(state_dict, Mapping):
            raise ValueError(f"state_dict must be a dict from LRScheduler.state_dict(), got {type(state_dict).__name__}")
        _check_state(state_dict)  # before any change: a bad state leaves the scheduler as it was
        state = {k: v for k, v in state_dict.items() if k not in _CACHES}
        schedule, momentum = state.pop("schedule", None), state.pop("momentum", None)
        loaded = from_dict(schedule) if schedule is not None else self.schedule
        plateaus = _plateau_states(loaded, state.pop("_plateau_states", None))  # checked before any change
        super().load_state_dict(state)
        self.schedule = loaded
        self._plateau_states = plateaus
        if momentum is not None:
            self.momentum = from_dict(momentum)
            if self._momentum_key is None:
                self._momentum_key = momentum_key(self.optimizer)
        # The optimizer follows the loaded step, whatever order its own state is loaded in.
        if self.last_epoch >= 0:
            self._apply(self.get_lr())
            self._apply_momentum()


# Caches rebuilt on demand, never saved: the value chunks and the schedule whose horizon is known.
_CACHES = ("_lr_values", "_momentum_values", "_horizon_of", "_horizon")


def _lr_mult(index: int, group: Mapping[str, Any]) -> float | None:
    """The ``lr_mult`` of param group ``index`` (None without one): a finite number >= 0."""
    if "lr_mult" not in group:
        return None
    value = group["lr_mult"]
    mult = math.nan
    if not isinstance(value, (bool, str, bytes)):
        with contextlib.suppress(TypeError, ValueError, RuntimeError):
            mult = float(value)
    if not (math.isfinite(mult) and mult >= 0):
        raise ValueError(f"param group {index}: lr_mult must be a finite number >= 0, got {value!r}")
    return mult


def _check_state(state: Mapping[str, Any]) -> None:
    """``ValueError`` naming the field of a scheduler state that no scheduler could have saved."""
    epoch = state.get("last_epoch", -1)
    if isinstance(epoch, bool) or not isinstance(epoch, numbers.Real):
        raise ValueError(f"the state's last_epoch must be a number, got {epoch!r}")
    if not (math.isfinite(epoch) and (epoch >= 0 or epoch == -1)) or (epoch < 0 and not float(epoch).is_integer()):
        raise ValueError(f"the state's last_epoch must be a finite number >= 0 (or -1), got {epoch!r}")
    count = state.get("_step_count", 0)
    if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 0:
        raise ValueError(f"the state's _step_count must be a whole number >= 0, got {count!r}")
    for key in ("schedule", "momentum"):
        if state.get(key) is not None and not isinstance(state[key], Mapping):
            raise ValueError(f"the state's {key} must be a schedule's to_dict() or None, got {state[key]!r}")
    saved = state.get("_plateau_states")
    if saved is not None and not (isinstance(saved, list) and all(isinstance(s, Mapping) for s in saved)):
        raise ValueError(f"the state's _plateau_states must be a list of dicts, got {saved!r}")


def horizon(schedule: Schedule) -> float | None:
    """The step after which ``schedule`` only holds its final value (its ``total_steps``,
    after warmups and sequence boundaries), or None for a schedule without one
    (constant, step decays, restarts, cyclic...).

    >>> from lrlab.schedules import cosine, warmup
    >>> horizon(warmup(cosine(0.1, total_steps=100), steps=10)), horizon(parse("constant(lr=0.1)"))
    (110.0, None)
    """
    if isinstance(schedule, Warmup):
        inner = horizon(schedule.schedule)
        return None if inner is None else float(schedule.steps) + inner
    if isinstance(schedule, SequenceSchedule):
        last = horizon(schedule.schedules[-1])
        return None if last is None else float(schedule.boundaries[-1]) + last
    total = getattr(schedule, "total_steps", None)
    return float(total) if isinstance(total, numbers.Real) and not isinstance(total, bool) else None


def _plateau_states(schedule: Schedule, saved: list[dict[str, Any]] | None) -> tuple[PlateauState, ...]:
    """The plateau states of a state dict (fresh ones for a state saved without them)."""
    fresh = initial_states(schedule)
    if saved is None:
        return fresh
    if len(saved) != len(fresh):
        raise ValueError(
            f"the state holds {len(saved)} plateau states for a schedule with {len(fresh)} plateau nodes"
        )
    return tuple(PlateauState.from_dict(state) for state in saved)
