"""Warmup-stable-decay (Hu et al., MiniCPM, 2024): warm up, hold, decay at the end."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lrlab.schedules._base import FloatArray, Schedule, choice, rate, set_fields, steps

DECAY_SHAPES = ("linear", "cosine", "1-sqrt")


@dataclass(frozen=True)
class WarmupStableDecay(Schedule):
    """Linear warmup from 0 to ``lr`` over ``warmup_steps``, ``lr`` until the last
    ``decay_steps`` of ``total_steps``, then down to ``final_lr`` (linear, cosine or
    1-sqrt), and ``final_lr`` after ``total_steps``.

    >>> s = wsd(1.0, total_steps=100, warmup_steps=10, decay_steps=20)
    >>> s(5), s(50), s(90), s(100)
    (0.5, 1.0, 0.5, 0.0)
    """

    name = "wsd"
    lr: float
    total_steps: int | float
    warmup_steps: int | float
    decay_steps: int | float
    final_lr: float = 0.0
    decay_shape: str = "linear"

    def _validate(self) -> None:
        total = steps("total_steps", self.total_steps)
        warm = steps("warmup_steps", self.warmup_steps, strict=False)
        decay = steps("decay_steps", self.decay_steps)
        if warm + decay > total:
            raise ValueError(
                f"warmup_steps + decay_steps must be <= total_steps ({total!r}), got {warm!r} + {decay!r}"
            )
        set_fields(
            self,
            lr=rate("lr", self.lr),
            total_steps=total,
            warmup_steps=warm,
            decay_steps=decay,
            final_lr=rate("final_lr", self.final_lr),
            decay_shape=choice("decay_shape", self.decay_shape, DECAY_SHAPES),
        )

    def _values(self, t: FloatArray) -> FloatArray:
        decay_start = self.total_steps - self.decay_steps
        progress = np.clip((t - decay_start) / self.decay_steps, 0.0, 1.0)
        if self.decay_shape == "linear":
            factor = 1.0 - progress
        elif self.decay_shape == "cosine":
            factor = 0.5 * (1.0 + np.cos(np.pi * progress))
        else:
            factor = 1.0 - np.sqrt(progress)
        values = self.final_lr + (self.lr - self.final_lr) * factor
        if self.warmup_steps > 0:
            values = np.where(t < self.warmup_steps, self.lr * t / self.warmup_steps, values)
        return values


wsd = WarmupStableDecay
