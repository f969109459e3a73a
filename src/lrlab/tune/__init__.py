"""Automatic tuning of schedule hyperparameters: Optuna searches a space of schedules
(``space``), every trial an ordinary lrlab run (``engine``); Ray for many machines
(``ray_backend``); population-based training as a second method (``pbt``); the report
(``report``)."""

from lrlab.tune.engine import BACKENDS, Bias, TrialOutcome, TuneEvent, TuneResult, tune
from lrlab.tune.space import Choice, Context, Space, SpaceError, parse_space
from lrlab.tune.spec import TuneSpec, TuneSpecError, load_tune

__all__ = [
    "BACKENDS",
    "Bias",
    "Choice",
    "Context",
    "Space",
    "SpaceError",
    "TrialOutcome",
    "TuneEvent",
    "TuneResult",
    "TuneSpec",
    "TuneSpecError",
    "load_tune",
    "parse_space",
    "tune",
]
