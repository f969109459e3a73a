"""The recording training loop, on real (tiny) training runs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from tests.run_configs import typed_config

from lrlab.schedules import parse
from lrlab.store.sqlite import Store
from lrlab.sweeps import substitute
from lrlab.training.loop import RunProgress, train_run
from lrlab.training.resolve import resolve_device
from lrlab.training.tasks import get_task


def _config(**overrides):
    """A typed run; ``{lr}`` and ``{total_steps}`` in its schedules are filled as a sweep fills them."""
    config = {
        "task": "digits-mlp",
        "task_options": {"train_size": 256, "val_size": 128, "hidden": 32},
        "optimizer": "sgd(momentum=0.9)",
        "schedule": "cosine(lr={lr}, total_steps={total_steps})",
        "lr": 0.1,
        "seed": 0,
        "epochs": 3,
        "batch_size": 32,
    }
    config.update(overrides)
    return typed_config(config)


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "runs.db")


def test_records_every_step_and_epoch(store):
    events: list[RunProgress] = []
    record = train_run(_config(), store, "r", progress=events.append)
    assert record.status == "done" and record.error is None
    assert record.lrlab_version and record.torch_version and record.started_at <= record.finished_at
    steps = store.steps("r")
    assert len(steps) == 3 * 8  # 256 examples / 32 per batch, 3 epochs
    np.testing.assert_array_equal(steps.step, np.arange(24))
    np.testing.assert_array_equal(steps.epoch, np.repeat([1, 2, 3], 8))
    # The LR of each step is the schedule's value at that step.
    np.testing.assert_allclose(steps.lr, parse("cosine(lr=0.1, total_steps=24)")(np.arange(24)), rtol=1e-12)
    np.testing.assert_array_equal(steps.momentum, 0.9)
    assert np.all(np.isfinite(steps.grad_norm)) and np.all(steps.grad_norm > 0)
    epochs = store.epochs("r")
    assert [e.epoch for e in epochs] == [1, 2, 3] and [e.step for e in epochs] == [8, 16, 24]
    np.testing.assert_allclose(epochs[0].train_loss, steps.loss[:8].mean())
    assert epochs[-1].val_loss < epochs[0].val_loss
    assert epochs[-1].val_error == pytest.approx(1 - epochs[-1].val_accuracy)
    assert all(a.wall_time < b.wall_time for a, b in itertools.pairwise(epochs))
    assert [e.event for e in events if e.event != "step"] == ["start", "epoch", "epoch", "epoch", "end"]
    assert events[-1].status == "done"


def test_same_config_and_seed_give_the_same_numbers(store):
    train_run(_config(), store, "a")
    train_run(_config(), store, "b")
    train_run(_config(seed=1), store, "c")
    a, b, c = store.steps("a"), store.steps("b"), store.steps("c")
    np.testing.assert_array_equal(a.loss, b.loss)
    np.testing.assert_array_equal(a.grad_norm, b.grad_norm)
    assert [e.val_loss for e in store.epochs("a")] == [e.val_loss for e in store.epochs("b")]
    assert not np.array_equal(a.loss, c.loss)


def test_divergence_stops_the_run_at_that_step(store):
    record = train_run(_config(lr=200.0, schedule="constant(lr={lr})"), store, "d")
    assert record.status == "diverged"
    steps = store.steps("d")
    assert record.diverged_step == steps.step[-1] < 24
    last = steps.loss[-1]
    assert not np.isfinite(last) or last > 4 * steps.loss[0]
    assert "at step" in record.error


def test_divergence_factor_is_configurable(store):
    # With a factor below 1 the second step already counts as divergence unless the loss fell.
    record = train_run(_config(divergence_factor=0.5), store, "f")
    assert record.status == "diverged" and record.diverged_step is not None


def test_a_raising_task_marks_the_run_failed(store, tmp_path):
    path = tmp_path / "bad_task.py"
    path.write_text("def make():\n    raise RuntimeError('no data here')\n")
    record = train_run(_config(task=f"{path}:make", task_options={}), store, "x")
    assert record.status == "failed"
    # One line naming the task, its factory and what the factory raised (lrlab.training.tasks).
    assert record.error == f"ValueError: task '{path}:make': make() raised RuntimeError: no data here (bad_task.py line 2)"
    assert "Traceback" in record.extras["traceback"]


def test_rerun_discards_the_earlier_attempt(store):
    train_run(_config(epochs=1), store, "r")
    store.append_metrics("r", [(999, 9, [1.0], None, 1.0, 1.0)])
    train_run(_config(epochs=1), store, "r")
    assert len(store.steps("r")) == 8


def test_lr_mult_rules_give_each_group_its_multiple(store):
    # digits-mlp is a Sequential: "4" is the output layer.
    record = train_run(_config(lr_mult={"4.*": 10.0}), store, "m")
    assert record.status == "done"
    steps = store.steps("m")
    assert steps.lrs.shape[1] >= 2
    ratios = steps.lrs.max(axis=1) / steps.lrs.min(axis=1)
    np.testing.assert_allclose(ratios[:-1], 10.0)


def test_finetune_dict_freezes_and_unfreezes(store):
    config = _config(finetune={"rules": {"4.*": 10.0}, "freeze": ["0.*"], "unfreeze_every": 1})
    record = train_run(config, store, "ft")
    assert record.status == "done", record.error
    assert len(store.steps("ft")) == 24


def test_momentum_schedule_is_recorded(store):
    config = _config(momentum="linear(start_lr=0.95, end_lr=0.85, total_steps={total_steps})")
    train_run(config, store, "mom")
    momentum = store.steps("mom").momentum
    assert momentum[0] == pytest.approx(0.95) and momentum[-1] < momentum[0]


def test_adam_momentum_is_beta1(store):
    train_run(_config(optimizer="adam(betas=[0.8, 0.99])", lr=0.001), store, "adam")
    np.testing.assert_array_equal(store.steps("adam").momentum, 0.8)


def test_rmsprop_without_momentum_stays_zero_and_adagrad_nan(store):
    train_run(_config(optimizer="adagrad", epochs=1), store, "ada")
    assert np.all(np.isnan(store.steps("ada").momentum))


def test_language_model_run(store):
    config = _config(task="chars-lstm", task_options={"corpus_chars": 6000, "block_size": 16, "hidden": 16},
                     optimizer="adam", lr=0.01, epochs=1, batch_size=64)  # fmt: skip
    record = train_run(config, store, "lm")
    assert record.status == "done", record.error
    (epoch,) = store.epochs("lm")
    assert epoch.val_accuracy is None and epoch.val_error is None and 1.0 < epoch.val_loss < 5.0


def test_ctrl_c_puts_the_run_back_in_the_queue(store):
    def interrupt(event):
        if event.event == "epoch":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(_config(), store, "k", progress=interrupt)
    assert store.run("k").status == "queued"


def test_devices():
    assert str(resolve_device("cpu")) == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="device must be cpu, cuda or auto"):
        resolve_device("tpu")


def test_substitute_rejects_unknown_placeholders():
    assert substitute("x({steps_per_epoch})", lr=1, total_steps=2, steps_per_epoch=3) == "x(3)"
    with pytest.raises(ValueError, match="unknown placeholder"):
        substitute("cosine(lr={learning_rate})", lr=1, total_steps=2, steps_per_epoch=3)


def test_recorded_gradient_norm_is_the_global_norm(store):
    import torch

    config = _config(lr=0.0, schedule="constant(lr=0.0)", epochs=1, optimizer="sgd")
    train_run(config, store, "g")
    task = get_task("digits-mlp", **config.task_options)
    model = task.make_model(0)
    inputs, targets = next(iter(task.train_loader(32, seed=0)))
    task.loss_fn(model(inputs), targets).backward()
    expected = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in model.parameters())).item()
    steps = store.steps("g")
    assert steps.grad_norm[0] == pytest.approx(expected, rel=1e-5)
    assert steps.loss[0] == pytest.approx(task.loss_fn(model(inputs), targets).item(), rel=1e-6)


def test_a_run_trains_with_its_own_thread_count_and_records_it(store):
    import torch

    before = torch.get_num_threads()
    record = train_run(_config(epochs=1, threads=1), store, "t1")
    assert record.extras["threads"] == 1 and torch.get_num_threads() == before
    assert train_run(_config(epochs=1), store, "t0").extras["threads"] == 1  # the default
