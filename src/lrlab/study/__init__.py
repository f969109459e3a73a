"""The one-command learning-rate study: finder -> sweep -> recommendation -> report.

``lrlab.study(model_fn, train, val, ...)`` runs it on the user's own model: this package
is callable (:func:`lrlab.study.api.study`).
"""

import sys
import types

from lrlab.study.codegen import keras_snippet, torch_snippet
from lrlab.study.plan import BUDGETS, study_schedules
from lrlab.study.recommend import Candidate, Recommendation, recommend
from lrlab.study.run import StudyEvent, StudyFiles, StudyResult, run_study

__all__ = [
    "BUDGETS",
    "Candidate",
    "Recommendation",
    "StudyEvent",
    "StudyFiles",
    "StudyResult",
    "keras_snippet",
    "recommend",
    "run_study",
    "study_schedules",
    "torch_snippet",
]


class _CallableModule(types.ModuleType):
    """``lrlab.study(...)`` calls :func:`lrlab.study.api.study`; ``lrlab.study.X`` stays the package."""

    def __call__(self, *args: object, **kwargs: object) -> object:
        from lrlab.study.api import study

        return study(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
