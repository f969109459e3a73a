"""The trial interface: a declared function called with a trial, recorded through the one
recorder, ranked by its declared objective, and every way it can end stored in one line."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lrlab
from lrlab.core.ranking import rank
from lrlab.core.records import RunConfig, RunStatus
from lrlab.schedules import parse
from lrlab.store.sqlite import Store
from lrlab.training.tasks import check_task, get_task
from lrlab.training.tasks._base import fingerprint_change, task_fingerprint
from lrlab.training.trial import TrialStopped
from lrlab.training.trial_run import NO_METRICS, train_any, train_trainable
from lrlab.training.trial_task import TrainableTask

EPOCHS, PER_EPOCH = 3, 4


@lrlab.trainable(objective="score", direction="maximize", epochs=EPOCHS, steps_per_epoch=PER_EPOCH,
                 lr_range=(1e-3, 1.0), options={"size": 4, "log_first": False})  # fmt: skip
def quadratic(trial: lrlab.Trial) -> None:
    """Gradient descent on 0.5 * |w|^2 from w = 1: the gradient is w, so every recorded
    number is known in closed form. The score rises as w shrinks."""
    weight = torch.nn.Parameter(torch.ones(trial.options["size"]))
    opt = trial.optimizer([weight])
    sched = trial.scheduler(opt)
    for epoch in range(1, trial.epochs + 1):
        for _ in range(trial.steps_per_epoch):
            loss = 0.5 * weight.pow(2).sum()
            if trial.options["log_first"]:
                trial.log(loss=loss)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if not trial.options["log_first"]:
                trial.log(loss=loss.item())
        trial.report(epoch, score=-weight.detach().pow(2).sum().item(), other=epoch * 10)


def config(lr: float = 0.1, **changes: object) -> RunConfig:
    values: dict[str, object] = {"task": "quadratic", "lr": lr, "epochs": EPOCHS, "task_options": {"size": 4}}
    values.update(changes)
    return RunConfig(**values)  # type: ignore[arg-type]


def run(fn: lrlab.trainable, cfg: RunConfig, store: Store, run_id: str = "r", **options: object):  # type: ignore[valid-type]
    cfg = cfg.replace(task_options={**cfg.task_options, **options})
    return train_trainable(cfg, store, run_id, task=fn.task(**cfg.task_options))


# ---------------------------------------------------------------- declaration and plain call


def test_a_plain_call_keeps_the_reports_and_counts_the_steps() -> None:
    trial = quadratic.trial(lr=0.1, size=2)
    quadratic(trial)
    assert trial.steps == EPOCHS * PER_EPOCH
    assert [r["epoch"] for r in trial.reports] == [1.0, 2.0, 3.0]
    # w after n steps of SGD at lr 0.1 is 0.9**n per coordinate; the score is -|w|^2.
    assert trial.reports[-1]["score"] == pytest.approx(-2 * 0.9 ** (2 * EPOCHS * PER_EPOCH), rel=1e-5)
    assert trial.options == {"size": 2, "log_first": False}
    assert (trial.seed, trial.lr, trial.epochs, trial.steps_per_epoch) == (0, 0.1, EPOCHS, PER_EPOCH)


def test_the_public_names_are_exported_lazily() -> None:
    from lrlab.training.trial import Pruned, Trial, trainable

    assert (lrlab.trainable, lrlab.Trial, lrlab.Pruned) == (trainable, Trial, Pruned)
    from lrlab.tune.trial import Pruned as TunePruned

    assert TunePruned is Pruned  # the tune's pruner raises the very class a user may catch


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"direction": "up"}, "direction must be one of minimize, maximize", id="direction"),
        pytest.param({"epochs": 0}, "epochs must be a whole number >= 1", id="epochs"),
        pytest.param({"steps_per_epoch": 2.5}, "steps_per_epoch must be a whole number", id="steps"),
        pytest.param({"lr_range": (1.0, 0.1)}, "0 < low < high", id="lr_range"),
        pytest.param({"timeout_s": -1}, "timeout_s must be a number of seconds > 0", id="timeout"),
        pytest.param({"objective": "mean return"}, "objective must be a metric name", id="objective"),
    ],
)
def test_a_bad_declaration_is_one_line_naming_it(kwargs: dict[str, object], message: str) -> None:
    declared: dict[str, object] = {"objective": "loss", "epochs": 1, "steps_per_epoch": 1, **kwargs}
    with pytest.raises(ValueError, match=message) as info:
        lrlab.trainable(**declared)(lambda trial: None)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_a_function_that_takes_no_trial_is_refused() -> None:
    with pytest.raises(ValueError, match="must take one argument, the trial"):
        lrlab.trainable(objective="x", epochs=1, steps_per_epoch=1)(lambda: None)  # type: ignore[arg-type]


def test_options_are_checked_against_the_declared_ones() -> None:
    with pytest.raises(ValueError, match=r"has no option 'width' \(its options: log_first, size\)"):
        quadratic.task(width=3)
    assert quadratic.task(size=7).options == {"size": 7, "log_first": False}
    with pytest.raises(ValueError, match=r"option 'size' must be int like its default 4, got 'big'"):
        quadratic.task(size="big")
    with pytest.raises(ValueError, match=r"option 'log_first' must be bool like its default False, got 1"):
        quadratic.task(log_first=1)
    scaled = lrlab.trainable(objective="x", epochs=1, steps_per_epoch=1, options={"scale": 1.0, "tag": None})(
        lambda trial: None
    )
    assert scaled.task(scale=2, tag=[1]).options == {"scale": 2.0, "tag": [1]}  # 2 and 2.0: one configuration


# ---------------------------------------------------------------- recording


@pytest.mark.parametrize("log_first", [False, True], ids=["log-after-step", "log-before-step"])
def test_every_step_is_recorded_with_its_lr_gradient_norm_and_loss(log_first: bool) -> None:
    store = Store(":memory:")
    schedule = parse(f"cosine(lr=0.2, total_steps={EPOCHS * PER_EPOCH})")
    record = run(quadratic, config(0.2, schedule=schedule, optimizer="sgd(momentum=0.0)"), store,
                 size=4, log_first=log_first)  # fmt: skip
    assert record.status is RunStatus.DONE, record.error
    steps = store.steps("r")
    total = EPOCHS * PER_EPOCH
    lrs = schedule(np.arange(total))
    norms = [2.0 * math.prod(1 - lrs[i] for i in range(t)) for t in range(total)]  # |w_t| = 2 prod(1 - lr)
    assert list(steps.step) == list(range(total))
    assert list(steps.epoch) == [1 + t // PER_EPOCH for t in range(total)]
    np.testing.assert_allclose(np.asarray(steps.lrs)[:, 0], lrs, rtol=1e-12)
    np.testing.assert_allclose(steps.grad_norm, norms, rtol=1e-5)
    np.testing.assert_allclose(steps.loss, 0.5 * np.square(norms), rtol=1e-5)  # each loss on its own step
    np.testing.assert_allclose(steps.momentum, 0.0)


def test_each_report_is_an_epoch_record_and_the_objective_is_stored() -> None:
    store = Store(":memory:")
    record = run(quadratic, config(0.1), store)
    epochs = store.epochs("r")
    assert [(e.epoch, e.step) for e in epochs] == [(1, 4), (2, 8), (3, 12)]
    assert [e.value("other") for e in epochs] == [10.0, 20.0, 30.0]
    assert epochs[-1].value("score") == pytest.approx(-4 * 0.9 ** (2 * EPOCHS * PER_EPOCH), rel=1e-5)
    assert epochs[0].train_loss == pytest.approx(np.mean([2 * 0.81**t for t in range(PER_EPOCH)]), rel=1e-5)
    objective = record.objective
    assert objective is not None and (objective.metric, objective.higher_is_better) == ("score", True)
    assert record.extras["total_steps"] == EPOCHS * PER_EPOCH
    assert record.extras["device"] == "cpu"  # trial.device: where lrlab was asked to train


def test_trial_device_is_the_device_asked_for_resolved() -> None:
    seen: list[object] = []

    def where(trial: lrlab.Trial) -> None:
        seen.append(trial.device)
        trial.report(1, score=1.0)

    store = Store(":memory:")
    fn = lrlab.trainable(objective="score", epochs=1, steps_per_epoch=1)(where)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    record = train_trainable(RunConfig(task="w", lr=0.1), store, "w", device="auto", task=fn.task())
    assert record.status is RunStatus.DONE and seen == [torch.device(expected)]


def test_the_one_ranking_uses_the_declared_objective_and_direction() -> None:
    store = Store(":memory:")
    lrs = (0.01, 0.3, 0.1)
    for index, lr in enumerate(lrs):
        for seed in (0, 1):
            run(quadratic, config(lr, seed=seed), store, f"r{index}{seed}")
    runs = store.runs()
    ranked = rank(runs, store.epochs_for([r.id for r in runs]))
    assert ranked[0].metric == "score" and ranked[0].higher_is_better
    # The score is -|w|^2 (higher is better): the largest LR shrinks w most.
    assert [r.config.lr for r in ranked] == [0.3, 0.1, 0.01]
    assert ranked[0].seeds == 2


def test_a_run_shorter_than_declared_trains_and_reports_its_own_epochs() -> None:
    store = Store(":memory:")
    record = run(
        quadratic, config(0.1, epochs=2, schedule=f"cosine(lr=0.1, total_steps={2 * PER_EPOCH})"), store
    )
    assert record.status is RunStatus.DONE
    assert (record.extras["epochs"], record.extras["total_steps"], record.extras["declared_epochs"]) == (
        2,
        8,
        3,
    )
    assert len(store.steps("r")) == 2 * PER_EPOCH and [e.epoch for e in store.epochs("r")] == [1, 2]


def test_options_the_function_did_not_declare_fail_the_run_in_one_line() -> None:
    store = Store(":memory:")
    record = train_trainable(config(0.1, task_options={"depth": 3}), store, "o", task=quadratic.task())
    assert record.status is RunStatus.FAILED
    assert record.error == "trainable 'quadratic' has no option 'depth' (its options: log_first, size)"


def test_a_negative_loss_is_not_a_divergence() -> None:
    @lrlab.trainable(objective="gain", direction="maximize", epochs=2, steps_per_epoch=3)
    def surrogate(trial: lrlab.Trial) -> None:
        weight = torch.nn.Parameter(torch.tensor([1.0]))
        opt = trial.optimizer([weight])
        for epoch in (1, 2):
            for _ in range(3):
                loss = -(weight * 50).sum()  # a policy-gradient surrogate: negative and growing in size
                opt.zero_grad()
                loss.backward()
                opt.step()
                trial.log(loss=loss)
            trial.report(epoch, gain=weight.item())

    store = Store(":memory:")
    record = train_trainable(RunConfig(task="s", lr=0.1), store, "s", task=surrogate.task())
    assert record.status is RunStatus.DONE
    assert float(store.steps("s").loss[-1]) < -50


@settings(max_examples=15, deadline=None)
@given(
    lr=st.floats(1e-4, 0.5),
    family=st.sampled_from(["constant", "cosine", "one_cycle", "triangular"]),
)
def test_the_lr_recorded_is_the_schedule_at_every_step(lr: float, family: str) -> None:
    total = EPOCHS * PER_EPOCH
    spec = {
        "constant": f"constant(lr={lr!r})",
        "cosine": f"cosine(lr={lr!r}, total_steps={total})",
        "one_cycle": f"one_cycle(max_lr={lr!r}, total_steps={total})",
        "triangular": f"cyclic(base_lr={lr / 10!r}, max_lr={lr!r}, step_size=3)",
    }[family]
    store = Store(":memory:")
    record = run(quadratic, config(lr, schedule=spec, optimizer="adam"), store)
    assert record.status is RunStatus.DONE
    steps = store.steps("r")
    np.testing.assert_allclose(np.asarray(steps.lrs)[:, 0], parse(spec)(np.arange(total)), rtol=1e-12)
    assert np.all(np.isfinite(steps.grad_norm)) and np.all(np.isfinite(steps.momentum))


@settings(max_examples=25, deadline=None)
@given(log_before=st.booleans(), logged=st.lists(st.booleans(), min_size=EPOCHS * PER_EPOCH,
                                                 max_size=EPOCHS * PER_EPOCH))  # fmt: skip
def test_each_logged_loss_lands_on_its_own_step(log_before: bool, logged: list[bool]) -> None:
    """Whichever side of the step a function logs on, and whichever steps it leaves out,
    each loss is recorded at the step it belongs to and the others have none."""
    logged[0] = True  # the first log tells the order

    def steps(trial: lrlab.Trial) -> None:
        weight = torch.nn.Parameter(torch.ones(1))
        opt = trial.optimizer([weight])
        for epoch in range(1, EPOCHS + 1):
            for _ in range(PER_EPOCH):
                step = trial.steps
                if log_before and logged[step]:
                    trial.log(loss=float(step))
                weight.grad = torch.ones(1)
                opt.step()
                if not log_before and logged[step]:
                    trial.log(loss=float(step))
            trial.report(epoch, score=1.0)

    store = Store(":memory:")
    fn = lrlab.trainable(objective="score", epochs=EPOCHS, steps_per_epoch=PER_EPOCH)(steps)
    record = train_trainable(RunConfig(task="l", lr=0.01), store, "l", task=fn.task())
    assert record.status is RunStatus.DONE
    expected = [float(t) if logged[t] else math.nan for t in range(EPOCHS * PER_EPOCH)]
    np.testing.assert_array_equal(store.steps("l").loss, expected)


# ---------------------------------------------------------------- every way to end


def _declared(fn, **kwargs: object):  # type: ignore[no-untyped-def]
    return lrlab.trainable(**{"objective": "score", "epochs": 2, "steps_per_epoch": 1, **kwargs})(fn)


def raises(trial: lrlab.Trial) -> None:
    trial.report(1, score=1.0)
    raise RuntimeError("the environment crashed\nsecond line")


def silent(trial: lrlab.Trial) -> None:
    weight = torch.nn.Parameter(torch.ones(1))
    trial.optimizer([weight]).step()


def nan_objective(trial: lrlab.Trial) -> None:
    trial.report(1, score=1.0)
    trial.report(2, score=float("nan"))
    raise AssertionError("never reached: the NaN report ends the trial")


def nan_loss(trial: lrlab.Trial) -> None:
    weight = torch.nn.Parameter(torch.ones(1))
    opt = trial.optimizer([weight])
    opt.step()
    trial.log(loss=float("inf"))
    raise AssertionError("never reached")


def swallows(trial: lrlab.Trial) -> None:
    trial.report(1, score=1.0)
    try:
        trial.report(2, score=float("inf"))
    except BaseException:  # a function that hides lrlab's stop from itself still ends diverged
        return


def no_objective(trial: lrlab.Trial) -> None:
    trial.report(1, loss=0.5)


def backwards(trial: lrlab.Trial) -> None:
    trial.report(2, score=1.0)
    trial.report(1, score=1.0)


@pytest.mark.parametrize(
    ("fn", "status", "error"),
    [
        pytest.param(raises, RunStatus.FAILED, "RuntimeError: the environment crashed (test_trial.py line", id="raises"),
        pytest.param(silent, RunStatus.FAILED, NO_METRICS, id="reports-nothing"),
        pytest.param(nan_objective, RunStatus.DIVERGED, "score is nan at epoch 2", id="nan-objective"),
        pytest.param(swallows, RunStatus.DIVERGED, "score is inf at epoch 2", id="swallowed-stop"),
        pytest.param(nan_loss, RunStatus.DIVERGED, "non-finite loss at step 0", id="nan-loss"),
        pytest.param(no_objective, RunStatus.FAILED, "has no score, the declared objective (got: loss)", id="no-objective"),
        pytest.param(backwards, RunStatus.FAILED, "epoch must run from 3 to 2", id="epochs-backwards"),
    ],
)  # fmt: skip
def test_every_way_a_function_ends_is_one_line_in_the_store(fn, status: RunStatus, error: str) -> None:  # type: ignore[no-untyped-def]
    store = Store(":memory:")
    record = train_trainable(RunConfig(task="f", lr=0.1), store, "f", task=_declared(fn).task())
    assert record.status is status
    assert error in (record.error or "")
    assert "\n" not in (record.error or "")


def test_a_function_past_its_time_is_stopped_and_stored_failed() -> None:
    import threading

    ended: list[BaseException] = []
    unwound = threading.Event()

    def loops_without_reporting(trial: lrlab.Trial) -> None:
        weight = torch.nn.Parameter(torch.ones(1))
        opt = trial.optimizer([weight])
        trial.report(1, score=1.0)
        try:
            while True:  # trains forever, never reports again: the next step after the limit stops it
                opt.step()
                time.sleep(0.01)
        except BaseException as exc:
            ended.append(exc)
            unwound.set()
            raise

    store = Store(":memory:")
    record = train_trainable(RunConfig(task="f", lr=0.1), store, "f",
                             task=_declared(loops_without_reporting, timeout_s=0.3).task())  # fmt: skip
    assert record.status is RunStatus.FAILED
    assert record.error == "no report within 0.3 s after epoch 1 (timeout_s=0.3): stopped"
    assert unwound.wait(30)  # the loop itself was stopped by its next step, not only abandoned
    assert isinstance(ended[0], TrialStopped) and ended[0].reason == record.error
    assert len(store.epochs("f")) == 1  # what it reported before is kept


def test_a_function_stuck_outside_lrlab_is_abandoned_and_the_next_run_trains() -> None:
    def stuck(trial: lrlab.Trial) -> None:
        time.sleep(3600)

    store = Store(":memory:")
    first = train_trainable(
        RunConfig(task="f", lr=0.1), store, "stuck", task=_declared(stuck, timeout_s=0.2).task()
    )
    assert (first.status, first.error) == (
        RunStatus.FAILED,
        "no report within 0.2 s (timeout_s=0.2): stopped",
    )
    second = run(quadratic, config(0.1), store, "next")
    assert second.status is RunStatus.DONE
    assert store.run("stuck").status is RunStatus.FAILED  # nothing stored is lost or overwritten


def test_pruned_from_the_progress_callback_is_stored_as_the_tunes_pruned_runs() -> None:
    def prune_at_two(event: object) -> None:
        if getattr(event, "event", "") == "epoch" and event.epoch == 2:  # type: ignore[attr-defined]
            assert event.metrics["score"] < 0  # type: ignore[attr-defined]  # the reported objective travels
            raise lrlab.Pruned("by the test pruner after epoch 2")

    store = Store(":memory:")
    record = train_trainable(config(0.1), store, "p", prune_at_two, task=quadratic.task())
    assert record.status is RunStatus.FAILED
    assert record.error == "Pruned: by the test pruner after epoch 2"
    assert len(store.epochs("p")) == 2


# ---------------------------------------------------------------- the task adapter


TRAINABLE_FILE = """
import lrlab
import torch

@lrlab.trainable(objective="val_mse", epochs=2, steps_per_epoch=3, lr_range=(1e-3, 1.0), options={"width": 4})
def fit(trial):
    torch.manual_seed(trial.seed)
    x = torch.randn(32, 3)
    y = x.sum(1, keepdim=True)
    model = torch.nn.Sequential(torch.nn.Linear(3, trial.options["width"]), torch.nn.Tanh(),
                                torch.nn.Linear(trial.options["width"], 1))
    opt = trial.optimizer(model.parameters())
    sched = trial.scheduler(opt)
    for epoch in range(1, trial.epochs + 1):
        for _ in range(trial.steps_per_epoch):
            loss = torch.nn.functional.mse_loss(model(x), y)
            opt.zero_grad(); loss.backward(); opt.step(); sched.step()
            trial.log(loss=loss)
        with torch.no_grad():
            trial.report(epoch, val_mse=float(torch.nn.functional.mse_loss(model(x), y)))
"""


def test_a_file_reference_to_a_trainable_is_a_task_without_a_range_test(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "loop.py"
    path.write_text(TRAINABLE_FILE)
    task = get_task(f"{path}:fit", width=8)
    assert isinstance(task, TrainableTask)
    assert (task.range_test, task.lr_range, task.options, task.default_epochs) == (
        False,
        (1e-3, 1.0),
        {"width": 8},
        2,
    )
    assert task.steps_per_epoch(64) == 3 and task.objective.metric == "val_mse"
    line = check_task(task, f"{path}:fit")
    assert line is not None and "trainable function: not run before training" in line
    with pytest.raises(ValueError, match="has no option 'depth'"):
        get_task(f"{path}:fit", depth=2)
    with pytest.raises(ValueError, match="builds its own model"):
        task.make_model(0)
    store = Store(":memory:")
    record = train_any(
        RunConfig(task=f"{path}:fit", lr=0.05, optimizer="adam", task_options={"width": 8}), store, "f"
    )
    assert record.status is RunStatus.DONE and len(store.steps("f")) == 6


def test_two_variants_of_a_function_never_share_a_fingerprint(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "loop.py"
    path.write_text(TRAINABLE_FILE)
    base = task_fingerprint(get_task(f"{path}:fit"))
    assert fingerprint_change(base, task_fingerprint(get_task(f"{path}:fit"))) is None
    assert fingerprint_change(base, task_fingerprint(get_task(f"{path}:fit", width=8))) == (
        "the task",
        "its options",
    )
    other = tmp_path / "other.py"
    other.write_text(TRAINABLE_FILE.replace("nn.Tanh()", "nn.ReLU()"))
    what, how = fingerprint_change(base, task_fingerprint(get_task(f"{other}:fit")))  # type: ignore[misc]
    assert what == "the task" and how.startswith("source ")
