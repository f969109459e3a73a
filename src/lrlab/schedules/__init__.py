"""Learning-rate (and momentum) schedules as immutable values: pure numpy math.

``s(t)`` gives the value at optimizer step ``t`` (0-based) for a number or a numpy
array of steps. Every schedule has ``to_dict()``, ``str(s)`` (a spec string), and is
read back by ``from_dict`` and ``parse``.
"""

from lrlab.schedules._base import Schedule
from lrlab.schedules.combinators import SequenceSchedule, Warmup, sequence, warmup
from lrlab.schedules.cosine import Cosine, CosineRestarts, cosine, cosine_restarts
from lrlab.schedules.cyclic import Cyclic, cyclic
from lrlab.schedules.decay import (
    Constant,
    Exponential,
    InverseSqrt,
    InverseTime,
    Linear,
    Multistep,
    Polynomial,
    StepDecay,
    constant,
    exponential,
    inverse_sqrt,
    inverse_time,
    linear,
    multistep,
    polynomial,
    step_decay,
)
from lrlab.schedules.one_cycle import OneCycle, OneCycleMomentum, momentum_for, one_cycle, one_cycle_momentum
from lrlab.schedules.plateau import Plateau, PlateauState, observe, plateau
from lrlab.schedules.spec import SpecError, from_dict, parse
from lrlab.schedules.wsd import WarmupStableDecay, wsd

FAMILIES = (
    "constant",
    "step_decay",
    "multistep",
    "exponential",
    "inverse_time",
    "polynomial",
    "linear",
    "cosine",
    "cosine_restarts",
    "cyclic",
    "one_cycle",
    "inverse_sqrt",
    "wsd",
    "warmup",
    "sequence",
)

__all__ = [
    "FAMILIES",
    "Constant",
    "Cosine",
    "CosineRestarts",
    "Cyclic",
    "Exponential",
    "InverseSqrt",
    "InverseTime",
    "Linear",
    "Multistep",
    "OneCycle",
    "OneCycleMomentum",
    "Plateau",
    "PlateauState",
    "Polynomial",
    "Schedule",
    "SequenceSchedule",
    "SpecError",
    "StepDecay",
    "Warmup",
    "WarmupStableDecay",
    "constant",
    "cosine",
    "cosine_restarts",
    "cyclic",
    "exponential",
    "from_dict",
    "inverse_sqrt",
    "inverse_time",
    "linear",
    "momentum_for",
    "multistep",
    "observe",
    "one_cycle",
    "one_cycle_momentum",
    "parse",
    "plateau",
    "polynomial",
    "sequence",
    "step_decay",
    "warmup",
    "wsd",
]
