"""Every import path the README, the docs and the examples name works, and every public path
that moved still imports, warns once with its new path, and gives the very same objects."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lrlab.deprecation import MOVED

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "examples").glob("*.py"))]
_FROM = re.compile(r"from (lrlab(?:\.\w+)*) import ([A-Za-z_][\w, ]*)")
_DOTTED = re.compile(r"(?<![\w/.-])(lrlab(?:\.[A-Za-z_]\w*)+)")
NOT_PATHS = {"lrlab.db"}  # the store's file name, not a module


def documented_paths() -> list[str]:
    """Dotted names (modules, or attributes of a module) the documents refer to."""
    found: set[str] = set()
    for doc in DOCUMENTS:
        text = doc.read_text(encoding="utf-8")
        for module, names in _FROM.findall(text):
            found.update(f"{module}.{n.strip()}" for n in names.split(",") if n.strip())
        found.update(m for m in _DOTTED.findall(text) if m not in NOT_PATHS)
    return sorted(found)


def resolve(path: str) -> object:
    """Import the longest module prefix of ``path`` and read the rest as attributes."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            obj = getattr(obj, attribute)
        return obj
    raise ModuleNotFoundError(path)


def test_the_documents_name_paths():
    paths = documented_paths()
    assert len(paths) > 50 and "lrlab.torch.LRScheduler" in paths and "lrlab.core.records" in paths


@pytest.mark.parametrize("path", documented_paths())
def test_a_documented_path_imports(path, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    assert resolve(path) is not None


@pytest.mark.parametrize("old", sorted(MOVED))
def test_a_moved_path_warns_once_with_its_new_path_and_gives_the_same_module(old):
    """In a fresh interpreter: the first import warns, naming the new path; a second import
    is silent; the module is the new one (the same class objects)."""
    code = f"""
import warnings, importlib
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    old = importlib.import_module({old!r})
    again = importlib.import_module({old!r})
mine = [w for w in caught if issubclass(w.category, DeprecationWarning) and {old!r} + " has moved" in str(w.message)]
assert len(mine) == 1, [str(w.message) for w in caught]
assert {MOVED[old]!r} in str(mine[0].message)
assert old is again is importlib.import_module({MOVED[old]!r})
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_a_user_task_file_written_against_the_old_tasks_path_still_loads(tmp_path):
    task_file = tmp_path / "my_tasks.py"
    task_file.write_text(
        "from lrlab.experiments.tasks import get_task\n"
        "def make_task():\n"
        "    return get_task('digits-linear')\n"
    )
    code = f"""
import sys, warnings
sys.path.insert(0, {str(tmp_path)!r})
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import my_tasks
    task = my_tasks.make_task()
print(task.name, any("lrlab.training.tasks" in str(w.message) for w in caught))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["digits-linear", "True"]


def test_an_unknown_old_looking_path_is_not_invented():
    code = "import importlib\ntry:\n    importlib.import_module('lrlab.experiments.nothing_here')\nexcept ModuleNotFoundError:\n    print('not found')\n"
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "not found", result.stderr
