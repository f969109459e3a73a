"""``lrlab find`` and ``find_lr`` misused: each is one line naming the option or argument,
the value and what is allowed (CLI: exit 2, no traceback, the store unchanged; Python: a
``TypeError`` or ``ValueError``), before any training; a range test that found no LR says
so plainly and stores nothing."""

from __future__ import annotations

import math

import pytest
import torch
from tests.hostile._cli import digest, one_line_error, run_cli
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from lrlab.finder import find_lr
from lrlab.store import Store
from lrlab.sweeps import run_sweep

TINY = ["--task", "digits-linear", "--num-iter", "12", "--confirm", "0"]


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-find")
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
    (["--start-lr", "1000", "--end-lr", "100000"], ["the range test found no LR", "lower --start-lr"]),
    (["--start-lr", "1e-3", "--end-lr", "1e-3"], ["--end-lr must be finite and > --start-lr (0.001), got 0.001"]),
    (["--start-lr", "0"], ["--start-lr must be a finite number > 0, got 0.0"]),
    (["--start-lr", "nan"], ["--start-lr must be a finite number > 0, got nan"]),
    (["--end-lr", "inf"], ["--end-lr must be finite"]),
    (["--num-iter", "1000000000"], ["--num-iter must be an integer >= 2", "at most 100000", "1000000000"]),
    (["--num-iter", "-5"], ["--num-iter must be an integer >= 2"]),
    (["--repeats", "1000"], ["--repeats must be an integer >= 1", "at most 100, got 1000"]),
    (["--confirm", "-1"], ["--confirm must be >= 0"]),
    (["--mode", "cubic"], ["--mode must be exp or linear, got 'cubic'"]),
    (["--batch-size", "0"], ["--batch-size must be >= 1, got 0"]),
    (["--device", "tpu"], ["device"]),
    (["--optimizer", "adam(betas=fast)"], ["bad --optimizer", "unknown word 'fast'"]),
    (["--optimizer", "nosuch"], ["bad --optimizer", "unknown optimizer 'nosuch'"]),
    (["--out", "{root}/a_file/f.png"], ["a_file', which is a file, not a folder"]),
    (["--seed", "-1"], ["--seed must be a whole number from 0"]),
]


@pytest.mark.parametrize(("extra", "words"), CLI_CASES, ids=[" ".join(c[0])[:40] for c in CLI_CASES])
def test_find_refuses_in_one_line_and_stores_nothing(place, extra, words, monkeypatch, capsys):
    db = place / "runs.db"
    before = digest(db)
    args = ["find", *TINY, "--db", str(db), *[a.replace("{root}", str(place)) for a in extra]]
    code, out, err = run_cli(args, place, monkeypatch, capsys)
    line = one_line_error(code, out, err)
    for word in words:
        assert word in line, (word, line)
    assert "cyclic" not in out and "recommended LR" not in out  # nothing half-printed
    assert digest(db) == before


def test_a_range_test_with_no_lr_and_no_store_is_the_same_line(place, monkeypatch, capsys):
    args = ["find", *TINY, "--start-lr", "1000", "--end-lr", "100000", "--no-store"]
    code, out, err = run_cli(args, place, monkeypatch, capsys)
    assert one_line_error(code, out, err).startswith("error: the range test found no LR: the loss diverged")
    assert out == ""


def test_a_record_without_an_lr_is_refused_by_the_store(tmp_path):
    from lrlab.core.records import FinderRecord

    store = Store(tmp_path / "x.db")
    nan = FinderRecord(id="f1", task="t", optimizer="sgd", lrs=torch.ones(2).numpy(), losses=torch.ones(2).numpy(),
                       smoothed=torch.ones(2).numpy(), suggestions={}, lr=math.nan, reason="none", config={})  # fmt: skip
    with pytest.raises(ValueError, match=r"range test 'f1': lr must be a finite number to be stored, got nan"):
        store.save_finder_result(nan)
    assert store.finder_results() == []
    store.close()


# ---- find_lr in Python ----------------------------------------------------------------


def _setup():
    torch.manual_seed(0)
    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    model = nn.Linear(4, 3)
    return model, torch.optim.SGD(model.parameters(), lr=0.1), DataLoader(TensorDataset(x, y), batch_size=16)


def _other_optimizer(model):
    return torch.optim.SGD(nn.Linear(4, 3).parameters(), lr=0.1)


def _wrong_inputs(loader):
    return DataLoader(TensorDataset(torch.randn(64, 7), torch.randint(0, 3, (64,))), batch_size=16)


PY_CASES = [
    ("model", lambda m, o, lf, ld: dict(model=[m]), TypeError, "model must be a torch.nn.Module, got list"),
    ("optimizer", lambda m, o, lf, ld: dict(optimizer="sgd"), TypeError,
     "optimizer must be a torch.optim.Optimizer built on the model's parameters, got str"),
    ("foreign optimizer", lambda m, o, lf, ld: dict(optimizer=_other_optimizer(m)), ValueError,
     "optimizer holds none of the model's parameters"),
    ("loss_fn", lambda m, o, lf, ld: dict(loss_fn="mse"), TypeError, "loss_fn must be a function or None, got str"),
    ("inputs", lambda m, o, lf, ld: dict(train_loader=_wrong_inputs(ld)), ValueError,
     r"train_loader: the model fails on the first batch \(inputs shape \(16, 7\), float32\): RuntimeError: "
     "mat1 and mat2 shapes cannot be multiplied"),
    ("num_iter", lambda m, o, lf, ld: dict(num_iter=10**9), ValueError, "num_iter must be an integer >= 2 .* at most 100000"),
    ("num_iter float", lambda m, o, lf, ld: dict(num_iter=50.0), ValueError, "num_iter must be an integer"),
    ("repeats", lambda m, o, lf, ld: dict(repeats=10**6), ValueError, "repeats must be an integer >= 1 .* at most 100"),
    ("confirm", lambda m, o, lf, ld: dict(confirm=10**9), ValueError, "confirm must be an integer >= 0 .* at most 100000"),
    ("accumulation", lambda m, o, lf, ld: dict(accumulation_steps=0), ValueError, "accumulation_steps must be an integer >= 1"),
    ("start_lr str", lambda m, o, lf, ld: dict(start_lr="1e-3"), TypeError, "start_lr must be a number, got str '1e-3'"),
    ("end_lr None", lambda m, o, lf, ld: dict(end_lr=None), TypeError, "end_lr must be a number, got NoneType"),
    ("smooth nan", lambda m, o, lf, ld: dict(smooth=math.nan), ValueError, r"smooth must be in \[0, 1\), got nan"),
    ("diverge", lambda m, o, lf, ld: dict(diverge="big"), TypeError, "diverge must be a number, got str"),
    ("amp", lambda m, o, lf, ld: dict(amp="yes"), TypeError, "amp must be True or False, got 'yes'"),
    ("halving", lambda m, o, lf, ld: dict(halving=1), TypeError, "halving must be True or False, got 1"),
    ("progress", lambda m, o, lf, ld: dict(progress=3), TypeError, "progress must be a function or None, got int 3"),
    ("generator", lambda m, o, lf, ld: dict(train_loader=iter(ld)), ValueError, "train_loader is a one-shot iterator"),
    ("empty", lambda m, o, lf, ld: dict(train_loader=[]), ValueError, "train_loader yielded no batches"),
    ("non-scalar loss", lambda m, o, lf, ld: dict(loss_fn=lambda out, t: F.cross_entropy(out, t, reduction="none")),
     ValueError, r"loss_fn must return one number per batch \(a mean\), got a tensor of shape \(16,\)"),
]  # fmt: skip


@pytest.mark.parametrize(("label", "change", "error", "pattern"), PY_CASES, ids=[c[0] for c in PY_CASES])
def test_find_lr_names_the_bad_argument_before_training(label, change, error, pattern):
    model, optimizer, loader = _setup()
    before = [p.detach().clone() for p in model.parameters()]
    args = {"model": model, "optimizer": optimizer, "loss_fn": F.cross_entropy, "train_loader": loader}
    args.update(change(model, optimizer, F.cross_entropy, loader))
    with pytest.raises(error, match=pattern):
        find_lr(args.pop("model"), args.pop("optimizer"), args.pop("loss_fn"), args.pop("train_loader"),
                num_iter=args.pop("num_iter", 20), **args)  # fmt: skip
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))  # nothing trained
    assert optimizer.state_dict()["state"] == {}
