"""Built-in and user tasks: real data, deterministic loaders, metrics with numbers."""

from __future__ import annotations

import textwrap

import pytest
import torch

from lrlab.training.tasks import BUILTIN_TASKS, Task, TensorPairs, get_task
from lrlab.training.tasks.chars import VOCAB_SIZE, load_corpus


def test_registry_lists_the_builtins():
    assert {"digits-linear", "digits-mlp", "digits-cnn", "chars-lstm", "chars-transformer",
            "digits-transfer"} <= set(BUILTIN_TASKS)  # fmt: skip


@pytest.mark.parametrize("name", ["digits-linear", "digits-mlp", "digits-cnn"])
def test_digits_tasks_have_fixed_split_and_chance_level_start(name):
    task = get_task(name)
    assert task.kind == "classification"
    assert len(task.train_data) + len(task.val_data) == 1797
    assert len(task.val_data) == 359
    metrics = task.evaluate(task.make_model(0), task.val_loader(128))
    # An untrained 10-class model is near chance: loss ~ ln 10, error ~ 0.9.
    assert 1.8 < metrics["val_loss"] < 2.8
    assert metrics["val_error"] == pytest.approx(1 - metrics["val_accuracy"])
    assert metrics["val_accuracy"] < 0.35


@pytest.mark.parametrize("name", ["chars-lstm", "chars-transformer"])
def test_char_models_give_per_token_loss_near_log_vocab(name):
    task = get_task(name, corpus_chars=20_000, block_size=32)
    assert task.kind == "language_model"
    inputs, targets = next(iter(task.train_loader(8, seed=0)))
    assert inputs.shape == (8, 32) and torch.equal(inputs[:, 1:], targets[:, :-1])
    metrics = task.evaluate(task.make_model(0), task.val_loader(64))
    assert abs(metrics["val_loss"] - torch.log(torch.tensor(float(VOCAB_SIZE))).item()) < 0.5
    assert metrics["val_error"] is None and metrics["val_accuracy"] is None


def test_transformer_is_causal():
    task = get_task("chars-transformer", corpus_chars=5_000, block_size=16)
    model = task.make_model(0).eval()
    ids = torch.randint(0, VOCAB_SIZE, (1, 16))
    changed = ids.clone()
    changed[0, 10:] = (changed[0, 10:] + 1) % VOCAB_SIZE
    with torch.no_grad():
        torch.testing.assert_close(model(ids)[0, :10], model(changed)[0, :10])


def test_corpus_is_stdlib_text_and_deterministic():
    corpus = load_corpus(50_000)
    assert len(corpus) == 50_000 and "def " in corpus and "import" in corpus
    assert load_corpus.__wrapped__(50_000) == corpus


def test_loaders_are_deterministic_given_seed():
    task = get_task("digits-linear", train_size=200)

    def order(seed):
        return torch.cat([y for _, y in task.train_loader(32, seed)])

    assert torch.equal(order(3), order(3))
    assert not torch.equal(order(3), order(4))
    assert sum(len(y) for _, y in task.train_loader(32, 0)) == 200
    first = torch.cat([y for _, y in task.val_loader(50)])
    assert torch.equal(first, torch.cat([y for _, y in task.val_loader(50)]))


def test_same_seed_same_weights():
    task = get_task("digits-cnn")
    a, b = task.make_model(7), task.make_model(7)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_subsampling_options():
    task = get_task("digits-mlp", train_size=100, val_size=50, hidden=16)
    assert len(task.train_data) == 100 and len(task.val_data) == 50
    with pytest.raises(ValueError, match="train_size must be a positive integer"):
        get_task("digits-mlp", train_size=0)


def test_unknown_task_lists_the_builtins():
    with pytest.raises(ValueError, match=r"unknown task 'digits' \(built-in: digits-linear, digits-mlp"):
        get_task("digits")


def test_bad_options_name_the_task():
    with pytest.raises(ValueError, match="task 'digits-linear': bad options"):
        get_task("digits-linear", nope=1)


USER_TASK = textwrap.dedent(
    """
    import torch
    from lrlab.training.tasks import Task, TensorPairs

    def make(n=64):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(n, 4, generator=g)
        y = (x[:, 0] > 0).long()
        return Task("toy", "classification", 2, 16, lambda: torch.nn.Linear(4, 2),
                    TensorPairs(x[:48], y[:48]), TensorPairs(x[48:], y[48:]))

    def not_a_task():
        return 42
    """
)


def test_user_task_from_a_file(tmp_path):
    path = tmp_path / "my_task.py"
    path.write_text(USER_TASK)
    task = get_task(f"{path}:make", n=80)
    assert task.name == "toy" and len(task.val_data) == 32
    with pytest.raises(ValueError, match="not a Task"):
        get_task(f"{path}:not_a_task")
    with pytest.raises(ValueError, match="has no attribute 'missing'"):
        get_task(f"{path}:missing")
    with pytest.raises(ValueError, match="no file"):
        get_task(f"{tmp_path}/nope.py:make")


def test_user_task_from_a_module(tmp_path, monkeypatch):
    (tmp_path / "usertasks_pkg").mkdir()
    (tmp_path / "usertasks_pkg" / "__init__.py").write_text("")
    (tmp_path / "usertasks_pkg" / "tasks.py").write_text(USER_TASK)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert get_task("usertasks_pkg.tasks:make").name == "toy"
    with pytest.raises(ValueError, match="cannot import task"):
        get_task("no_such_pkg_xyz.mod:make")


def test_task_rejects_unknown_kind():
    pairs = TensorPairs(torch.zeros(2, 1), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="kind must be one of classification, language_model, regression"):
        Task("x", "ranking", 1, 1, lambda: torch.nn.Linear(1, 1), pairs, pairs)
