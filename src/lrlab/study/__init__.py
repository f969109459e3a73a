"""The one-command learning-rate study: finder -> sweep -> recommendation -> report."""

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
