"""Run an optimizer on a 2-D surface and measure its trajectory.

Optimizers are written in lrlab's one optimizer grammar (:mod:`lrlab.optim.grammar`),
with their own ``lr``: ``"sgd(lr=0.05, momentum=0.9)"``, ``"nesterov(lr=0.05)"``.

Example:
    >>> t = run_trajectory("ravine", "sgd(lr=0.25)", steps=50)
    >>> t.steps_to_tol is None, t.oscillations, round(float(t.grad_norms[-1]), 2)
    (True, 49, 8.01)
    >>> run_trajectory("ravine", "nesterov(lr=0.05)", steps=100).steps_to_tol
    48
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lrlab.optim.grammar import OPTIMIZER_ALIASES, OPTIMIZER_CLASSES, make_optimizer, parse_optimizer
from lrlab.schedules import Schedule
from lrlab.surfaces.catalog import Surface, get_surface
from lrlab.torch import LRScheduler

__all__ = ["OPTIMIZER_NAMES", "Trajectory", "as_surface", "run_trajectories", "run_trajectory"]

# Muon orthogonalises matrix updates: it cannot move one 2-vector.
_MATRICES_ONLY = {"muon"}

OPTIMIZER_NAMES: tuple[str, ...] = tuple(sorted({*OPTIMIZER_CLASSES, *OPTIMIZER_ALIASES} - _MATRICES_ONLY))
"""The optimizer names (classes and aliases) a trajectory can run."""

# Keys under which torch.optim keeps a per-coordinate second moment (for the story of
# adaptive methods whose accumulated squared gradients shrink).
_SECOND_MOMENT_KEYS = ("square_avg", "exp_avg_sq", "sum")


@dataclass(frozen=True)
class Trajectory:
    """The path of one optimizer on one surface, with the metrics the CLI tabulates.

    ``optimizer`` is the optimizer spec as written, ``schedule`` the schedule that drove its
    learning rate (None: constant). Arrays: ``points`` (n+1, 2) including the start, ``losses`` (n+1,), ``grad_norms``
    (n,) taken at the points each step started from, ``lrs`` (n,) learning rate used
    by each step, ``second_moment`` (n, 2) the optimizer's per-coordinate squared-gradient
    statistic after each step when it keeps one (RMSprop, Adam family, Adagrad) else None.
    """

    name: str
    surface: Surface
    optimizer: str
    schedule: Schedule | None
    points: np.ndarray
    losses: np.ndarray
    grad_norms: np.ndarray
    lrs: np.ndarray
    second_moment: np.ndarray | None
    tol: float
    diverged_step: int | None

    # ------------------------------------------------------------ basic facts
    @property
    def steps(self) -> int:
        """Number of optimizer steps taken (fewer than asked when it diverged)."""
        return len(self.points) - 1

    @property
    def diverged(self) -> bool:
        return self.diverged_step is not None

    @property
    def final_point(self) -> tuple[float, float]:
        x, y = self.points[-1]
        return (float(x), float(y))

    @property
    def final_loss(self) -> float:
        return float(self.losses[-1])

    @property
    def gaps(self) -> np.ndarray | None:
        """Loss minus the surface's minimum value at every point (None if unknown)."""
        if self.surface.min_value is None:
            return None
        return self.losses - self.surface.min_value

    @property
    def steps_to_tol(self) -> int | None:
        """First step count after which the loss is within ``tol`` of the minimum, or None."""
        gaps = self.gaps
        if gaps is None:
            return None
        hits = np.flatnonzero(np.isfinite(gaps) & (gaps <= self.tol))
        return int(hits[0]) if hits.size else None

    @property
    def distance(self) -> float | None:
        """Distance from the final point to the nearest known minimum."""
        if not np.all(np.isfinite(self.points[-1])):
            return math.inf
        return self.surface.distance_to_minimum(self.final_point)

    # ------------------------------------------------------------ steps
    @property
    def deltas(self) -> np.ndarray:
        """Displacement of every step, shape (n, 2)."""
        return np.diff(self.points, axis=0)

    @property
    def step_sizes(self) -> np.ndarray:
        """Euclidean length of every step."""
        return np.hypot(self.deltas[:, 0], self.deltas[:, 1])

    @property
    def across_steps(self) -> np.ndarray:
        """Absolute step along the surface's across-valley coordinate."""
        return np.abs(self.deltas[:, self.surface.across_axis])

    @property
    def max_step(self) -> float:
        sizes = self.step_sizes
        return float(sizes.max()) if sizes.size else 0.0

    @property
    def path_length(self) -> float:
        return float(self.step_sizes.sum())

    @property
    def straightness(self) -> float:
        """Net displacement over path length: 1 for a straight line, near 0 for a zigzag."""
        length = self.path_length
        if length == 0.0:
            return 1.0
        return float(np.hypot(*(self.points[-1] - self.points[0])) / length)

    @property
    def oscillations(self) -> int:
        """Sign flips of the across-valley step, ignoring round-off jitter (see below)."""
        return self.oscillation_count()

    def oscillation_count(self, threshold: float | None = None) -> int:
        """Sign flips of the across-valley coordinate's step.

        Steps shorter than ``threshold`` (default: 1e-3 of the across plotting range) are
        ignored, so round-off jitter at the minimum does not count as oscillation.
        """
        if threshold is None:
            low, high = self.surface.y_range if self.surface.across_axis == 1 else self.surface.x_range
            threshold = 1e-3 * (high - low)
        across = self.deltas[:, self.surface.across_axis]
        significant = np.sign(across[np.abs(across) > threshold])
        return int(np.count_nonzero(significant[1:] * significant[:-1] < 0))

    @property
    def across_travel(self) -> float:
        """Total distance moved across the valley (= the start's offset for a direct path)."""
        return float(self.across_steps.sum())

    def summary(self) -> dict[str, Any]:
        """Plain-JSON metrics (non-finite numbers become None)."""
        return {
            "name": self.name,
            "optimizer": self.optimizer,
            "schedule": None if self.schedule is None else str(self.schedule),
            "surface": self.surface.name,
            "steps": self.steps,
            "tol": self.tol,
            "final_loss": _finite(self.final_loss),
            "steps_to_tol": self.steps_to_tol,
            "distance": _finite(self.distance),
            "diverged": self.diverged,
            "diverged_step": self.diverged_step,
            "oscillations": self.oscillations,
            "max_step": _finite(self.max_step),
            "mean_step": _finite(float(self.step_sizes.mean())) if self.steps else 0.0,
            "path_length": _finite(self.path_length),
            "straightness": _finite(self.straightness),
            "final_grad_norm": _finite(float(self.grad_norms[-1])) if self.steps else None,
            "lr_first": _finite(float(self.lrs[0])) if self.steps else None,
            "lr_last": _finite(float(self.lrs[-1])) if self.steps else None,
            "final_point": [_finite(v) for v in self.final_point],
        }


def _finite(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def as_surface(
    surface: str | Surface | Callable[[torch.Tensor], torch.Tensor],
    *,
    start: Sequence[float] | None = None,
) -> Surface:
    """A built-in name, a :class:`Surface`, or a bare callable (which needs ``start``)."""
    if isinstance(surface, (str, Surface)):
        return get_surface(surface)
    if callable(surface):
        if start is None:
            raise ValueError("a user function needs a start point: pass start=(x, y) or wrap it in Surface")
        x, y = (float(v) for v in start)
        half = max(1.0, 1.5 * max(abs(x), abs(y)))
        name = getattr(surface, "__name__", "custom")
        return Surface(name, surface, start=(x, y), x_range=(-half, half), y_range=(-half, half))
    raise ValueError(f"surface must be a name, a Surface or a callable, got {type(surface).__name__}")


def run_trajectory(
    surface: str | Surface | Callable[[torch.Tensor], torch.Tensor],
    optimizer: str,
    *,
    steps: int = 200,
    start: Sequence[float] | None = None,
    schedule: Schedule | None = None,
    tol: float = 1e-3,
    escape_factor: float = 50.0,
    name: str | None = None,
    scale_schedule: bool = False,
) -> Trajectory:
    """Run ``optimizer`` (a spec such as ``"sgd(lr=0.05, momentum=0.9)"``) for ``steps`` steps
    from ``start`` (default: the surface's) in float64.

    ``schedule`` drives the learning rate through :class:`lrlab.torch.LRScheduler`, as
    written. With ``scale_schedule`` and an ``lr`` in the spec it is scaled instead (through
    the param group's ``lr_mult``) so that its peak over the run equals that ``lr``, letting
    one schedule shape drive SGD at 0.01 and Adam at 0.1 alike.
    A run stops early, marked diverged, when the loss or point is non-finite or the point
    escapes ``escape_factor`` box diagonals from the box.
    """
    _check_run(steps, tol)
    surf = as_surface(surface, start=start)
    _key, kwargs = parse_optimizer(optimizer, allow_lr=True, allow_closure=True)
    begin = surf.start if start is None else _start_point(start)
    point = torch.tensor(begin, dtype=torch.float64, requires_grad=True)
    opt = make_optimizer(optimizer, [point], allow_lr=True, allow_closure=True)
    scheduler = (
        None
        if schedule is None
        else _scheduler(opt, schedule, steps, kwargs.get("lr") if scale_schedule else None)
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = surf(point)
        loss.backward()
        return loss

    points, losses, grad_norms, lrs, moments = [begin], [float(surf(point.detach()))], [], [], []
    center = np.array([sum(surf.x_range) / 2, sum(surf.y_range) / 2])
    escape = escape_factor * surf.span
    diverged_step = None
    for step in range(steps):
        lrs.append(float(opt.param_groups[0]["lr"]))
        loss = closure()
        grad_norms.append(float(point.grad.norm()) if point.grad is not None else math.nan)
        opt.step(closure if _needs_closure(opt) else None)
        if scheduler is not None:
            scheduler.step()
        current = point.detach().numpy().copy()
        points.append((float(current[0]), float(current[1])))
        with torch.no_grad():
            losses.append(float(surf(point)))
        moments.append(_second_moment(opt, point))
        del loss
        if not (np.all(np.isfinite(current)) and math.isfinite(losses[-1])) or _escaped(
            current, center, escape
        ):
            diverged_step = step + 1
            break
    has_moment = bool(moments) and all(m is not None for m in moments)
    return Trajectory(
        name=name or optimizer.strip(),
        surface=surf,
        optimizer=optimizer.strip(),
        schedule=schedule,
        points=np.array(points, dtype=np.float64).reshape(-1, 2),
        losses=np.array(losses, dtype=np.float64),
        grad_norms=np.array(grad_norms, dtype=np.float64),
        lrs=np.array(lrs, dtype=np.float64),
        second_moment=np.array(moments, dtype=np.float64) if has_moment else None,
        tol=float(tol),
        diverged_step=diverged_step,
    )


def _check_run(steps: int, tol: float) -> None:
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if not (tol >= 0 and math.isfinite(tol)):
        raise ValueError(f"tol must be a finite number >= 0, got {tol}")


def _scheduler(opt: torch.optim.Optimizer, schedule: Schedule, steps: int, peak_lr: Any) -> LRScheduler:
    """``schedule`` driving ``opt``; with ``peak_lr`` (the spec's ``lr``, when the schedule is
    scaled) through the group's ``lr_mult``, so that the schedule's peak over ``steps`` is it."""
    if peak_lr is not None:
        peak = float(np.max(schedule(np.arange(max(steps, 1), dtype=np.float64))))
        if peak <= 0:
            raise ValueError(f"schedule {schedule} is never positive over {steps} steps")
        opt.param_groups[0]["lr_mult"] = float(peak_lr) / peak
    return LRScheduler(opt, schedule)


def _escaped(point: np.ndarray, center: np.ndarray, escape: float) -> bool:
    return bool(np.hypot(*(point - center)) > escape)


def run_trajectories(
    surface: str | Surface | Callable[[torch.Tensor], torch.Tensor],
    optimizers: Sequence[str],
    **options: Any,
) -> list[Trajectory]:
    """:func:`run_trajectory` for every optimizer, with the same surface and options."""
    surf = as_surface(surface, start=options.get("start"))
    return [run_trajectory(surf, opt, **options) for opt in optimizers]


def _start_point(start: Sequence[float]) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in start)
    except (TypeError, ValueError):
        raise ValueError(f"start must be two numbers x, y, got {start!r}") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise ValueError(f"start must be finite, got ({x}, {y})")
    return (x, y)


def _needs_closure(opt: torch.optim.Optimizer) -> bool:
    # LBFGS re-evaluates the function itself; every other optimizer uses the gradient
    # already computed (passing the closure would compute it twice).
    return isinstance(opt, torch.optim.LBFGS)


def _second_moment(opt: torch.optim.Optimizer, point: torch.Tensor) -> tuple[float, float] | None:
    state = opt.state.get(point, {})
    for key in _SECOND_MOMENT_KEYS:
        value = state.get(key)
        if isinstance(value, torch.Tensor) and value.shape == point.shape:
            return (float(value[0]), float(value[1]))
    return None
