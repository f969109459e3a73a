"""The loop keeps the LR-free optimizers' contract: the same numbers as a hand-written loop
that follows each library's documented use, and not those of a loop that breaks it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

schedulefree = pytest.importorskip("schedulefree")
prodigyopt = pytest.importorskip("prodigyopt")
pytest.importorskip("dadaptation")

from lrlab.core.records import RunConfig  # noqa: E402
from lrlab.optim.lr_free import lr_estimate, recompute_batchnorm  # noqa: E402
from lrlab.store.sqlite import Store  # noqa: E402
from lrlab.torch_utils import torch_threads  # noqa: E402
from lrlab.training.loop import train_run  # noqa: E402
from lrlab.training.resolve import VAL_BATCH_SIZE, resolve  # noqa: E402
from lrlab.training.tasks import Task, TensorPairs  # noqa: E402

EPOCHS, BATCH, LR = 3, 16, 0.02


def _task(batchnorm: bool = False) -> tuple[Task, list[torch.nn.Module]]:
    """A tiny 3-class problem; every model the task builds is kept in the list."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(128, 6, generator=generator)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()
    built: list[torch.nn.Module] = []

    def model() -> torch.nn.Module:
        middle = [torch.nn.BatchNorm1d(12)] if batchnorm else []
        net = torch.nn.Sequential(torch.nn.Linear(6, 12), *middle, torch.nn.ReLU(), torch.nn.Linear(12, 3))
        built.append(net)
        return net

    task = Task("toy-lr-free", "classification", EPOCHS, BATCH, model, TensorPairs(x[:96], y[:96]),
                TensorPairs(x[96:], y[96:]))  # fmt: skip
    return task, built


def _config(optimizer: str, lr: float = LR) -> RunConfig:
    return RunConfig(task="toy-lr-free", lr=lr, optimizer=optimizer, epochs=EPOCHS, batch_size=BATCH, seed=0)


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "runs.db")


def _hand_loop(task: Task, optimizer_of, *, eval_before_evaluating=True, recompute_bn=False, trace=None):
    """The libraries' documented use, written out: optimizer.train() where the model trains,
    optimizer.eval() before evaluating (and BatchNorm statistics recomputed at x)."""
    threads = resolve(_config("sgd"), task).threads
    with torch_threads(threads):
        model = task.make_model(0)
        optimizer = optimizer_of(model.parameters())
        loader, val_loader = task.train_loader(BATCH, 0), task.val_loader(max(BATCH, VAL_BATCH_SIZE))
        bn_loader = task.train_loader(BATCH, 0)
        evaluations = []
        for _ in range(EPOCHS):
            model.train()
            if hasattr(optimizer, "train"):
                optimizer.train()
            for inputs, targets in loader:
                optimizer.zero_grad(set_to_none=True)
                task.loss_fn(model(inputs), targets).backward()
                if trace is not None:
                    trace.append(lr_estimate(optimizer))
                optimizer.step()
            if eval_before_evaluating and hasattr(optimizer, "eval"):
                optimizer.eval()
            if recompute_bn:
                recompute_batchnorm(model, optimizer, bn_loader, 50)
            evaluations.append(task.evaluate(model, val_loader))
    return model, evaluations


def _stored(store: Store, run_id: str) -> list[tuple[float | None, float | None]]:
    return [(e.val_loss, e.val_accuracy) for e in store.epochs(run_id)]


def _numbers(evaluations) -> list[tuple[float | None, float | None]]:
    return [(m["val_loss"], m["val_accuracy"]) for m in evaluations]


def test_schedule_free_through_the_loop_is_the_documented_loop_and_not_a_loop_without_eval(store):
    task, built = _task()
    record = train_run(_config("schedulefree_adamw"), store, "sf", task=task)
    assert record.status == "done", record.error
    (trained,) = built

    def documented(params):
        return schedulefree.AdamWScheduleFree(params, lr=LR)

    model, evaluations = _hand_loop(task, documented)
    assert _stored(store, "sf") == _numbers(evaluations)  # bit for bit, every epoch
    for ours, theirs in zip(trained.parameters(), model.parameters(), strict=True):
        assert torch.equal(ours, theirs)  # both end in eval mode: the weights at x
    # The LR recorded is the run's real LR (no warmup asked for).
    np.testing.assert_array_equal(store.steps("sf").lr, LR)

    # A loop that forgets optimizer.eval() evaluates at y: other numbers, so the test can fail.
    _, wrong = _hand_loop(task, documented, eval_before_evaluating=False)
    assert all(a[0] != b[0] for a, b in zip(_stored(store, "sf"), _numbers(wrong)))


def test_schedule_free_sgd_also_follows_the_contract(store):
    task, _ = _task()
    record = train_run(_config("schedulefree_sgd(momentum=0.9)", lr=0.5), store, "sgd", task=task)
    assert record.status == "done", record.error
    _, evaluations = _hand_loop(task, lambda p: schedulefree.SGDScheduleFree(p, lr=0.5, momentum=0.9))
    assert _stored(store, "sgd") == _numbers(evaluations)


def test_batchnorm_statistics_are_recomputed_before_each_evaluation(store):
    task, built = _task(batchnorm=True)
    record = train_run(_config("schedulefree_adamw"), store, "bn", task=task)
    assert record.status == "done", record.error

    def documented(params):
        return schedulefree.AdamWScheduleFree(params, lr=LR)

    model, evaluations = _hand_loop(task, documented, recompute_bn=True)
    assert _stored(store, "bn") == _numbers(evaluations)
    torch.testing.assert_close(built[0][1].running_mean, model[1].running_mean, rtol=0, atol=0)
    # Without the recomputation the statistics are those of y: the numbers differ.
    _, stale = _hand_loop(task, documented, recompute_bn=False)
    assert all(a[0] != b[0] for a, b in zip(_stored(store, "bn"), _numbers(stale)))


def test_prodigys_estimate_is_recorded_as_the_steps_lr_and_moves_from_d0(store):
    task, _ = _task()
    record = train_run(_config("prodigy", lr=1.0), store, "prodigy", task=task)
    assert record.status == "done", record.error
    recorded = store.steps("prodigy").lr
    trace: list[float] = []
    _, evaluations = _hand_loop(task, lambda p: prodigyopt.Prodigy(p, lr=1.0), trace=trace)
    np.testing.assert_array_equal(recorded, trace)  # d * lr before each step
    assert recorded[0] == 1e-06 and recorded[-1] > 100 * recorded[0]
    assert _stored(store, "prodigy") == _numbers(evaluations)


@pytest.mark.parametrize("spec", ["dadapt_adam(use_bias_correction=true)", "dadapt_sgd"])
def test_d_adaptation_trains_and_its_estimate_is_recorded(store, spec):
    # The estimate starts at d0 = 1e-6 and needs a few dozen steps to grow: 6 epochs of 6.
    task, _ = _task()
    config = RunConfig(task="toy-lr-free", lr=1.0, optimizer=spec, epochs=6, batch_size=BATCH, seed=0)
    record = train_run(config, store, "d", task=task)
    assert record.status == "done", record.error
    steps, epochs = store.steps("d"), store.epochs("d")
    assert steps.lr[-1] > 1000 * steps.lr[0]
    # The first step's LR: d0 * lr, for DAdaptSGD over the first gradient's norm.
    first = 1e-06 / steps.grad_norm[0] if spec.startswith("dadapt_sgd") else 1e-06
    assert steps.lr[0] == pytest.approx(first, rel=1e-6)
    assert epochs[-1].train_loss < epochs[0].train_loss
    assert epochs[-1].val_loss < 0.9 * epochs[0].val_loss


def test_ordinary_optimizers_record_their_groups_lr_as_before(store):
    task, _ = _task()
    train_run(_config("adam"), store, "adam", task=task)
    np.testing.assert_array_equal(store.steps("adam").lr, LR)
