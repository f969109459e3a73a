"""``lrlab tune`` and PBT against hostile input: every bad tune file or option is one line
naming what is wrong, exit code 2, no traceback, and nothing stored (the run store, the
Optuna storage and earlier outputs byte for byte as they were, no new file). Then two tunes
on one storage at once, and the printed code stretched to a run ten times longer."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lrlab.cli import main
from lrlab.schedules import parse
from lrlab.tune.space import Context, SpaceError, parse_space

GOOD = """name = "hostile"
task = "digits-linear"
task_options = { train_size = 128, val_size = 64 }
epochs = 2
batch_size = 32
trials = 2
sampler = "random"
pruner = "none"

[space]
optimizer = ["sgd(momentum=0.9)", "adam"]
[space.cosine]
lr = { log = [0.001, 1.0] }
"""
HEAD, SPACE = GOOD.split("[space]\n")
COSINE = "[space.cosine]\nlr = { log = [0.001, 1.0] }\n"
CYCLIC = "[space.cyclic]\nbase_lr = 0.001\nmax_lr = 0.1\nstep_size = 4\n"
PBT = HEAD + 'method = "pbt"\n[pbt]\noptimizer = "sgd(momentum=0.9)"\npopulation = 2\ninterval = 1\nlr = { log = [0.01, 0.1] }\n'


def _head(key: str, value: str) -> str:
    """GOOD with the top-level ``key`` set to ``value`` (a TOML value), added when missing."""
    lines = [line for line in HEAD.splitlines() if not line.startswith(f"{key} =")]
    return "\n".join([*lines, f"{key} = {value}", ""]) + "[space]\n" + SPACE


def _space(extra: str) -> str:
    """GOOD with ``extra`` lines appended to its [space] table (before the families)."""
    return HEAD + "[space]\n" + SPACE.replace("[space.cosine]", extra + "\n[space.cosine]")


def _cosine(line: str) -> str:
    return GOOD.replace("lr = { log = [0.001, 1.0] }", line)


def _cyclic(extra: str) -> str:
    return GOOD + CYCLIC + extra + "\n"


def _pbt(key: str, value: str) -> str:
    lines = [line for line in PBT.splitlines() if not line.startswith(f"{key} =")]
    return "\n".join([*lines, f"{key} = {value}", ""])


DEEP = "[" * 200 + "]" * 200

# (id, tune file text, extra CLI arguments, what the one line must say)
FILES = [
    ("empty-name", _head("name", '""'), [], "name"),
    ("name-with-slash", _head("name", '"a/b"'), [], "name"),
    ("name-a-number", _head("name", "5"), [], "name"),
    ("unknown-task", _head("task", '"no-such-task"'), [], "no-such-task"),
    ("trials-zero", _head("trials", "0"), [], "trials"),
    ("trials-a-word", _head("trials", '"many"'), [], "trials"),
    ("trials-huge", _head("trials", "1000000000"), [], "trials"),
    ("epochs-zero", _head("epochs", "0"), [], "epochs"),
    ("epochs-astronomical", _head("epochs", "7000000000000"), [], "epochs"),
    ("batch-negative", _head("batch_size", "-1"), [], "batch_size"),
    ("seeds-empty", _head("seeds", "[]"), [], "seeds"),
    ("seeds-repeated", _head("seeds", "[0, 0]"), [], "seeds"),
    ("seeds-negative", _head("seeds", "[-1]"), [], "seeds"),
    ("sampler-grid", _head("sampler", '"grid"'), [], "sampler"),
    ("pruner-median", _head("pruner", '"median"'), [], "pruner"),
    ("method-bayes", _head("method", '"bayes"'), [], "method"),
    ("max-steps-zero", _head("max_steps", "0"), [], "max_steps"),
    ("sampler-seed-negative", _head("sampler_seed", "-1"), [], "sampler_seed"),
    ("audit-negative", _head("audit_pruned", "-1"), [], "audit_pruned"),
    ("finder-iters-one", _head("finder_iters", "1"), [], "finder_iters"),
    ("misspelt-key", _head("trails", "3"), [], "trails"),
    ("divergence-nan", _head("divergence_factor", "nan"), [], "divergence_factor"),
    ("storage-a-number", _head("storage", "5"), [], "storage"),
    ("storage-unknown-kind", _head("storage", '"redis://localhost"'), [], "unknown Optuna storage"),
    ("task-options-nested", _head("task_options", "{ train_size = 128, x = " + DEEP + " }"), [], "nested more than 8 levels deep"),
    ("space-empty", HEAD + "[space]\n", [], "names no schedule family"),
    ("space-not-a-table", HEAD + "space = 3\n", [], "space"),
    ("optimizer-empty", _space("optimizer = []").replace('optimizer = ["sgd(momentum=0.9)", "adam"]\n', ""), [],
     "space.optimizer"),
    ("optimizer-unknown", _space("").replace('["sgd(momentum=0.9)", "adam"]', '"nosuch"'), [], "space.optimizer"),
    ("optimizer-a-number", _space("").replace('["sgd(momentum=0.9)", "adam"]', "3"), [], "space.optimizer"),
    ("family-unknown", GOOD.replace("[space.cosine]", "[space.cosinus]"), [], "unknown schedule family 'cosinus'"),
    ("family-multistep", GOOD + "[space.multistep]\nlr = 0.1\n", [], "unknown schedule family 'multistep'"),
    ("family-not-a-table", _space("cosine_restarts = 3"), [], "space.cosine_restarts"),
    ("param-unknown", _cosine("lr = 0.1\ngamma = 0.5"), [], "cosine has no parameter 'gamma'"),
    ("param-missing", GOOD + "[space.cyclic]\nmax_lr = 0.1\n", [], "missing base_lr, step_size"),
    ("low-above-high", _cosine("lr = { log = [1.0, 0.001] }"), [], "low 1 is above high 0.001"),
    ("log-from-zero", _cosine("lr = { log = [0, 1] }"), [], "needs low > 0"),
    ("log-negative", _cosine("lr = { log = [-1, 1] }"), [], "needs low > 0"),
    ("bound-nan", _cosine("lr = { log = [nan, 1] }"), [], "two finite numbers"),
    ("bound-inf", _cosine("lr = { log = [0.001, inf] }"), [], "two finite numbers"),
    ("one-bound", _cosine("lr = { log = [0.1] }"), [], "two finite numbers"),
    ("bound-a-word", _cosine('lr = { log = ["a", "b"] }'), [], "two finite numbers"),
    ("two-forms", _cosine("lr = { log = [0.1, 1], uniform = [0.1, 1] }"), [], "exactly one of"),
    ("unknown-form", _cosine("lr = { normal = [0, 1] }"), [], "exactly one of"),
    ("lr-fixed-nan", _cosine("lr = nan"), [], "lr"),
    ("lr-fixed-inf", _cosine("lr = inf"), [], "lr"),
    ("lr-fixed-negative", _cosine("lr = -0.1"), [], "lr"),
    ("lr-a-word", _cosine('lr = "fast"'), [], "lr"),
    ("lr-empty-choice", _cosine("lr = []"), [], "categorical choice"),
    ("lr-nested-list", _cosine("lr = " + DEEP), [], "nested more than 8 levels deep"),
    ("lr-uniform-from-zero", _cosine("lr = { uniform = [0, 1] }"), [], "learning rates must be > 0"),
    ("ratio-of-the-peak", _cosine("lr = { ratio = [0.1, 0.5] }"), [], "cannot be a ratio"),
    ("epochs-on-an-lr", _cosine("lr = { epochs = [1, 2] }"), [], "applies to step counts"),
    ("warmup-above-the-run", _space("warmup = { run = [0.0, 1.5] }"), [], "a fraction of the run lies in [0, 1]"),
    ("warmup-the-whole-run", _space("warmup = { run = [0.5, 1.0] }"), [], "leaves none of the run"),
    ("warmup-inf", _space("warmup = inf"), [], "space.warmup: expected a finite number, got inf"),
    ("warmup-negative", _space("warmup = -5"), [], "a step count lies from 0"),
    ("warmup-steps-astronomical", _space("warmup = { steps = [0, 1e30] }"), [], "is at most 1e+12"),
    ("warmup-epochs-astronomical", _space("warmup = { epochs = [0, 1e300] }"), [], "is at most 100,000 epochs"),
    ("warmup-a-log", _space("warmup = { log = [1, 10] }"), [], "warmup is a step count"),
    ("step-size-astronomical", GOOD + "[space.cyclic]\nbase_lr = 0.001\nmax_lr = 0.1\nstep_size = { steps = [1, 1e300] }\n",
     [], "is at most 1e+12"),
    ("step-size-fixed-astronomical", GOOD + "[space.step_decay]\nlr = 0.1\nstep_size = 1e300\n", [],
     "a step count lies from 0 to 1e+12"),
    ("step-size-not-whole", GOOD + "[space.cyclic]\nbase_lr = 0.001\nmax_lr = 0.1\nstep_size = { steps = [1.5, 3] }\n",
     [], "needs whole numbers"),
    ("cycles-from-zero", _cyclic("cycles = { int = [0, 3] }"), [], "cycles"),
    ("mode-bogus", _cyclic('mode = ["bogus"]'), [], "mode must be one of"),
    ("base-above-max", GOOD + "[space.cyclic]\nbase_lr = { log = [0.01, 1] }\nmax_lr = 0.5\nstep_size = 4\n", [],
     "base_lr can be drawn above max_lr"),
    ("decay-above-one", _cyclic("cycle_decay = { uniform = [0.5, 1.5] }"), [], "a decay lies in (0, 1]"),
    ("pct-start-above-one", GOOD + "[space.one_cycle]\nmax_lr = 0.1\npct_start = 2.0\n", [], "pct_start"),
    ("pbt-without-table", HEAD + 'method = "pbt"\n', [], "needs a [pbt] table"),
    ("pbt-population-one", _pbt("population", "1"), [], "population"),
    ("pbt-interval-inf", _pbt("interval", "inf"), [], "interval"),
    ("pbt-interval-zero", _pbt("interval", "0"), [], "interval"),
    ("pbt-quantile-high", _pbt("quantile", "0.9"), [], "quantile"),
    ("pbt-perturb-inf", _pbt("perturb", "[0.8, inf]"), [], "perturb"),
    ("pbt-lr-negative", _pbt("lr", "-1"), [], "pbt.lr"),
    ("pbt-lr-uniform", _pbt("lr", "{ uniform = [0.1, 1] }"), [], "pbt.lr"),
    ("pbt-lr-a-word", _pbt("lr", '"fast"'), [], "pbt.lr"),
    ("pbt-optimizer-bogus", _pbt("optimizer", '"nosuch"'), [], "optimizer"),
    ("pbt-unknown-key", _pbt("populaton", "4"), [], "populaton"),
    ("pbt-with-resume", PBT, ["--resume"], "trains in one process"),
    ("pbt-bogus-device", PBT, ["--device", "tpu"], "device must be cpu, cuda, cuda:N or auto, got 'tpu'"),
    ("not-toml", "name = \n[[[", [], "t.toml"),
]
OPTIONS = [
    ("device-cuda-absent", ["--device", "cuda"], "device 'cuda' asked for, but torch sees no CUDA device"),
    ("device-bogus", ["--device", "tpu"], "device must be cpu, cuda, cuda:N or auto, got 'tpu'"),
    ("device-cuda-word", ["--device", "cuda:abc"], "device must be cpu, cuda, cuda:N or auto"),
    ("out-under-a-file", ["--out", "{root}/good.toml/out"], "which is a file, not a folder"),
    ("out-a-file", ["--out", "{root}/good.toml"], "--out must be a folder"),
    ("jobs-zero", ["--jobs", "0"], "--jobs must be >= 1"),
    ("jobs-without-ray", ["--jobs", "2"], "--jobs above 1 needs --backend ray"),
    ("backend-spark", ["--backend", "spark"], "--backend must be local or ray"),
    ("storage-redis", ["--storage", "redis://localhost"], "unknown Optuna storage"),
    ("storage-under-dev-null", ["--storage", "sqlite:////dev/null/optuna.db"], "cannot open the Optuna storage"),
    ("storage-journal-a-folder", ["--storage", "journal:{root}"], "is a folder"),
    ("storage-mysql-nobody", ["--storage", "mysql://127.0.0.1:1/optuna"], "'mysql://127.0.0.1:1/optuna'"),
    ("file-missing", ["{root}/missing.toml"], "missing.toml"),
    ("file-a-folder", ["{root}"], "error:"),
]
if __import__("torch").cuda.is_available():  # the case needs a machine without CUDA
    OPTIONS = [o for o in OPTIONS if o[0] != "device-cuda-absent"]


def _run(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["lrlab", *args])
    monkeypatch.setenv("COLUMNS", "400")
    with pytest.raises(SystemExit) as info:
        main()
    captured = capsys.readouterr()
    return int(info.value.code or 0), captured.out, captured.err


def _digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` (the store, the Optuna storage, earlier outputs), hashed."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}  # fmt: skip


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    """A store, an Optuna storage and outputs left by a finished tune: what must not change."""
    root = tmp_path_factory.mktemp("hostile-tune")
    (root / "good.toml").write_text(GOOD)
    mp = pytest.MonkeyPatch()
    mp.setattr(sys, "argv", ["lrlab", "tune", str(root / "good.toml"), "--db", str(root / "runs.db"), "-q",
                             "--out", str(root / "out")])  # fmt: skip
    with pytest.raises(SystemExit) as info:
        main()
    mp.undo()
    assert info.value.code in (0, None)
    assert (root / "out" / "tune.html").exists() and (root / "optuna.db").exists()
    return root


def _check_refused(place: Path, argv: list[str], expected: str, monkeypatch, capsys) -> None:
    before = _digest(place)
    code, out, err = _run(argv, monkeypatch, capsys)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2, (argv, out[-800:], err[-1500:])
    assert "Traceback" not in out + err
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert expected in lines[0], lines[0]
    assert _digest(place) == before  # nothing stored, nothing written, no new file


@pytest.mark.parametrize(("text", "args", "expected"), [c[1:] for c in FILES], ids=[c[0] for c in FILES])
def test_a_bad_tune_file_is_one_line_exit_2_and_stores_nothing(place, tmp_path, text, args, expected, monkeypatch,
                                                               capsys):  # fmt: skip
    file = tmp_path / "t.toml"
    file.write_text(text)
    argv = ["tune", str(file), "--db", str(place / "runs.db"), "--out", str(place / "out"), *args]
    _check_refused(place, argv, expected, monkeypatch, capsys)


@pytest.mark.parametrize(("args", "expected"), [c[1:] for c in OPTIONS], ids=[c[0] for c in OPTIONS])
def test_a_bad_option_is_one_line_exit_2_and_stores_nothing(place, args, expected, monkeypatch, capsys):
    args = [a.replace("{root}", str(place)) for a in args]
    file = [] if args[0].startswith("{") or not args[0].startswith("-") else [str(place / "good.toml")]
    argv = ["tune", *file, *args, "--db", str(place / "runs.db"), "--resume"]
    if "--out" not in args:
        argv += ["--out", str(place / "out")]
    _check_refused(place, argv, expected, monkeypatch, capsys)


def test_the_battery_has_at_least_40_hostile_inputs():
    assert len(FILES) + len(OPTIONS) >= 40


# ---------------------------------------------------------------- the space, as a property

_NUMBER = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**30), 10**30),
    st.sampled_from([0, 1, -1, 0.5, 1e300, -1e-300]),
)
_VALUE = st.one_of(
    _NUMBER,
    st.text(max_size=5),
    st.booleans(),
    st.lists(_NUMBER, max_size=3),
    st.fixed_dictionaries({}, optional={"log": st.lists(_NUMBER, max_size=3), "uniform": st.lists(_NUMBER, max_size=3),
                                        "int": st.lists(_NUMBER, max_size=3), "steps": st.lists(_NUMBER, max_size=3),
                                        "epochs": st.lists(_NUMBER, max_size=3), "run": st.lists(_NUMBER, max_size=3),
                                        "ratio": st.lists(_NUMBER, max_size=3)}),
)  # fmt: skip
_KEYS = {"cyclic": ["base_lr", "max_lr", "step_size", "cycles", "cycle_decay", "mode", "warmup"],
         "one_cycle": ["max_lr", "pct_start", "total_steps", "warmup"],
         "cosine_restarts": ["lr", "period", "period_mult", "decay"],
         "step_decay": ["lr", "step_size", "gamma"]}  # fmt: skip
_BASE = {"cyclic": {"base_lr": 0.001, "max_lr": 0.1, "step_size": 4}, "one_cycle": {"max_lr": 0.1},
         "cosine_restarts": {"lr": 0.1, "period": 4}, "step_decay": {"lr": 0.1, "step_size": 4}}  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(family=st.sampled_from(sorted(_KEYS)), data=st.data())
def test_any_space_is_refused_in_one_line_or_draws_only_usable_schedules(family, data):
    key = data.draw(st.sampled_from(_KEYS[family]))
    value = data.draw(_VALUE)
    table = {**_BASE[family], key: value}
    context = Context(steps_per_epoch=4, total_steps=12)
    try:
        space = parse_space({family: table})
        space.check(context)
    except SpaceError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("space")
        return
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(3):
        trial = study.ask()
        try:
            choice = space.sample(trial, context)
        except ValueError as exc:  # a draw the family refuses: the tune fails that trial and draws again
            assert "\n" not in str(exc)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        lrs = choice.schedule(np.arange(context.total_steps))
        assert np.all(np.isfinite(lrs)) and np.all(lrs >= 0)
        assert str(parse(str(choice.schedule))) == str(choice.schedule)
        study.tell(trial, 0.0)


def test_the_documented_cycles_range_draws_whole_numbers():
    space = parse_space({"cyclic": {**_BASE["cyclic"], "cycles": {"int": [1, 3]}}})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    drawn = set()
    for _ in range(20):
        trial = study.ask()
        schedule = space.sample(trial, Context(steps_per_epoch=4, total_steps=40)).schedule
        drawn.add(schedule.cycles)
        study.tell(trial, 0.0)
    assert drawn == {1, 2, 3}


# ---------------------------------------------------------------- two processes, one storage

CONCURRENT = """name = "together"
task = "digits-linear"
task_options = {{ train_size = 1024, val_size = 64 }}
epochs = 6
batch_size = 16
trials = {trials}
sampler = "random"
pruner = "none"

[space]
optimizer = "sgd(momentum=0.9)"
[space.cosine]
lr = {{ log = [0.001, 1.0] }}
"""


@pytest.mark.slow
def test_two_resumed_tunes_on_one_new_storage_share_it(tmp_path):
    """Two processes started together on one new Optuna storage and one store: neither fails
    the other's trial in flight, they draw different trials, and together they spend the
    budget once (not once each)."""
    trials = 12
    (tmp_path / "t.toml").write_text(CONCURRENT.format(trials=trials))
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    argv = [sys.executable, "-c", "from lrlab.cli import main; main()", "tune", str(tmp_path / "t.toml"),
            "--storage", storage, "--resume"]  # fmt: skip
    first = subprocess.Popen([*argv, "--db", str(tmp_path / "runs.db"), "--out", str(tmp_path / "a")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    # Started together, as two shells would be: both find the storage new.
    second = subprocess.Popen([*argv, "--db", str(tmp_path / "runs.db"), "--out", str(tmp_path / "b")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    results = [p.communicate(timeout=600) for p in (first, second)]
    for process, (_out, err) in zip((first, second), results):
        assert process.returncode == 0, err[-3000:]
        assert "Traceback" not in err and "already finished" not in err
    study = optuna.load_study(study_name="together", storage=storage)
    done = [t for t in study.trials if t.state.is_finished() and t.state is not optuna.trial.TrialState.FAIL]
    assert trials <= len(done) <= trials + 1  # the budget counts both processes' trials
    for trial in (t for t in study.trials if t.state is optuna.trial.TrialState.FAIL):
        assert "another process" in trial.user_attrs.get("error", ""), trial.user_attrs  # only skips fail
    assert not [t for t in study.trials if t.state is optuna.trial.TrialState.RUNNING]
    from lrlab.store import Store

    store = Store(tmp_path / "runs.db")
    for trial in done:  # every trial's run finished
        assert store.run(trial.user_attrs["run_id"]).status.is_finished
    assert len({t.user_attrs["owner"] for t in done}) == 2  # both trained (they overlapped) ...
    assert len({t.user_attrs["run_id"] for t in done}) == len(done)  # ... different draws


# ---------------------------------------------------------------- code that outlives its run


def _lrs_of_snippet(code: str, steps: int) -> np.ndarray:
    """Run a printed PyTorch snippet as pasted, over ``steps`` optimizer steps of a user's
    loop, and read the LR of every step from the optimizer."""
    import torch

    model = torch.nn.Linear(2, 1)
    seen: list[float] = []
    namespace: dict = {}

    def loss_fn(output, target):
        seen.append(namespace["optimizer"].param_groups[0]["lr"])
        return ((output - target) ** 2).mean()

    batches = [(torch.zeros(1, 2), torch.zeros(1, 1))] * (steps // 10)
    namespace.update(model=model, train_loader=batches, loss_fn=loss_fn, epochs=10)
    exec(compile(code, "<snippet>", "exec"), namespace)  # the code lrlab prints, as pasted
    return np.array(seen)


def _check_stretched(code: str, schedule: str, tune_steps: int) -> None:
    """The snippet, run 10x longer than the tune, follows the tune's curve at the same
    fractions of the run (not its last LR from the tune's length on)."""
    curve = parse(schedule)(np.arange(tune_steps))
    user = _lrs_of_snippet(code, 10 * tune_steps)
    assert len(user) == 10 * tune_steps
    at_fractions = user[np.arange(tune_steps) * 10]
    peak = float(curve.max())
    assert np.allclose(at_fractions, curve, rtol=0.05, atol=0.1 * peak), (at_fractions[:20], curve[:20])
    # Past the tune's length the LR still moves as the tune's did over its second half.
    half = slice(tune_steps // 2, None)
    assert np.ptp(user[5 * tune_steps:]) == pytest.approx(np.ptp(curve[half]), rel=0.1, abs=1e-3 * peak)


@pytest.mark.parametrize("schedule", [
    "one_cycle(max_lr=0.0084, total_steps=138, pct_start=0.308739)",
    "warmup(cosine(lr=0.05, total_steps=120), steps=18)",
    "cyclic(base_lr=0.001, max_lr=0.1, step_size=23, cycles=2)",
])  # fmt: skip
def test_the_tunes_code_is_in_the_users_units(schedule):
    from types import SimpleNamespace

    from lrlab.tune.report import code

    best = SimpleNamespace(optimizer="sgd(momentum=0.9)", schedule=parse(schedule))
    result = SimpleNamespace(recommendation=SimpleNamespace(best=best), total_steps=138)
    torch_code, keras_code = code(result)
    assert "total_steps=138" not in torch_code and "total_steps" in torch_code
    assert "len(x_train)" in keras_code
    _check_stretched(torch_code, schedule, 138)


def _panel_code(out: str, title: str) -> str:
    """The code printed in the rich panel titled ``title``."""
    lines = out.splitlines()
    top = next(i for i, line in enumerate(lines) if line.startswith("╭") and f" {title} " in line)
    body = []
    for line in lines[top + 1:]:
        if line.startswith("╰"):
            break
        body.append(line[2:].rstrip().removesuffix("│").rstrip())
    return "\n".join(body) + "\n"


def test_pbts_printed_code_is_in_the_users_units(tmp_path, monkeypatch, capsys):
    (tmp_path / "p.toml").write_text(_pbt("interval", "0.5"))
    code, out, err = _run(["tune", str(tmp_path / "p.toml"), "--db", str(tmp_path / "r.db"), "-q"], monkeypatch,
                          capsys)  # fmt: skip
    assert code == 0, err
    from lrlab.store import Store

    (run,) = Store(tmp_path / "r.db").runs(sweep="hostile")  # the winner's lineage, replayed
    schedule, steps = str(run.config.schedule), 8  # 2 epochs of 4 steps
    snippet = _panel_code(out, "PyTorch")
    assert "LRScheduler" in snippet and "total_steps = len(train_loader) * epochs" in snippet
    if "boundaries=[" in schedule:  # a lineage with pieces: its boundaries follow the user's run
        assert "boundaries=[" not in snippet.replace("boundaries=[{", "")
    _check_stretched(snippet, schedule, steps)


def test_a_tune_whose_trials_keep_failing_stops_in_one_line(tmp_path, monkeypatch, capsys):
    """Trials that fail for a reason of the setup (a loss that raises) stop the tune after
    three, in one line, instead of adding failed runs until the process is killed."""
    (tmp_path / "failing.py").write_text(
        "import itertools\n\n"
        "import torch.nn.functional as F\n\n"
        "from lrlab.training.tasks import get_task\n\n"
        "calls = itertools.count()\n\n\n"
        "def make(**options):\n"
        "    task = get_task('digits-linear', train_size=128, val_size=64)\n\n"
        "    def loss_fn(output, target):  # fits its data (the task check passes), then fails in training\n"
        "        if next(calls) < 1:\n"
        "            return F.cross_entropy(output, target)\n"
        "        raise RuntimeError('this loss cannot be computed')\n\n"
        "    task.loss_fn = loss_fn\n"
        "    return task\n"
    )
    text = GOOD.replace('task = "digits-linear"', f'task = "{tmp_path / "failing.py"}:make"')
    (tmp_path / "t.toml").write_text(text.replace("trials = 2", "trials = 50"))
    code, out, err = _run(["tune", str(tmp_path / "t.toml"), "--db", str(tmp_path / "r.db"), "-q"], monkeypatch,
                          capsys)  # fmt: skip
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 1 and "Traceback" not in out + err
    assert lines == ["error: 3 trials in a row failed, the last with: RuntimeError: this loss cannot be computed"]
    from lrlab.store import Store

    assert len(Store(tmp_path / "r.db").runs(sweep="hostile")) == 3
