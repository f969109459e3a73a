"""Monotone decays: constant, step, multistep, exponential, inverse-time, polynomial,
linear and inverse square root."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from lrlab.schedules._base import (
    FloatArray,
    Schedule,
    fraction,
    per_cycle,
    positive,
    rate,
    set_fields,
    steps,
)


@dataclass(frozen=True)
class Constant(Schedule):
    """``lr`` at every step.

    >>> constant(0.1)(1000)
    0.1
    """

    name = "constant"
    lr: float

    def _validate(self) -> None:
        set_fields(self, lr=rate("lr", self.lr))

    def _values(self, t: FloatArray) -> FloatArray:
        return np.full_like(t, self.lr)


@dataclass(frozen=True)
class StepDecay(Schedule):
    """``lr * gamma**floor(t / step_size)`` (torch's StepLR).

    >>> step_decay(0.1, step_size=10, gamma=0.5)(25)
    0.025
    """

    name = "step_decay"
    lr: float
    step_size: int | float
    gamma: float = 0.1

    def _validate(self) -> None:
        set_fields(
            self,
            lr=rate("lr", self.lr),
            step_size=steps("step_size", self.step_size),
            gamma=fraction("gamma", self.gamma),
        )

    def _decayed(self, count: FloatArray) -> FloatArray:
        return self.lr * self.gamma**count

    def _values(self, t: FloatArray) -> FloatArray:
        return per_cycle(np.floor(t / self.step_size), self._decayed)


@dataclass(frozen=True)
class Multistep(Schedule):
    """``lr * gamma**(number of milestones <= t)`` (torch's MultiStepLR).

    >>> multistep(1.0, milestones=[10, 20], gamma=0.1)(15)
    0.1
    """

    name = "multistep"
    lr: float
    milestones: tuple[int | float, ...]
    gamma: float = 0.1

    def _validate(self) -> None:
        milestones = tuple(self.milestones) if isinstance(self.milestones, (list, tuple)) else None
        if milestones is None or not milestones:
            raise ValueError(f"milestones must be a non-empty list of steps, got {self.milestones!r}")
        checked = tuple(steps(f"milestones[{i}]", m, strict=False) for i, m in enumerate(milestones))
        if any(b < a for a, b in itertools.pairwise(checked)):
            raise ValueError(f"milestones must be in non-decreasing order, got {list(checked)!r}")
        set_fields(self, lr=rate("lr", self.lr), milestones=checked, gamma=fraction("gamma", self.gamma))

    def _values(self, t: FloatArray) -> FloatArray:
        passed = np.searchsorted(np.asarray(self.milestones, dtype=np.float64), t, side="right")
        return per_cycle(np.asarray(passed, dtype=np.float64), self._decayed)

    def _decayed(self, count: FloatArray) -> FloatArray:
        return self.lr * self.gamma**count


@dataclass(frozen=True)
class Exponential(Schedule):
    """``lr * decay_rate**(t / decay_steps)``, the exponent floored if ``staircase``
    (torch's ExponentialLR with ``decay_steps=1``; Keras' ExponentialDecay).

    >>> exponential(1.0, decay_rate=0.5, decay_steps=2)(3)
    0.3535533905932738
    """

    name = "exponential"
    lr: float
    decay_rate: float
    decay_steps: int | float = 1
    staircase: bool = False

    def _validate(self) -> None:
        set_fields(
            self,
            lr=rate("lr", self.lr),
            decay_rate=fraction("decay_rate", self.decay_rate),
            decay_steps=steps("decay_steps", self.decay_steps),
            staircase=_flag("staircase", self.staircase),
        )

    def _values(self, t: FloatArray) -> FloatArray:
        p = t / self.decay_steps
        if self.staircase:
            p = np.floor(p)
        return self.lr * self.decay_rate**p


@dataclass(frozen=True)
class InverseTime(Schedule):
    """``lr / (1 + decay_rate * t / decay_steps)``, ``t / decay_steps`` floored if
    ``staircase`` (Keras' InverseTimeDecay).

    >>> inverse_time(1.0, decay_rate=1.0)(3)
    0.25
    """

    name = "inverse_time"
    lr: float
    decay_rate: float
    decay_steps: int | float = 1
    staircase: bool = False

    def _validate(self) -> None:
        set_fields(
            self,
            lr=rate("lr", self.lr),
            decay_rate=rate("decay_rate", self.decay_rate),
            decay_steps=steps("decay_steps", self.decay_steps),
            staircase=_flag("staircase", self.staircase),
        )

    def _values(self, t: FloatArray) -> FloatArray:
        p = t / self.decay_steps
        if self.staircase:
            p = np.floor(p)
        return self.lr / (1 + self.decay_rate * p)


@dataclass(frozen=True)
class Polynomial(Schedule):
    """``(lr - final_lr) * (1 - min(t, T) / T)**power + final_lr`` with ``T = total_steps``
    (torch's PolynomialLR, Keras' PolynomialDecay).

    >>> polynomial(1.0, total_steps=10, power=2.0)(5)
    0.25
    """

    name = "polynomial"
    lr: float
    total_steps: int | float
    final_lr: float = 0.0
    power: float = 1.0

    def _validate(self) -> None:
        set_fields(
            self,
            lr=rate("lr", self.lr),
            total_steps=steps("total_steps", self.total_steps),
            final_lr=rate("final_lr", self.final_lr),
            power=positive("power", self.power),
        )

    def _values(self, t: FloatArray) -> FloatArray:
        remaining = 1 - np.minimum(t, self.total_steps) / self.total_steps
        return (self.lr - self.final_lr) * remaining**self.power + self.final_lr


@dataclass(frozen=True)
class Linear(Schedule):
    """A straight line from ``start_lr`` to ``end_lr`` over ``total_steps``, then ``end_lr``
    (torch's LinearLR with factors times the base LR).

    >>> linear(0.0, 1.0, total_steps=4)(1)
    0.25
    """

    name = "linear"
    start_lr: float
    end_lr: float
    total_steps: int | float

    def _validate(self) -> None:
        set_fields(
            self,
            start_lr=rate("start_lr", self.start_lr),
            end_lr=rate("end_lr", self.end_lr),
            total_steps=steps("total_steps", self.total_steps),
        )

    def _values(self, t: FloatArray) -> FloatArray:
        progress = np.minimum(t, self.total_steps) / self.total_steps
        return self.start_lr + (self.end_lr - self.start_lr) * progress


@dataclass(frozen=True)
class InverseSqrt(Schedule):
    """Linear warmup to ``lr`` over ``warmup_steps``, then ``lr * sqrt(warmup_steps / t)``
    (the Transformer schedule; transformers' get_inverse_sqrt_schedule).

    >>> inverse_sqrt(1.0, warmup_steps=4)(16)
    0.5
    """

    name = "inverse_sqrt"
    lr: float
    warmup_steps: int | float

    def _validate(self) -> None:
        set_fields(
            self,
            lr=rate("lr", self.lr),
            warmup_steps=steps("warmup_steps", self.warmup_steps, minimum=1, strict=False),
        )

    def _values(self, t: FloatArray) -> FloatArray:
        w = self.warmup_steps
        return np.where(t < w, self.lr * t / w, self.lr * np.sqrt(w / t))


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return bool(value)


constant = Constant
step_decay = StepDecay
multistep = Multistep
exponential = Exponential
inverse_time = InverseTime
polynomial = Polynomial
linear = Linear
inverse_sqrt = InverseSqrt
