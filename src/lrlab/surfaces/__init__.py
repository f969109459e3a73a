"""Optimizer trajectories on 2-D error surfaces, with and without learning-rate schedules.

Example:
    >>> from lrlab.surfaces import run_trajectories
    >>> trajs = run_trajectories("ravine", ["sgd(lr=0.25)", "nesterov(lr=0.05)"], steps=100)
    >>> [t.steps_to_tol for t in trajs]
    [None, 48]
"""

from lrlab.surfaces.catalog import SURFACES, Surface, get_surface, surface_names
from lrlab.surfaces.scenarios import SCENARIOS, Finding, Scenario, ScenarioResult, run_scenario
from lrlab.surfaces.trajectory import (
    OPTIMIZER_NAMES,
    Trajectory,
    as_surface,
    run_trajectories,
    run_trajectory,
)

__all__ = [
    "OPTIMIZER_NAMES",
    "SCENARIOS",
    "SURFACES",
    "Finding",
    "Scenario",
    "ScenarioResult",
    "Surface",
    "Trajectory",
    "as_surface",
    "get_surface",
    "run_scenario",
    "run_trajectories",
    "run_trajectory",
    "surface_names",
]
