"""Tasks: built-in learning problems and user tasks by reference.

``get_task(ref, **options)`` accepts a built-in name (``BUILTIN_TASKS``), a
``"package.module:function"`` reference or a ``"path/to/file.py:function"`` reference;
the function is called with ``options`` and must return a :class:`Task`. A task built in
Python (``lrlab.study`` on the user's model) is no reference: it is handed down as the
object itself (``run_study``, ``run_plans``, ``train_run``), never looked up by name.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from lrlab.training.tasks._base import TASK_KINDS, Task, TensorPairs, batch_count
from lrlab.training.tasks.check import check_task, first_line, user_frame
from lrlab.training.tasks.options import check_options, parse_options
from lrlab.training.trial_task import as_task, is_trainable

__all__ = ["BUILTIN_TASKS", "REGISTRY", "TASK_KINDS", "Task", "TensorPairs", "batch_count", "check_options", "check_task",
           "get_task", "is_reference", "parse_options"]  # fmt: skip

# Built-in names -> "module:function", imported on first use.
REGISTRY: dict[str, str] = {
    "digits-linear": "lrlab.training.tasks.digits:digits_linear",
    "digits-mlp": "lrlab.training.tasks.digits:digits_mlp",
    "digits-cnn": "lrlab.training.tasks.digits:digits_cnn",
    "chars-lstm": "lrlab.training.tasks.chars:chars_lstm",
    "chars-transformer": "lrlab.training.tasks.chars:chars_transformer",
    "digits-transfer": "lrlab.training.tasks.transfer:digits_transfer",
    "sunspots-lstm": "lrlab.training.tasks.series:sunspots_lstm",
    "sunspots-gru": "lrlab.training.tasks.series:sunspots_gru",
    "sunspots": "lrlab.training.tasks.series:sunspots",
}
BUILTIN_TASKS: tuple[str, ...] = tuple(REGISTRY)

_TASK_METHODS = ("make_model", "train_loader", "val_loader", "loss_fn", "evaluate")


def is_reference(name: str) -> bool:
    """Whether ``name`` is something :func:`get_task` builds: a built-in task's name or a
    ``module:function`` / ``file.py:function`` reference (whether it imports aside)."""
    return name in REGISTRY or ":" in name


def get_task(ref: str, **options: Any) -> Task:
    """The task named by ``ref``, built with ``options``.

    >>> get_task("digits-linear", train_size=100).name
    'digits-linear'
    """
    if not isinstance(ref, str) or not ref:
        raise ValueError(f"task must be a non-empty string, got {ref!r}")
    if not is_reference(ref):
        raise ValueError(
            f"unknown task {ref!r} (built-in: {', '.join(BUILTIN_TASKS)}; "
            "or 'package.module:function' or 'path/to/file.py:function')"
        )
    factory = _import(REGISTRY.get(ref, ref), ref)
    if is_trainable(factory):  # a function declared with @lrlab.trainable: its options are its own
        return as_task(factory, options)
    task = _call(factory, ref, options)
    missing = [m for m in _TASK_METHODS if not callable(getattr(task, m, None))]
    if missing:
        raise ValueError(
            f"task {ref!r} returned {type(task).__name__}, not a Task (missing {', '.join(missing)})"
        )
    return task


def _import(target: str, ref: str) -> Any:
    location, _, attribute = target.rpartition(":")
    if not location or not attribute:
        raise ValueError(f"task reference {ref!r} must look like 'module:function' or 'file.py:function'")
    try:
        if location.endswith(".py") or "/" in location or "\\" in location:
            module = _load_file(Path(location), ref)
        else:
            module = importlib.import_module(location)
    except ImportError as exc:
        raise ValueError(f"cannot import task {ref!r}: {exc}") from None
    except SyntaxError as exc:
        where = f"{Path(exc.filename or location).name} line {exc.lineno}" if exc.lineno else location
        raise ValueError(f"task {ref!r}: syntax error in {where}: {exc.msg}; fix the file") from None
    except SystemExit as exc:
        raise ValueError(
            f"task {ref!r}: importing {location} called sys.exit({exc.code!r}); a task file must only define "
            "its functions at import (put script code under `if __name__ == \"__main__\":`)"
        ) from None
    except Exception as exc:
        raise ValueError(f"task {ref!r}: importing {location} raised {_first_line(exc)}{_where(exc)}; "
                         "fix the file") from None  # fmt: skip
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ValueError(f"task {ref!r}: {location} has no attribute {attribute!r}") from None


def _call(factory: Any, ref: str, options: dict[str, Any]) -> Any:
    """``factory(**options)``; options it does not take, or a factory that raises: one
    ``ValueError`` naming the task, the options and what went wrong."""
    import inspect

    name = getattr(factory, "__name__", ref.rpartition(":")[2])
    if not callable(factory):
        raise ValueError(
            f"task {ref!r}: {name} is {type(factory).__name__} {factory!r}, not a function that returns a Task"
        )
    # an unknown key or a wrong type: one line (a built-in task names a bad value itself)
    options = check_options(factory, ref, options, types=ref not in REGISTRY)
    try:
        inspect.signature(factory).bind(**options)
    except TypeError as exc:
        takes = _parameters(factory)
        raise ValueError(f"task {ref!r}: bad options {options!r}: {exc} (it takes: {takes})") from None
    except ValueError:  # no signature to read (a builtin): the call itself says
        pass
    try:
        return _recorded(factory(**options), options)
    except (KeyboardInterrupt, MemoryError):
        raise
    except SystemExit as exc:
        raise ValueError(f"task {ref!r}: {name}() called sys.exit({exc.code!r}); it must return a Task") from None
    except BaseException as exc:
        given = ", ".join(f"{k}={v!r}" for k, v in options.items())
        if ref in REGISTRY and isinstance(exc, ValueError):
            raise ValueError(f"task {ref!r}: {exc}") from None  # the built-in's own check names the option
        raise ValueError(f"task {ref!r}: {name}({given}) raised {_first_line(exc)}{_where(exc)}") from None


def _recorded(task: Any, options: dict[str, Any]) -> Any:
    """``task`` with the options it was built with in its ``options`` (those its function did
    not record itself), so that its fingerprint tells two variants of one function apart."""
    known = getattr(task, "options", None)
    if options and isinstance(known, dict):
        task.options = {**options, **known}
    return task


def _parameters(factory: Any) -> str:
    import inspect

    try:
        names = [p.name for p in inspect.signature(factory).parameters.values()
                 if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]  # fmt: skip
    except (TypeError, ValueError):
        return "unknown"
    return ", ".join(names) or "no options"


def _first_line(exc: BaseException) -> str:
    return first_line(exc)


def _where(exc: BaseException) -> str:
    return user_frame(exc)


def _load_file(path: Path, ref: str) -> Any:
    path = path.expanduser().resolve()
    if not path.is_file():
        raise ValueError(f"task {ref!r}: no file {str(path)!r}")
    name = f"_lrlab_user_task_{abs(hash(str(path)))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"task {ref!r}: cannot load {str(path)!r} as a module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
