"""Sweeps: a TOML file -> a validated ``SweepSpec`` -> a grid of typed runs -> an executor.

``spec`` (the file and its validation), ``grid`` (runs and their ids), ``executors``
(inline, local processes, Ray).
"""

from lrlab.sweeps.executors import BACKENDS, SweepProgress, run_plans, run_sweep
from lrlab.sweeps.grid import RunPlan, build_task, expand, run_id_for
from lrlab.sweeps.spec import SweepSpec, SweepSpecError, check_task, load_sweep, substitute

__all__ = [
    "BACKENDS",
    "RunPlan",
    "SweepProgress",
    "SweepSpec",
    "SweepSpecError",
    "build_task",
    "check_task",
    "expand",
    "load_sweep",
    "run_id_for",
    "run_plans",
    "run_sweep",
    "substitute",
]
