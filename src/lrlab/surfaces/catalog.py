"""Two-dimensional error surfaces: the built-in ones and user functions.

A surface is a torch-differentiable function of a point ``xy`` (a tensor whose last
dimension holds the two coordinates) with what a picture and the metrics need: the
minima (locations and value), a default start point, a plotting box and the
"across" coordinate whose step sign flips count as oscillation.

Example:
    >>> import torch
    >>> ravine = get_surface("ravine")
    >>> float(ravine(torch.tensor([0.0, 0.0])))
    0.0
    >>> ravine.distance_to_minimum((3.0, 4.0))
    5.0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["SURFACES", "Surface", "get_surface", "surface_names"]

Point = tuple[float, float]


@dataclass(frozen=True)
class Surface:
    """A 2-D error surface ``fn(xy) -> scalar`` with its known minima and a plotting box.

    Args:
        name: short name shown in tables and figures.
        fn: torch-differentiable callable; ``xy[..., 0]`` is x and ``xy[..., 1]`` is y for
            the built-ins, while a user function may index ``xy[0]``/``xy[1]`` of a (2,) tensor.
        start: default start point of trajectories.
        x_range, y_range: plotting box (also the scale of the escape test and of the
            oscillation threshold).
        minima: known global minima; empty when unknown.
        min_value: the function's value at the minima; computed from ``minima`` when omitted.
        across_axis: coordinate (0 = x, 1 = y) that crosses the valley; its step sign flips
            count as oscillations.
        log_contours: draw contour levels on a log scale (steep surfaces such as Rosenbrock).
        description: one line for ``lrlab surface --list``.
    """

    name: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    start: Point
    x_range: Point
    y_range: Point
    minima: tuple[Point, ...] = ()
    min_value: float | None = None
    across_axis: int = 1
    log_contours: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise ValueError(f"fn must be callable, got {type(self.fn).__name__}")
        object.__setattr__(self, "start", _point("start", self.start))
        for label in ("x_range", "y_range"):
            low, high = _point(label, getattr(self, label))
            if not low < high:
                raise ValueError(f"{label} must be (low, high) with low < high, got {(low, high)}")
            object.__setattr__(self, label, (low, high))
        object.__setattr__(self, "minima", tuple(_point("minima", m) for m in self.minima))
        if self.across_axis not in (0, 1):
            raise ValueError(f"across_axis must be 0 or 1, got {self.across_axis!r}")
        if self.min_value is None and self.minima:
            value = float(self(torch.tensor(self.minima[0], dtype=torch.float64)))
            object.__setattr__(self, "min_value", value)

    def __call__(self, xy: torch.Tensor) -> torch.Tensor:
        return self.fn(xy)

    @property
    def span(self) -> float:
        """Diagonal of the plotting box: the length scale of this surface."""
        return math.hypot(self.x_range[1] - self.x_range[0], self.y_range[1] - self.y_range[0])

    def distance_to_minimum(self, point: Sequence[float]) -> float | None:
        """Euclidean distance from ``point`` to the nearest known minimum (None if unknown)."""
        if not self.minima:
            return None
        return min(math.hypot(point[0] - mx, point[1] - my) for mx, my in self.minima)

    def grid(self, resolution: int = 160) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(X, Y, Z)`` arrays of shape (resolution, resolution) over the plotting box."""
        xs = torch.linspace(*self.x_range, resolution, dtype=torch.float64)
        ys = torch.linspace(*self.y_range, resolution, dtype=torch.float64)
        gx, gy = torch.meshgrid(xs, ys, indexing="xy")
        flat = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=-1)
        with torch.no_grad():
            try:
                # vmap hands the function one (2,) point at a time, as a user expects.
                values = torch.func.vmap(self.fn)(flat)
            except Exception:
                values = torch.stack([torch.as_tensor(self.fn(p), dtype=torch.float64) for p in flat])
        z = values.reshape(gx.shape).to(torch.float64).numpy()
        return gx.numpy(), gy.numpy(), z


def _point(label: str, value: Sequence[float]) -> Point:
    try:
        x, y = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{label} must be a pair of numbers, got {value!r}") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise ValueError(f"{label} must be finite, got {(x, y)}")
    return (x, y)


# ----------------------------------------------------------------- built-ins
# Written with xy[..., i] so that they work on one point and on a grid alike.


def _ravine(xy: torch.Tensor) -> torch.Tensor:
    # Curvature 0.1 along x, 8 across y (condition number 80). 8 is a power of two so
    # that GD at lr = 2/8 = 0.25, the edge of stability, bounces exactly wall to wall.
    x, y = xy[..., 0], xy[..., 1]
    return 0.5 * (0.1 * x**2 + 8.0 * y**2)


def _valley(xy: torch.Tensor) -> torch.Tensor:
    # A long, nearly flat floor (slope at most 0.05) ending in a round bowl at x = 0,
    # with steep walls across (curvature 10).
    x, y = xy[..., 0], xy[..., 1]
    return 0.05 * (torch.sqrt(1.0 + x**2) - 1.0) + 5.0 * y**2


def _rosenbrock(xy: torch.Tensor) -> torch.Tensor:
    x, y = xy[..., 0], xy[..., 1]
    return (1.0 - x) ** 2 + 100.0 * (y - x**2) ** 2


def _beale(xy: torch.Tensor) -> torch.Tensor:
    x, y = xy[..., 0], xy[..., 1]
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def _saddle(xy: torch.Tensor) -> torch.Tensor:
    # A saddle point at the origin between two minima at (0, +-1), value -0.25.
    x, y = xy[..., 0], xy[..., 1]
    return x**2 + 0.25 * y**4 - 0.5 * y**2


def _rastrigin(xy: torch.Tensor) -> torch.Tensor:
    x, y = xy[..., 0], xy[..., 1]
    two_pi = 2.0 * math.pi
    return 20.0 + x**2 - 10.0 * torch.cos(two_pi * x) + y**2 - 10.0 * torch.cos(two_pi * y)


SURFACES: dict[str, Surface] = {
    s.name: s
    for s in (
        Surface(
            "ravine",
            _ravine,
            start=(-10.0, 1.0),
            x_range=(-11.0, 3.0),
            y_range=(-1.5, 1.5),
            minima=((0.0, 0.0),),
            description="ill-conditioned quadratic 0.05x^2 + 4y^2: steep across (y), shallow along (x)",
        ),
        Surface(
            "valley",
            _valley,
            start=(-20.0, 1.0),
            x_range=(-22.0, 4.0),
            y_range=(-2.0, 2.0),
            minima=((0.0, 0.0),),
            description="long flat valley 0.05(sqrt(1+x^2)-1) + 5y^2: a gentle floor, steep walls",
        ),
        Surface(
            "rosenbrock",
            _rosenbrock,
            start=(-1.5, 2.0),
            x_range=(-2.0, 2.0),
            y_range=(-1.0, 3.0),
            minima=((1.0, 1.0),),
            log_contours=True,
            description="Rosenbrock's banana (1-x)^2 + 100(y-x^2)^2, minimum 0 at (1, 1)",
        ),
        Surface(
            "beale",
            _beale,
            start=(1.0, 1.5),
            x_range=(-4.5, 4.5),
            y_range=(-4.5, 4.5),
            minima=((3.0, 0.5),),
            log_contours=True,
            description="Beale's function, flat plateaus and sharp ridges, minimum 0 at (3, 0.5)",
        ),
        Surface(
            "saddle",
            _saddle,
            start=(-1.8, 0.01),
            x_range=(-2.0, 2.0),
            y_range=(-1.6, 1.6),
            minima=((0.0, 1.0), (0.0, -1.0)),
            description="x^2 + y^4/4 - y^2/2: a saddle at the origin between minima (0, +-1)",
        ),
        Surface(
            "rastrigin",
            _rastrigin,
            start=(3.3, -2.7),
            x_range=(-5.12, 5.12),
            y_range=(-5.12, 5.12),
            minima=((0.0, 0.0),),
            description="Rastrigin's egg crate: many local minima, global minimum 0 at the origin",
        ),
    )
}


def surface_names() -> tuple[str, ...]:
    """Names of the built-in surfaces."""
    return tuple(SURFACES)


def get_surface(name: str | Surface) -> Surface:
    """A built-in surface by name (a :class:`Surface` passes through)."""
    if isinstance(name, Surface):
        return name
    key = str(name).strip().lower()
    if key not in SURFACES:
        raise ValueError(f"unknown surface {name!r}; valid surfaces: {', '.join(SURFACES)}")
    return SURFACES[key]
