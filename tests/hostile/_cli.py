"""Running a command through the real entry point (``lrlab.cli.main``) in this process, and a
digest of everything stored, for the hostile-input tests."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from lrlab.cli import main

TASKS = '''
import sys
import torch
from torch import nn
from lrlab.training.tasks import Task, TensorPairs

g = torch.Generator().manual_seed(0)
X = torch.randn(96, 5, generator=g)
Y = torch.randint(0, 5, (96,), generator=g)


def _task(model, train=(X, Y), val=(X[:32], Y[:32]), kind="classification", **custom):
    return Task("toy", kind, 2, 16, model, TensorPairs(*train), TensorPairs(*val), **custom)


def good():
    return _task(lambda: nn.Linear(5, 5))


def few_classes():
    return _task(lambda: nn.Linear(5, 3))


def float_labels_two_outputs():
    return _task(lambda: nn.Linear(5, 2), (X, Y.float()), (X, Y.float()))


def regression_two_outputs():
    return _task(lambda: nn.Linear(5, 2), (X, Y.float()), (X, Y.float()), kind="regression")


def wrong_inputs():
    return _task(lambda: nn.Linear(4, 5))


def empty_validation():
    return _task(lambda: nn.Linear(5, 5), val=(X[:0], Y[:0]))


def empty_training():
    return _task(lambda: nn.Linear(5, 5), train=(X[:0], Y[:0]))


def loss_per_example():
    return _task(lambda: nn.Linear(5, 5), loss_fn=lambda o, t: nn.functional.cross_entropy(o, t, reduction="none"))


def loss_without_gradient():
    return _task(lambda: nn.Linear(5, 5), loss_fn=lambda o, t: torch.tensor(float(nn.functional.cross_entropy(o, t).detach())))


def loss_is_a_float():
    return _task(lambda: nn.Linear(5, 5), loss_fn=lambda o, t: float(nn.functional.cross_entropy(o, t).detach()))


def negative_labels():
    return _task(lambda: nn.Linear(5, 5), (X, Y - 1), (X, Y - 1))


def model_not_a_module():
    return _task(lambda: "a model")


def model_raises():
    def build():
        raise KeyError("weights")
    return _task(build)


def factory_raises():
    raise RuntimeError("the data folder is missing")


def factory_exits():
    sys.exit(3)


def returns_a_number():
    return 3


def with_option(speed=1.0):
    float(speed)
    return good()


not_a_function = 3
'''

BROKEN_FILES = {
    "raises_at_import.py": "raise RuntimeError('no GPU here')\n",
    "syntax_error.py": "def make(:\n    pass\n",
    "exits_at_import.py": "import sys\nsys.exit(1)\n",
    "keyboard_words.py": "import nosuchmodule_xyz\n",
}


def write_tasks(root: Path) -> None:
    (root / "tasks.py").write_text(TASKS)
    for name, text in BROKEN_FILES.items():
        (root / name).write_text(text)


def digest(path: Path) -> str:
    """The bytes of the store and its write-ahead log, if any."""
    parts = [p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists()]
    return hashlib.sha256(b"|".join(parts)).hexdigest()


def run_cli(args: list[str], cwd: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``lrlab <args>`` run in this process from ``cwd``."""
    monkeypatch.setattr(sys, "argv", ["lrlab", *args])
    monkeypatch.setenv("COLUMNS", "400")
    monkeypatch.chdir(cwd)
    capsys.readouterr()
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(code: int, out: str, err: str) -> str:
    """The one error line of a refused command (asserting exit 2, no traceback, one line)."""
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2, (code, out[-2000:], err[-2000:])
    assert "Traceback" not in out + err
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    return lines[0]
