"""The learning-rate finder: an LR range test and rules that read its curve.

``find_lr`` runs the test (torch); ``lrlab.finder.suggest`` holds the pure rules
(``steepest``, ``valley``, ``minimum_tenth``, ``minimum_divided``, and the decision rule of
the article's halving search, which ``halving_search`` runs).
"""

from lrlab.finder.halving import HalvingResult, halving_search
from lrlab.finder.range import find_lr
from lrlab.finder.result import FinderResult
from lrlab.finder.suggest import (
    RULES,
    cyclic_bounds,
    minimum_divided,
    minimum_tenth,
    smooth_losses,
    steepest,
    valley,
)

__all__ = [
    "RULES",
    "FinderResult",
    "HalvingResult",
    "cyclic_bounds",
    "find_lr",
    "halving_search",
    "minimum_divided",
    "minimum_tenth",
    "smooth_losses",
    "steepest",
    "valley",
]
