"""``--task-option key=value`` for ``lrlab find``, ``lrlab study`` and ``lrlab tune``: values read
as TOML scalars, checked against the task function's signature (one line, exit 2), recorded
with every run, and a variant of a task is a study (or tune) of its own name."""

from __future__ import annotations

import math
import sys
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrlab.cli import main
from lrlab.store.sqlite import Store
from lrlab.training.tasks import get_task
from lrlab.training.tasks._base import fingerprint_change, task_fingerprint
from lrlab.training.tasks.options import check_options, options_label, parse_options


def _run(args, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["lrlab", *args])
    monkeypatch.setenv("COLUMNS", "300")
    with pytest.raises(SystemExit) as info:
        main()
    captured = capsys.readouterr()
    return int(info.value.code or 0), captured.out, captured.err


# ---------------------------------------------------------------- parsing


_WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12).filter(
    lambda w: w not in ("true", "false", "inf", "nan")
)


@settings(max_examples=80, deadline=None)
@given(
    number=st.integers(-(2**62), 2**62),
    real=st.floats(allow_nan=False, allow_infinity=False, width=64),
    flag=st.booleans(),
    word=_WORDS,
    text=st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=20),
)
def test_values_are_toml_scalars_and_a_bare_word_is_a_string(number, real, flag, word, text):
    quoted = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    values = [f"a={number}", f"b={real!r}", f"c={str(flag).lower()}", f"d={word}", f"e={quoted}"]
    options = parse_options(values)
    assert options == {"a": number, "b": real, "c": flag, "d": word, "e": text}
    assert type(options["a"]) is int and type(options["b"]) is float and type(options["c"]) is bool


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["hidden"], "must look like key=value"),
        (["=3"], "must look like key=value"),
        (["2x=3"], "must be a Python name"),
        (["hidden=3", "hidden=4"], "is given twice"),
        (["hidden="], "has no value"),
        (["sizes=[1, 2]"], "not an array or a table"),
        (["t={a = 1}"], "not an array or a table"),
    ],
)
def test_malformed_options_are_one_line(values, message):
    with pytest.raises(ValueError, match="task option") as info:
        parse_options(values)
    assert message in str(info.value) and "\n" not in str(info.value)


def _factory(width: int = 4, rate: float = 0.1, act: str = "relu", bias: bool = True, size: int | None = None,
             cell: str = "lstm", anything=None):  # fmt: skip
    return None


def test_check_options_converts_ints_for_float_options_and_checks_types():
    assert check_options(_factory, "f", {"rate": 1, "width": 8, "size": 3, "anything": [1]}) == {
        "rate": 1.0, "width": 8, "size": 3, "anything": [1]
    }  # fmt: skip
    assert type(check_options(_factory, "f", {"rate": 1})["rate"]) is float
    # a Python caller's None, for an option annotated X | None
    assert check_options(_factory, "f", {"size": None}) == {"size": None}
    for options, words in [
        ({"width": 2.5}, "'width' takes a whole number, got 2.5 (a number)"),
        ({"width": True}, "'width' takes a whole number, got true (a boolean)"),
        ({"bias": 1}, "'bias' takes true or false, got 1 (a whole number)"),
        ({"act": 3}, "'act' takes a string, got 3"),
        ({"size": "big"}, "'size' takes a whole number, got 'big'"),
        ({"width": None}, "'width' takes a whole number, got None"),
        (
            {"widht": 3},
            "no option 'widht' (it takes: width, rate, act, bias, size, cell, anything)",
        ),
    ]:
        with pytest.raises(ValueError, match="task 'f': bad options ") as info:
            check_options(_factory, "f", options)
        assert words in str(info.value)


def test_a_function_with_kwargs_takes_any_key():
    def open_ended(width: int = 1, **rest):
        return None

    assert check_options(open_ended, "g", {"anything": "x"}) == {"anything": "x"}


def test_options_label_is_name_safe_sorted_and_bounded():
    assert options_label({"window": 33, "cell": "gru", "rate": 0.5, "flag": True}) == (
        "cell-gru-flag-true-rate-0.5-window-33"
    )
    long = options_label({"name": "x" * 80})
    assert long.startswith("options-") and len(long) <= 40
    assert options_label({}) == ""
    assert "/" not in options_label({"path": "a/b c"}) and not math.isnan(len(options_label({"r": math.nan})))


def test_options_a_task_file_does_not_record_are_recorded_for_it(tmp_path):
    """A user's task function that ignores its options in ``Task.options``: the options given
    are recorded anyway, so that two variants never share a fingerprint."""
    task_file = tmp_path / "my_task.py"
    task_file.write_text(textwrap.dedent("""
        import torch
        from lrlab.training.tasks import Task, TensorPairs

        def make(scale: float = 1.0, tag: str = "a"):
            g = torch.Generator().manual_seed(0)
            x = torch.randn(64, 3, generator=g)
            y = scale * x.sum(dim=1, keepdim=True)
            return Task("toy", "regression", 1, 16, lambda: torch.nn.Linear(3, 1),
                        TensorPairs(x[:48], y[:48]), TensorPairs(x[48:], y[48:]))
    """))  # fmt: skip
    ref = f"{task_file}:make"
    one, other = get_task(ref, tag="a"), get_task(ref, tag="b")
    assert one.options == {"tag": "a"} and other.options == {"tag": "b"}
    assert fingerprint_change(task_fingerprint(one), task_fingerprint(other)) == ("the task", "its options")
    assert get_task(ref, scale=2).options == {"scale": 2.0}


# ---------------------------------------------------------------- the commands


TUNE = """name = "opt-tune"
task = "sunspots-gru"
epochs = 1
trials = 2
sampler = "random"
pruner = "none"
[task_options]
window = 6
[space]
optimizer = ["adam"]
[space.cosine]
lr = { log = [0.001, 0.03] }
"""


def _commands(tmp_path, extra):
    db = tmp_path / "runs.db"
    tune_file = tmp_path / "tune.toml"
    tune_file.write_text(TUNE)
    return db, {
        "find": ["find", "--task", "sunspots-gru", "--db", str(db), *extra],
        "study": ["study", "--task", "sunspots-gru", "--db", str(db), "--out", str(tmp_path / "s"), *extra],
        "tune": ["tune", str(tune_file), "--db", str(db), "--out", str(tmp_path / "t"), *extra],
    }


@pytest.mark.parametrize("command", ["find", "study", "tune"])
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--task-option", "hiden=8"],
         "no option 'hiden' (it takes: window, horizon, hidden, layers)"),
        (["--task-option", "hidden=many"], "task 'sunspots-gru': hidden must be a positive integer, got 'many'"),
        (["--task-option", "hidden=0"], "task 'sunspots-gru': hidden must be a positive integer, got 0"),
        (["--task-option", "hidden"], "--task-option: task option 'hidden' must look like key=value"),
        (["--task-option", "window=400"], "task 'sunspots-gru': window must be at most 245"),
    ],
)  # fmt: skip
def test_bad_task_options_are_one_line_exit_2_and_nothing_stored(tmp_path, monkeypatch, capsys, command, extra,
                                                                   message):  # fmt: skip
    db, commands = _commands(tmp_path, extra)
    code, out, err = _run(commands[command], monkeypatch, capsys)
    assert code == 2, out + err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not db.exists() or not Store(db).runs()


def test_a_value_of_the_wrong_type_for_a_task_file_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    task_file = tmp_path / "my_task.py"
    task_file.write_text(
        "def make(width: int = 4, act: str = 'relu'):\n    raise AssertionError('not called')\n"
    )
    db = tmp_path / "runs.db"
    for option, words in [("width=wide", "'width' takes a whole number, got 'wide' (a string)"),
                          ("act=3", "'act' takes a string, got 3 (a whole number)"),
                          ("depth=3", "no option 'depth' (it takes: width, act)")]:  # fmt: skip
        code, _out, err = _run(["find", "--task", f"{task_file}:make", "--task-option", option, "--db", str(db)],
                              monkeypatch, capsys)  # fmt: skip
        assert code == 2 and words in err and "bad options" in err and len(err.strip().splitlines()) == 1
    assert not db.exists()


def test_find_records_the_options_of_the_range_test(tmp_path, monkeypatch, capsys, one_thread):
    db = tmp_path / "runs.db"
    args = ["find", "--task", "sunspots-gru", "--task-option", "hidden=4", "--task-option", "window=6",
            "--optimizer", "adam", "--num-iter", "30", "--db", str(db)]  # fmt: skip
    code, out, err = _run(args, monkeypatch, capsys)
    assert code == 0, out + err
    (record,) = Store(db).finder_results(task="sunspots-gru")
    assert record.config["task_options"] == {
        "cell": "gru",
        "window": 6,
        "horizon": 1,
        "hidden": 4,
        "layers": 1,
    }
    assert len(record.lrs) == 30


@pytest.mark.slow
def test_a_variant_is_a_study_of_its_own_name_and_each_resumes(tmp_path, monkeypatch, capsys):
    """The same task with other options never shares a study: each variant gets its own name,
    its runs carry its options, and running a variant again trains nothing new."""
    db = tmp_path / "runs.db"

    def study(*options):
        args = ["study", "--task", "sunspots-gru", "--epochs", "1", "--optimizers", "adam", "--schedules", "constant",
                "--jobs", "1", "--db", str(db), "--out", str(tmp_path / "out"), "-q"]  # fmt: skip
        for option in options:
            args += ["--task-option", option]
        code, out, err = _run(args, monkeypatch, capsys)
        assert code == 0, out + err
        return out

    first = study("hidden=4", "window=6")
    assert "study-sunspots-gru-hidden-4-window-6-small" in first
    store = Store(db)
    runs = store.runs()
    assert runs and {tuple(sorted(r.config.task_options.items())) for r in runs} == {
        (("hidden", 4), ("window", 6))
    }
    second = study("hidden=6", "window=6")
    assert "study-sunspots-gru-hidden-6-window-6-small" in second
    variant = [r for r in store.runs() if r.id not in {r.id for r in runs}]
    assert variant and all(dict(r.config.task_options) == {"hidden": 6, "window": 6} for r in variant)
    assert all(r.sweep.startswith("study-sunspots-gru-hidden-6-window-6-small") for r in variant)
    assert all(r.status.is_finished for r in store.runs())
    before = len(store.runs())
    study("window=6", "hidden=4")  # the same variant, the options in another order: resumed, nothing trained
    assert len(store.runs()) == before


@pytest.mark.slow
def test_tune_takes_task_options_under_its_own_name(tmp_path, monkeypatch, capsys):
    db, commands = _commands(tmp_path, ["--task-option", "hidden=4", "-q"])
    code, out, err = _run(commands["tune"], monkeypatch, capsys)
    assert code == 0, out + err
    runs = Store(db).runs()
    assert len(runs) == 2 and {r.sweep for r in runs} == {"opt-tune-hidden-4"}
    # the file's options and the flag's
    assert all(dict(r.config.task_options) == {"window": 6, "hidden": 4} for r in runs)
    assert all(r.status.is_finished for r in runs)
    # again, without --resume: refused in one line
    code, out, err = _run(commands["tune"], monkeypatch, capsys)
    assert code == 2 and "already has 2 trials" in err and len(Store(db).runs()) == 2


def test_a_task_built_in_python_takes_no_task_options(tmp_path):
    from lrlab.study import run_study

    task = get_task("sunspots-gru", hidden=4)
    task.name = "my-sunspots"
    with pytest.raises(ValueError, match="task options go with a task reference"):
        run_study(task, Store(tmp_path / "runs.db"), task_options={"hidden": 8})
