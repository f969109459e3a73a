"""Public import paths that moved keep working: importing an old path gives the module at its
new path, with one ``DeprecationWarning`` that names the new path.

Every move of a documented module adds a line to :data:`MOVED`; ``lrlab/__init__.py``
installs :class:`MovedFinder` once, so ``from lrlab.store.records import RunConfig`` still
works (the same class objects as ``lrlab.core.records``).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

# old module path -> new module path
MOVED: dict[str, str] = {
    # the first layout (experiments/) became training/ and store/
    "lrlab.experiments": "lrlab.training",
    "lrlab.experiments.tasks": "lrlab.training.tasks",
    "lrlab.experiments.tasks.digits": "lrlab.training.tasks.digits",
    "lrlab.experiments.tasks.chars": "lrlab.training.tasks.chars",
    "lrlab.experiments.tasks.transfer": "lrlab.training.tasks.transfer",
    "lrlab.experiments.store": "lrlab.store.sqlite",
    "lrlab.experiments.api": "lrlab.store.queries",
    "lrlab.finder.range_test": "lrlab.finder.range",
    # the domain core and the figure package moved below the store and the report
    "lrlab.store.records": "lrlab.core.records",
    "lrlab.report.ranking": "lrlab.core.ranking",
    "lrlab.report.grouping": "lrlab.core.grouping",
    "lrlab.report.diagnostics": "lrlab.core.diagnostics",
    "lrlab.report.static": "lrlab.plot.static",
    "lrlab.report.schedule_figures": "lrlab.plot.schedules",
    "lrlab.report.downsample": "lrlab.plot.downsample",
}


def _caller_level() -> int:
    """The stack level of the code that asked for the import (past the import machinery
    and this module), so that the warning points at the user's line."""
    frame, level = sys._getframe(1), 1
    while frame is not None and (
        frame.f_code.co_filename.startswith("<frozen importlib") or frame.f_globals.get("__name__") == __name__
    ):
        frame, level = frame.f_back, level + 1
    return level


class _MovedLoader(importlib.abc.Loader):
    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        warnings.warn(
            f"{module.__name__} has moved to {self.new}: import it from there", DeprecationWarning,
            stacklevel=_caller_level(),
        )  # fmt: skip
        # The import system returns whatever sys.modules holds for the name once this ends.
        sys.modules[module.__name__] = importlib.import_module(self.new)


class MovedFinder(importlib.abc.MetaPathFinder):
    """Finds exactly the old paths of :data:`MOVED` (nothing else)."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        new = MOVED.get(name)
        if new is None:
            return None
        is_package = any(old.startswith(name + ".") for old in MOVED)
        return importlib.machinery.ModuleSpec(name, _MovedLoader(new), is_package=is_package)


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, MovedFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, MovedFinder())
