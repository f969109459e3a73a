"""``lrlab study`` and ``lrlab.study(...)`` misused: sizes out of range, a Ray cluster that
does not answer, arguments of the wrong type. Each is one line naming the option or argument,
the value and what is allowed, before anything is stored (CLI: exit 2, no traceback, the
store's bytes unchanged; Python: ``ValueError``/``TypeError``)."""

from __future__ import annotations

import math

import pytest
import torch
from tests.hostile._cli import digest, one_line_error, run_cli, write_tasks
from torch import nn

import lrlab
from lrlab.store import Store
from lrlab.sweeps import run_sweep


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-study")
    write_tasks(root)
    (root / "good.toml").write_text(
        'name = "good"\ntask = "digits-linear"\ntask_options = { train_size = 64, val_size = 32 }\n'
        "epochs = 1\nbatch_size = 32\n\n[grid]\nlr = [0.1]\n"
    )
    store = Store(root / "runs.db")
    run_sweep(root / "good.toml", store)
    store.close()
    (root / "a_file").write_text("x")
    return root


CLI_CASES = [
    (["--epochs", "7000000000000"], ["--epochs must be from 1 to 100,000, got 7,000,000,000,000"]),
    (["--epochs", "100001"], ["--epochs must be from 1 to 100,000"]),
    (["--epochs", "-3"], ["--epochs must be from 1 to 100,000, got -3"]),
    (["--backend", "ray", "--address", "127.0.0.1:1"], ["no Ray cluster answers at 127.0.0.1:1"]),
    (["--backend", "spark"], ["--backend must be local or ray, got 'spark'"]),
    (["--jobs", "0"], ["--jobs must be >= 1, got 0"]),
    (["--budget", "tiny"], ["--budget must be one of small, medium, large, got 'tiny'"]),
    (["--optimizers", "adam(betas=fast)"], ["unknown word 'fast'"]),
    (["--optimizers", "sgd,,"], []),
    (["--device", "tpu"], ["device"]),
    (["--out", "{root}/a_file"], ["--out must be a folder"]),
    (["--task", "tasks.py:few_classes"], ["targets hold class 4"]),
    (["--task", "tasks.py:empty_training"], ["has an empty training set"]),
]


@pytest.mark.parametrize(("extra", "words"), CLI_CASES, ids=[" ".join(c[0])[:40] for c in CLI_CASES])
def test_study_refuses_in_one_line_and_stores_nothing(place, extra, words, monkeypatch, capsys):
    db = place / "runs.db"
    before = digest(db)
    args = ["study", "--db", str(db), "--quiet", "--jobs", "1", *[a.replace("{root}", str(place)) for a in extra]]
    if extra == ["--optimizers", "sgd,,"]:  # empty entries are dropped: sgd alone; point it at an empty task
        args += ["--task", "tasks.py:empty_validation"]
    line = one_line_error(*run_cli(args, place, monkeypatch, capsys))
    for word in words:
        assert word in line, (word, line)
    assert digest(db) == before


def test_a_study_whose_runs_would_be_too_long_is_refused_before_the_range_test(place, monkeypatch, capsys):
    """100,000 epochs (the most --epochs takes) of 200 batches of one example: 20 million
    steps per run, more than a study trains; refused before anything is stored."""
    (place / "long.py").write_text(
        "import torch\nfrom torch import nn\nfrom lrlab.training.tasks import Task, TensorPairs\n\n"
        "def make():\n    x, y = torch.randn(200, 5), torch.arange(200) % 5\n"
        "    return Task('long', 'classification', 2, 1, lambda: nn.Linear(5, 5), TensorPairs(x, y), "
        "TensorPairs(x, y))\n"
    )
    db = place / "runs.db"
    before = digest(db)
    args = ["study", "--db", str(db), "--quiet", "--task", "long.py:make", "--epochs", "100000"]
    line = one_line_error(*run_cli(args, place, monkeypatch, capsys))
    assert line == (
        "error: epochs: 100,000 epoch(s) x 200 batch(es) = 20,000,000 steps per run, more than a study trains "
        "(10,000,000); lower epochs or raise the batch size"
    ), line
    assert digest(db) == before


# ---- lrlab.study in Python -------------------------------------------------------------

X, Y = torch.randn(64, 4, generator=torch.Generator().manual_seed(0)), torch.arange(64) % 3


def _model():
    return nn.Linear(4, 3)


PY_CASES = [
    ({"epochs": 7_000_000_000_000}, r"epochs must be a whole number >= 1, got 7000000000000 \(at most 100,000\)"),
    ({"epochs": "fast"}, r"epochs must be a whole number >= 1, got 'fast' \(at most 100,000\)"),
    ({"epochs": math.nan}, r"epochs must be a whole number >= 1, got nan \(at most 100,000\)"),
    ({"epochs": True}, "epochs must be a whole number"),
    ({"batch_size": 0}, "batch_size must be a whole number >= 1"),
    ({"batch_size": 2.5}, "batch_size must be a whole number >= 1"),
    ({"batch_size": 10**12}, r"batch_size must be a whole number >= 1, got 1000000000000 \(at most 2,147,483,647\)"),
    ({"budget": "huge"}, "budget must be one of small, medium, large, got 'huge'"),
    ({"optimizers": [3]}, "optimizers must be optimizer names or specs .* got 3"),
    ({"optimizers": []}, "optimizers must name at least one optimizer"),
    ({"optimizers": ["adam(betas=fast)"]}, "unknown word 'fast'"),
    ({"kind": "ranking"}, "kind must be one of classification, language_model, regression, got 'ranking'"),
    ({"loss_fn": 3}, "loss_fn must be a function"),
    ({"metrics": 3}, "metrics must be a dict of name -> function"),
    ({"metrics": {"val_loss": abs}}, "metrics must map new metric names"),
    ({"objective": "val_f1"}, "objective 'val_f1' is not a metric"),
    ({"name": "a:b"}, "name must be a plain name"),
    ({"device": "tpu"}, "device"),
    ({"progress": 3}, "progress must be a function of one event, or None, got int"),
    ({"store": 3}, r"store must be a path \(str or Path\) or a Store, got int"),
    ({"loss_fn": lambda o, t: nn.functional.cross_entropy(o, t, reduction="none")},
     r"the loss must be one number per batch \(a mean\), got a tensor of shape \(16,\)"),
    ({"kind": "classification", "train": (X, Y.float())}, "float targets make a regression"),
    ({"train": (X[:, :3], Y)}, r"the model fails on a batch of inputs \(16, 3\) float32: RuntimeError: mat1 and mat2"),
    ({"train": (X, Y + 3)}, "the targets hold class 5 but the model gives 3 output"),
    ({"val": (X[:0], Y[:0])}, r"val is empty \(no examples\)"),
    ({"train": (X[:0], Y[:0])}, r"train is empty \(no examples\)"),
    ({"train": (X, Y[:10])}, "inputs and targets differ in length: 64 != 10"),
    ({"model_fn": nn.Linear(4, 3)(X)}, "model_fn must be a function"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "pattern"), PY_CASES, ids=[str(sorted(c[0]))[:40] for c in PY_CASES])
def test_lrlab_study_names_the_bad_argument_before_anything_is_stored(tmp_path, change, pattern, one_thread):
    args = {"model_fn": _model, "train": (X, Y), "val": (X[:32], Y[:32]), "store": tmp_path / "runs.db",
            "batch_size": 16, "epochs": 1}  # fmt: skip
    args.update(change)
    with pytest.raises((ValueError, TypeError), match=pattern):
        lrlab.study(args.pop("model_fn"), args.pop("train"), args.pop("val"), **args)
    path = tmp_path / "runs.db"
    if path.exists():
        store = Store(path)
        assert store.runs() == [] and store.finder_results() == []
        store.close()
