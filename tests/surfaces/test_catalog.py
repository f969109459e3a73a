"""Built-in surfaces: known minima are minima, the API accepts user functions, bad input is named."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lrlab.surfaces import SURFACES, Surface, get_surface, surface_names

NAMES = ("ravine", "valley", "rosenbrock", "beale", "saddle", "rastrigin")


def test_the_six_named_surfaces_are_built_in() -> None:
    assert set(NAMES) <= set(surface_names())


@pytest.mark.parametrize("name", NAMES)
def test_each_minimum_has_the_stated_value_and_zero_gradient(name: str) -> None:
    surface = get_surface(name)
    assert surface.minima and surface.min_value is not None
    for minimum in surface.minima:
        point = torch.tensor(minimum, dtype=torch.float64, requires_grad=True)
        value = surface(point)
        value.backward()
        assert value.item() == pytest.approx(surface.min_value, abs=1e-12)
        assert float(point.grad.norm()) < 1e-9


@pytest.mark.parametrize("name", NAMES)
def test_start_lies_in_the_box_and_is_not_a_minimum(name: str) -> None:
    surface = get_surface(name)
    (x0, x1), (y0, y1) = surface.x_range, surface.y_range
    assert x0 <= surface.start[0] <= x1 and y0 <= surface.start[1] <= y1
    assert float(surface(torch.tensor(surface.start, dtype=torch.float64))) > surface.min_value + 1e-3


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(NAMES), st.floats(0, 1), st.floats(0, 1))
def test_no_point_of_the_box_is_below_the_minimum(name: str, u: float, v: float) -> None:
    surface = SURFACES[name]
    x = surface.x_range[0] + u * (surface.x_range[1] - surface.x_range[0])
    y = surface.y_range[0] + v * (surface.y_range[1] - surface.y_range[0])
    assert float(surface(torch.tensor([x, y], dtype=torch.float64))) >= surface.min_value - 1e-12


@pytest.mark.parametrize("name", NAMES)
def test_grid_matches_pointwise_values(name: str) -> None:
    surface = get_surface(name)
    x, y, z = surface.grid(7)
    assert x.shape == y.shape == z.shape == (7, 7)
    i, j = 3, 5
    direct = float(surface(torch.tensor([x[i, j], y[i, j]], dtype=torch.float64)))
    assert z[i, j] == pytest.approx(direct)


def test_the_ravine_is_steep_across_and_shallow_along() -> None:
    hessian = torch.autograd.functional.hessian(get_surface("ravine").fn, torch.zeros(2, dtype=torch.float64))
    assert float(hessian[1, 1]) / float(hessian[0, 0]) == pytest.approx(80.0)


def test_a_user_function_indexing_a_single_point_works_with_grids() -> None:
    surface = Surface("bowl", lambda xy: (xy[0] - 1) ** 2 + 3 * xy[1] ** 2, start=(3, 2),
                      x_range=(-4, 4), y_range=(-4, 4), minima=[(1, 0)])  # fmt: skip
    assert surface.min_value == 0.0
    _, _, z = surface.grid(9)
    assert z.min() >= 0 and np.isfinite(z).all()
    assert surface.distance_to_minimum((4.0, 4.0)) == pytest.approx(5.0)


def test_a_user_function_without_known_minimum_has_no_distance() -> None:
    surface = Surface(
        "wave", lambda xy: torch.sin(xy[..., 0]) * xy[..., 1], start=(1, 1), x_range=(-3, 3), y_range=(-3, 3)
    )
    assert surface.min_value is None and surface.distance_to_minimum((0, 0)) is None


def test_unknown_surface_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="valid surfaces: ravine, valley, rosenbrock"):
        get_surface("himmelblau")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"start": (math.nan, 0)}, "start must be finite"), ({"x_range": (1, -1)}, "x_range"),
     ({"across_axis": 2}, "across_axis"), ({"start": (1, 2, 3)}, "start must be a pair")],
)  # fmt: skip
def test_bad_surface_definitions_name_the_field(kwargs: dict, message: str) -> None:
    base = {"name": "s", "fn": lambda xy: xy[0] ** 2, "start": (1, 1), "x_range": (-2, 2), "y_range": (-2, 2)}
    with pytest.raises(ValueError, match=message):
        Surface(**{**base, **kwargs})
