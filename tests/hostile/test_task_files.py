"""User task files (``file.py:function``) that are broken in every way a first user's are:
through ``lrlab find`` and ``lrlab study`` each is one line naming the task, what is wrong and
what to do, exit code 2, no traceback, and the store exactly as it was; through the Python
API a ``ValueError`` with the same line."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.hostile._cli import digest, one_line_error, run_cli, write_tasks

from lrlab.store import Store
from lrlab.sweeps import run_sweep
from lrlab.training.tasks import check_task, get_task

# (function or file:function, words the one line must hold)
CASES = [
    ("tasks.py:few_classes", ["(16, 3)", "targets hold class 4", "one output per class (at least 5 here)"]),
    ("tasks.py:float_labels_two_outputs", ["(16, 2)", "float targets make a regression", "kind='regression'"]),
    ("tasks.py:regression_two_outputs", ["(16, 2)", "(16,) float32", "one output per target value"]),
    ("tasks.py:wrong_inputs", ["inputs (16, 5) float32", "mat1 and mat2 shapes cannot be multiplied"]),
    ("tasks.py:empty_validation", ["has an empty validation set", "at least one example"]),
    ("tasks.py:empty_training", ["has an empty training set", "at least one example"]),
    ("tasks.py:loss_per_example", ["one number per batch", "shape (16,)", ".mean()"]),
    ("tasks.py:loss_without_gradient", ["the loss has no gradient", "no .item()"]),
    ("tasks.py:loss_is_a_float", ["the loss must be a torch tensor", "got float"]),
    ("tasks.py:negative_labels", ["targets hold class -1", "labels run from 0"]),
    ("tasks.py:model_not_a_module", ["model factory returned str, not a torch.nn.Module"]),
    ("tasks.py:model_raises", ["building its model raised KeyError: 'weights'", "tasks.py line"]),
    ("tasks.py:factory_raises", ["factory_raises() raised RuntimeError: the data folder is missing", "tasks.py line"]),
    ("tasks.py:factory_exits", ["factory_exits() called sys.exit(3)", "must return a Task"]),
    ("tasks.py:returns_a_number", ["returned int, not a Task"]),
    ("tasks.py:not_a_function", ["not_a_function is int 3, not a function that returns a Task"]),
    ("tasks.py:missing", ["has no attribute 'missing'"]),
    ("nosuch.py:make", ["no file"]),
    ("raises_at_import.py:make", ["importing raises_at_import.py raised RuntimeError: no GPU here",
                                  "raises_at_import.py line 1"]),
    ("syntax_error.py:make", ["syntax error in syntax_error.py line 1", "fix the file"]),
    ("exits_at_import.py:make", ["called sys.exit(1)", 'if __name__ == "__main__"']),
    ("keyboard_words.py:make", ["cannot import task", "nosuchmodule_xyz"]),
]  # fmt: skip


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-tasks")
    write_tasks(root)
    (root / "good.toml").write_text(
        'name = "good"\ntask = "digits-linear"\ntask_options = { train_size = 64, val_size = 32 }\n'
        "epochs = 1\nbatch_size = 32\n\n[grid]\nlr = [0.1]\n"
    )
    store = Store(root / "runs.db")
    run_sweep(root / "good.toml", store)
    store.close()
    return root


@pytest.mark.parametrize("command", ["find", "study"])
@pytest.mark.parametrize(("task", "words"), CASES, ids=[c[0].split(":")[-1] for c in CASES])
def test_a_broken_task_file_is_one_line_exit_2_and_nothing_stored(place, command, task, words, monkeypatch, capsys):
    db = place / "runs.db"
    before = digest(db)
    args = [command, "--task", task, "--db", str(db)] + (["--quiet", "--jobs", "1"] if command == "study" else [])
    line = one_line_error(*run_cli(args, place, monkeypatch, capsys))
    assert f"'{task}'" in line or "no file" in line, line
    for word in words:
        assert word in line, (word, line)
    assert digest(db) == before


@pytest.mark.parametrize(("task", "words"), CASES[:16], ids=[c[0].split(":")[-1] for c in CASES[:16]])
def test_the_python_api_gives_the_same_line_as_a_value_error(place, task, words, monkeypatch):
    monkeypatch.chdir(place)
    with pytest.raises(ValueError) as info:
        check_task(get_task(task), task)
    for word in words:
        assert word in str(info.value)


def test_a_good_task_file_passes_and_leaves_the_random_generators_alone(place, monkeypatch):
    import torch

    monkeypatch.chdir(place)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    check_task(get_task("tasks.py:good"), "tasks.py:good")
    assert torch.equal(torch.rand(3), expected)  # the dry forward built its model under a forked generator


@settings(max_examples=40, deadline=None)
@given(options=st.dictionaries(st.text(min_size=1, max_size=12), st.one_of(st.text(max_size=8), st.integers(),
                                                                           st.floats(allow_nan=True), st.none())))
def test_any_task_options_are_taken_or_refused_in_one_line_naming_them(place, options):
    """Random option names and values for a factory that takes one option (``speed``): it
    builds, or a ``ValueError`` names the task and what the options were, never a raw
    ``TypeError`` (``bad options {}: 'int' object is not callable``)."""
    import os

    ref = f"{place}/tasks.py:with_option"
    try:
        task = get_task(ref, **options)
    except ValueError as exc:
        text = str(exc)
        assert text.startswith(f"task {ref!r}: ") and "\n" not in text
        unknown = set(options) - {"speed"}
        if unknown:
            assert "bad options" in text and "it takes: speed" in text
        else:
            assert f"with_option(speed={options['speed']!r}) raised" in text and "tasks.py line" in text
    else:
        assert set(options) <= {"speed"} and task.name == "toy"
    assert os.path.exists(f"{place}/tasks.py")


def test_a_built_in_tasks_own_check_names_its_option():
    with pytest.raises(ValueError, match=r"^task 'digits-mlp': hidden must be a positive integer, got 'wide'$"):
        get_task("digits-mlp", hidden="wide")
    with pytest.raises(ValueError, match=r"bad options \{'depth': 3\}.*it takes: train_size, val_size, hidden"):
        get_task("digits-mlp", depth=3)
