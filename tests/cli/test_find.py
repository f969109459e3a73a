"""``lrlab find`` end to end: a real range test on a built-in task, stored and drawn."""

import textwrap

import pytest
from typer.testing import CliRunner

from lrlab.cli.app import app
from lrlab.store.sqlite import Store

runner = CliRunner()


def run(*args):
    return runner.invoke(app, ["find", *args])


@pytest.mark.slow
def test_find_prints_suggestions_stores_and_draws(tmp_path):
    db, out = tmp_path / "runs.db", tmp_path / "finder.png"
    result = run("--task", "digits-linear", "--num-iter", "40", "--db", str(db), "--out", str(out))
    assert result.exit_code == 0, result.output
    for text in (
        "steepest",
        "valley",
        "minimum/10",
        "recommended LR:",
        "base_lr=",
        "max_lr=",
        "stored finder",
    ):
        assert text in result.output
    assert out.read_bytes()[:4] == b"\x89PNG"
    (record,) = Store(db).finder_results(task="digits-linear")
    assert record.optimizer == "sgd(momentum=0.9)" and len(record.lrs) <= 40
    assert set(record.suggestions) == {"steepest", "valley", "minimum/10", "minimum/3", "minimum/30", "minimum/7"}
    assert record.config["rule"] == "minimum/7"  # the default for SGD
    assert record.lr == record.suggestions[record.config["rule"]]
    assert record.max_lr == pytest.approx(4 * record.base_lr)
    assert record.config["batch_size"] == 64 and record.config["seed"] == 0


def test_find_takes_a_task_from_a_file_and_writes_html(tmp_path):
    task_file = tmp_path / "my_task.py"
    task_file.write_text(
        textwrap.dedent(
            """
            import torch
            from lrlab.training.tasks import Task, TensorPairs

            def make():
                g = torch.Generator().manual_seed(0)
                x = torch.randn(128, 4, generator=g)
                y = (x[:, 0] > 0).long()
                return Task("toy", "classification", 1, 16, lambda: torch.nn.Linear(4, 2),
                            TensorPairs(x[:96], y[:96]), TensorPairs(x[96:], y[96:]))
            """
        )
    )
    out = tmp_path / "f.html"
    result = run(
        "--task",
        f"{task_file}:make",
        "--optimizer",
        "adam",
        "--num-iter",
        "30",
        "--no-store",
        "--out",
        str(out),
        "--batch-size",
        "32",
    )
    assert result.exit_code == 0, result.output
    assert "toy, adam, batch 32" in result.output.replace("\n", " ")
    assert "plotly" in out.read_text()
    assert not (tmp_path / "lrlab-runs").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--task", "no-such-task"], "unknown task 'no-such-task'", id="task"),
        pytest.param(
            ["--task", "digits-linear", "--optimizer", "sgdd"], "bad --optimizer 'sgdd'", id="optimizer"
        ),
        pytest.param(
            ["--task", "digits-linear", "--start-lr", "1", "--end-lr", "0.1"], "--end-lr must be", id="range"
        ),
        pytest.param(["--task", "digits-linear", "--num-iter", "1"], "--num-iter must be", id="num-iter"),
        pytest.param(["--task", "digits-linear", "--out", "f.jpg"], "--out must end in one of", id="out"),
        pytest.param(["--task", "digits-linear", "--mode", "log"], "--mode must be exp or linear", id="mode"),
        pytest.param(
            ["--task", "digits-linear", "--batch-size", "0"], "--batch-size must be >= 1", id="batch"
        ),
        pytest.param(["--task", "digits-linear", "--repeats", "0"], "--repeats must be >= 1", id="repeats"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    result = run(*args, "--db", str(tmp_path / "x.db"))
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.output
    assert "Traceback" not in result.output


def test_repeats_average_tests_and_store_each_curve(tmp_path):
    db = tmp_path / "runs.db"
    result = run("--task", "digits-linear", "--optimizer", "adam", "--num-iter", "30", "--repeats", "2",
                 "--db", str(db))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "mean of 2 tests" in result.output.replace("\n", " ")
    (record,) = Store(db).finder_results(task="digits-linear")
    assert record.config["repeats"] == 2
    first, second = record.config["repeat_losses"]
    assert len(record.losses) == min(len(first), len(second))
    assert first != second  # each on its own batches
    mean = [(a + b) / 2 for a, b in zip(first, second)]
    assert list(record.losses) == pytest.approx(mean, rel=1e-12)


def test_help_has_examples():
    result = run("--help")
    assert result.exit_code == 0
    assert "Examples:" in result.output and "lrlab find --task digits-mlp" in result.output
