"""Vectorised training: many runs of one configuration stacked and trained in one pass."""

from lrlab.training.vectorized.trainer import *  # noqa: F403
from lrlab.training.vectorized.trainer import __all__  # noqa: F401
