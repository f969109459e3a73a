"""The one-command learning-rate study: finder -> sweep -> recommendation (the CLI adds the report)."""

from lrlab.study.codegen import keras_snippet, torch_snippet
from lrlab.study.plan import BUDGETS, study_schedules
from lrlab.study.recommend import Candidate, Recommendation, recommend
from lrlab.study.run import StudyEvent, StudyResult, run_study

__all__ = [
    "BUDGETS",
    "Candidate",
    "Recommendation",
    "StudyEvent",
    "StudyResult",
    "keras_snippet",
    "recommend",
    "run_study",
    "study_schedules",
    "torch_snippet",
]
