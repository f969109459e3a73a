"""``lrlab study`` end to end on a real task, resuming, and its bad-input errors."""

import json
import math
import subprocess
import sys

import pytest

from lrlab.store.sqlite import Store


def _study(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "lrlab.cli", "study", *args],
        capture_output=True, text=True, cwd=cwd, timeout=900,
    )  # fmt: skip


@pytest.mark.slow
def test_study_trains_reports_recommends_and_resumes(tmp_path):
    db, out = tmp_path / "runs.db", tmp_path / "study"
    args = [
        "--task",
        "digits-linear",
        "--optimizers",
        "sgdm",
        "--db",
        str(db),
        "--out",
        str(out),
        "--jobs",
        "1",
        "--epochs",
        "3",
    ]
    first = _study(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    store = Store(db)
    runs = store.runs()
    first_rung = [r for r in runs if r.config.seed == 0 and "-bracket" not in r.sweep]
    assert len(first_rung) == 27  # one optimizer x three LRs (the finder's, a third of it, 3x) x nine schedules
    assert {r.status for r in runs} <= {"done", "diverged"}
    extended = [r for r in runs if r.sweep.endswith(("-bracket1", "-bracket2"))]  # the bracketing rounds
    assert len(extended) <= 2 * 9  # at most two more LRs per schedule
    finished = sum(1 for r in first_rung + extended if r.status == "done")
    finalists = max(3, -(-finished // 4))  # successive halving: the best quarter, at least three
    promoted = {r.configuration for r in runs if r.config.seed > 0}  # the finalists and the bracket neighbours
    assert len(promoted) >= finalists and all(
        sorted(r.config.seed for r in runs if r.configuration == key) == [0, 1, 2] for key in promoted
    )
    assert len(runs) == sum(1 for r in runs if r.config.seed == 0) + 2 * len(promoted)
    (finder,) = store.finder_results()
    assert finder.config["rule"] == "minimum/3" or finder.config["rule"]  # the finder's own default for SGD
    lrs = sorted({r.config.lr for r in first_rung})
    assert lrs == pytest.approx([finder.lr / 3, finder.lr, 3 * finder.lr], rel=1e-12)  # it trains what it prints
    for run in runs:  # the bracketing continues the grid: whole factors of 3 beyond it
        steps = math.log(run.config.lr / finder.lr, 3)
        assert abs(steps - round(steps)) < 1e-9 and abs(round(steps)) <= 3
    printed = " ".join(first.stdout.split())
    trained = f"study LRs {finder.lr / 3:.3g}, {finder.lr:.3g}, {3 * finder.lr:.3g}"
    assert f"recommends lr {finder.lr:.3g} ({finder.config['rule']}); {trained}" in printed
    html = (out / "report.html").read_text()
    assert "plotly" in html.lower() and len(html) > 100_000
    assert len(list((out / "figures").glob("*.png"))) >= 4
    md = (out / "recommendation.md").read_text()
    assert "Recommended: sgd(momentum=0.9)" in md and "scheduler = LRScheduler(optimizer, " in md
    accuracy = float(md.split("accuracy ")[1].split("%")[0]) / 100
    assert accuracy > 0.9  # softmax regression on digits reaches ~95%
    assert "mean of 3 seed(s)" in md and " ± " in md
    assert ("beats the runner-up" in md and "more than the paired seed noise" in md) or (
        "ties with" in md and "within the paired seed noise" in md and "recommends the simpler" in md
    )
    assert "3 epochs (69 steps) per run" in md

    def stored_steps() -> int:
        store = Store(db, readonly=True)
        return sum(store.step_count(run.id) for run in store.runs())

    steps_before = stored_steps()
    assert steps_before > 0
    again = _study(*args, "--quiet", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    steps_after = stored_steps()
    assert steps_after == steps_before  # nothing retrained
    assert len(Store(db).finder_results()) == 1  # the range test was reused


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--budget", "huge"], "--budget must be one of small, medium, large", id="budget"),
        pytest.param(["--optimizers", "sgdx"], "unknown optimizer 'sgdx'", id="optimizer"),
        pytest.param(["--task", "no-such-task"], "no-such-task", id="task"),
        pytest.param(["--jobs", "0"], "--jobs must be >= 1", id="jobs"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, args, message):
    result = _study(*args, "--db", str(tmp_path / "x.db"), cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.db").exists() or not Store(tmp_path / "x.db").runs()


def test_help_has_examples():
    result = subprocess.run(
        [sys.executable, "-m", "lrlab.cli", "study", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "Examples" in result.stdout and "lrlab study" in result.stdout
    json.dumps(result.stdout)


def test_a_tie_within_the_seed_noise_is_said_plainly_and_goes_to_the_simpler_schedule():
    from types import SimpleNamespace

    from lrlab.core.records import EpochRecord, RunRecord
    from lrlab.study.recommend import recommend
    from lrlab.study.summary import verdict_lines as _verdict_lines

    def run(run_id, schedule, seed):
        config = {"task": "t", "optimizer": "sgd", "schedule": schedule, "lr": 0.1, "seed": seed}
        return RunRecord(id=run_id, sweep="s", status="done", config=config, seed=seed)

    errors = {"cos": [0.030, 0.050, 0.040], "con": [0.045, 0.040, 0.050]}  # 0.040 vs 0.045, seed noise 0.015
    specs = {"cos": "cosine(lr=0.1, total_steps=10)", "con": "constant(lr=0.1)"}
    runs = [run(f"{k}{s}", specs[k], s) for k in errors for s in range(3)]
    epochs = {f"{k}{s}": [EpochRecord(f"{k}{s}", 1, 10, 0.5, 0.2, e, 1 - e, 1.0)] for k in errors
              for s, e in enumerate(errors[k])}  # fmt: skip
    rec = recommend(runs, epochs, break_ties=True)
    lines = _verdict_lines(SimpleNamespace(recommendation=rec, total_steps=10, runs=runs, task="t"))
    text = "\n".join(lines)
    assert lines[0].startswith("Recommended: sgd with constant peaking at lr=0.1")
    assert "final validation error 0.045 ± 0.005 (sd)" in text and "mean of 3 seed(s)" in text
    assert "ties with sgd + cosine peaking at lr=0.1 (0.04 ± 0.01): the margin 0.005 in validation error is within" in text
    assert "the paired seed noise 0.01528 (2 standard errors of the per-seed differences over 3 shared seeds)" in text
    assert "constant has fewer schedule knobs than cosine" in text


def test_a_study_with_too_few_batches_says_so_in_one_line_and_exits_2(tmp_path):
    (tmp_path / "tiny.py").write_text(
        "from lrlab.training.tasks.digits import digits_linear\n\n"
        "def make():\n    return digits_linear(train_size=32, val_size=32)\n"
    )
    result = _study("--task", "tiny.py:make", "--epochs", "3", "--db", str(tmp_path / "x.db"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "too few batches: 3 epoch(s) x 1 batch(es) = 3 steps per run" in result.stderr
    assert "try more --epochs or more training data" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


BLOWS_UP = '''
from lrlab.training.tasks.digits import digits_linear

CALLS = [0]


def make():
    """Softmax regression whose training loss turns NaN once the range test is over."""
    task = digits_linear(train_size=256, val_size=64)
    base = task.loss_fn

    def loss_fn(output, target):
        CALLS[0] += 1
        loss = base(output, target)
        return loss if CALLS[0] <= 60 else loss * float("nan")

    object.__setattr__(task, "loss_fn", loss_fn)
    return task
'''


@pytest.mark.slow
def test_a_study_where_every_run_diverges_says_so_in_one_line_exits_2_and_keeps_the_store(tmp_path):
    (tmp_path / "blows.py").write_text(BLOWS_UP)
    db = tmp_path / "x.db"
    args = ["--task", "blows.py:make", "--optimizers", "sgdm", "--epochs", "3", "--db", str(db), "--jobs", "1",
            "--no-vectorize", "--quiet"]  # fmt: skip
    result = _study(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    # 27 first-rung runs, then two LRs below the smallest for each of the nine schedules: all diverge
    assert "no trustworthy answer: 45 of 45 runs diverged and none finished" in result.stderr
    assert "try --budget large" in result.stderr and "another optimizer" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    store = Store(db)
    assert len(store.finder_results()) == 1  # the range test and every diverged run are kept
    assert [r.status for r in store.runs()] == ["diverged"] * 45


def test_the_range_test_line_carries_the_finders_word_on_an_unchecked_optimizer():
    from lrlab.cli.study import _optimizer_note
    from lrlab.finder.suggest import optimizer_note

    assert _optimizer_note("adagrad") == optimizer_note("Adagrad") and "3.6x to 26x" in _optimizer_note("adagrad")
    assert _optimizer_note("rmsprop(alpha=0.9)") == optimizer_note("RMSprop")
    assert _optimizer_note("nadam").startswith("NAdam is not among the optimizers the rule was fitted or checked on")
    for checked in ("sgd", "sgd(momentum=0.9, nesterov=true)", "adam", "adamw(weight_decay=0.01)"):
        assert _optimizer_note(checked) is None
    assert _optimizer_note("no-such-optimizer") is None  # refused elsewhere, with its own message
