"""plateau(...) in the recording loop: driven by each epoch's validation metric, on real runs,
against a hand-written loop with torch's own ReduceLROnPlateau."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lrlab.core.records import RunConfig
from lrlab.optim.lr_free import SCHEDULE_FREE
from lrlab.schedules import observe, parse
from lrlab.store.sqlite import Store
from lrlab.training.loop import train_run
from lrlab.training.resolve import check_plateau, plateau_metric, resolve
from lrlab.training.tasks import Task, get_task
from lrlab.training.vectorized import plan_groups
from lrlab.training.vectorized.plan import why_not_vectorized

OPTIONS = {"train_size": 96, "val_size": 64}
EPOCHS, BATCH, PER_EPOCH = 8, 32, 3


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "runs.db")


def _config(schedule: str, **overrides) -> RunConfig:
    values = {"task": "digits-linear", "task_options": OPTIONS, "optimizer": "sgd(momentum=0.9)", "lr": 0.5,
              "schedule": schedule, "epochs": EPOCHS, "batch_size": BATCH, "seed": 3}  # fmt: skip
    values.update(overrides)
    return RunConfig(**values)


def _torch_loop(lr: float, **plateau_args) -> tuple[list[float], list[float]]:
    """The same run written by hand: SGD, torch's ReduceLROnPlateau stepped with each epoch's
    validation loss. Returns the LR of every step and every epoch's validation loss."""
    task = get_task("digits-linear", **OPTIONS)
    model = task.make_model(3)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, **plateau_args)
    loader, val_loader = task.train_loader(BATCH, 3), task.val_loader(256)
    lrs, val_losses = [], []
    torch.set_num_threads(1)
    for _ in range(EPOCHS):
        for inputs, targets in loader:
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.zero_grad(set_to_none=True)
            task.loss_fn(model(inputs), targets).backward()
            optimizer.step()
        val_losses.append(task.evaluate(model, val_loader)["val_loss"])
        scheduler.step(val_losses[-1])
    return lrs, val_losses


def test_plateau_run_equals_torch_reduce_on_plateau_stepped_by_hand(store):
    # threshold=0.2: an epoch must improve the validation loss by 20 % to count, so it reduces.
    args = {"factor": 0.5, "patience": 0, "threshold": 0.2, "cooldown": 1}
    record = train_run(_config("plateau(lr=0.5, factor=0.5, patience=0, threshold=0.2, cooldown=1)"), store, "p")
    assert record.status == "done", record.error
    lrs, val_losses = _torch_loop(0.5, **args)
    steps, epochs = store.steps("p"), store.epochs("p")
    assert steps.lr.tolist() == lrs  # the LR each step used, bit for bit
    assert [e.val_loss for e in epochs] == val_losses
    assert len(steps) == EPOCHS * PER_EPOCH and [e.step for e in epochs] == list(range(3, 25, 3))
    assert sorted(set(lrs), reverse=True) == [0.5, 0.25, 0.125]  # reduced twice (a cooldown between)


def test_warmup_then_plateau_warms_up_per_step_and_reduces_per_epoch(store):
    spec = "warmup(plateau(lr=0.5, factor=0.5, patience=0, threshold=0.05), steps=4, start_lr=0.1)"
    record = train_run(_config(spec), store, "w")
    assert record.status == "done", record.error
    steps, epochs = store.steps("w"), store.epochs("w")
    np.testing.assert_allclose(steps.lr[:4], [0.1, 0.2, 0.3, 0.4], rtol=1e-12)  # per step
    # The pure state machine, fed each epoch's loss at the epoch's last step, gives every LR.
    schedule, states, expected = parse(spec), None, []
    for epoch, record_ in enumerate(epochs, start=1):
        expected += [schedule(t) for t in range((epoch - 1) * PER_EPOCH, epoch * PER_EPOCH)]
        schedule, states = observe(schedule, epoch * PER_EPOCH - 1, record_.val_loss, states)
    assert steps.lr.tolist() == expected
    assert len(set(steps.lr[4:].tolist())) >= 2  # constant within an epoch, lowered by metrics
    for epoch in range(2, EPOCHS + 1):
        within = steps.lr[(epoch - 1) * PER_EPOCH : epoch * PER_EPOCH]
        assert len(set(within.tolist())) == 1 or epoch == 2  # epoch 2 holds the warmup's last step


def test_a_plateau_on_a_declared_objective_follows_that_metric(store):
    task = get_task("digits-linear", **OPTIONS)
    higher = Task("acc", "classification", 2, BATCH, task.model_factory, task.train_data, task.val_data,
                  objective="val_accuracy")  # fmt: skip
    assert plateau_metric(higher) == ("val_accuracy", True)
    assert plateau_metric(task) == ("val_loss", False)
    config = _config("plateau(lr=0.5, factor=0.5, patience=0, mode='max')", task="acc")
    record = train_run(config, store, "a", task=higher)
    assert record.status == "done", record.error
    steps, epochs = store.steps("a"), store.epochs("a")
    schedule, states = parse("plateau(lr=0.5, factor=0.5, patience=0, mode='max')"), None
    for epoch, rec in enumerate(epochs, start=1):
        assert steps.lr[(epoch - 1) * PER_EPOCH] == schedule(0)
        schedule, states = observe(schedule, epoch * PER_EPOCH - 1, rec.value("val_accuracy"), states)


@pytest.mark.parametrize(
    ("mode", "task_objective", "message"),
    [
        ("max", None, "plateau(mode='max') is driven by val_loss, where lower is better on task 'digits-linear': "
                      "use mode='min'"),
        ("min", "val_accuracy", "plateau(mode='min') is driven by val_accuracy, where higher is better on task "
                                "'acc': use mode='max'"),
    ],
    ids=["max-on-loss", "min-on-accuracy"],
)
def test_a_mode_against_the_metric_direction_is_one_line(mode, task_objective, message, store):
    task = get_task("digits-linear", **OPTIONS)
    if task_objective is not None:
        task = Task("acc", "classification", 2, BATCH, task.model_factory, task.train_data, task.val_data,
                    objective=task_objective)  # fmt: skip
    schedule = parse(f"warmup(plateau(lr=0.1, mode={mode!r}), steps=2)")
    with pytest.raises(ValueError) as caught:
        check_plateau(schedule, task)
    assert str(caught.value) == message
    config = _config(str(schedule), task=task.name)
    with pytest.raises(ValueError, match="use mode="):
        resolve(config, task)
    record = train_run(config, store, "bad", task=task)  # recorded failed, with the line
    assert record.status == "failed" and message in record.error and store.steps("bad").step.size == 0


@pytest.mark.parametrize("optimizer", sorted(SCHEDULE_FREE))
@pytest.mark.parametrize(
    ("schedule", "ramp"),
    [
        ("warmup(plateau(lr=0.01), steps=10)", "warmup(..., steps=10)"),
        ("one_cycle(max_lr=0.01, total_steps=100)", "one_cycle's rise (pct_start)"),
        ("wsd(lr=0.01, total_steps=100, warmup_steps=5, decay_steps=10)", "wsd's warmup_steps=5"),
        ("sequence([constant(lr=0.01), warmup(cosine(lr=0.01, total_steps=9), steps=3)], boundaries=[5])",
         "warmup(..., steps=3)"),
    ],
    ids=["warmup", "one_cycle", "wsd", "nested"],
)
def test_schedule_free_warmup_with_a_warming_schedule_is_one_line(optimizer, schedule, ramp):
    spec = f"{optimizer}(warmup_steps=20)"
    with pytest.raises(ValueError) as caught:
        RunConfig(task="digits-linear", lr=0.01, optimizer=spec, schedule=schedule)
    assert str(caught.value) == (
        f"optimizer {spec!r} warms up by itself (warmup_steps=20) and schedule {str(parse(schedule))!r} warms up "
        f"too ({ramp}): the run would warm up twice; drop warmup_steps from the optimizer or the warmup from "
        "the schedule"
    )
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("optimizer", "schedule"),
    [
        ("schedulefree_adamw(warmup_steps=20)", "plateau(lr=0.01)"),
        ("schedulefree_adamw(warmup_steps=20)", "cosine(lr=0.01, total_steps=100)"),
        ("schedulefree_sgd", "warmup(constant(lr=0.01), steps=10)"),
        ("schedulefree_sgd(warmup_steps=0)", "one_cycle(max_lr=0.01, total_steps=100)"),
        ("adamw", "warmup(constant(lr=0.01), steps=10)"),
    ],
)
def test_one_warmup_only_is_accepted(optimizer, schedule):
    assert str(RunConfig(task="digits-linear", lr=0.01, optimizer=optimizer, schedule=schedule).schedule)


def test_the_torch_free_schedule_free_names_are_the_optimizers():
    from lrlab.core.defaults import _SCHEDULE_FREE

    assert set(_SCHEDULE_FREE) == SCHEDULE_FREE


def test_plateau_runs_are_never_stacked_in_a_vectorised_group():
    from lrlab.sweeps import RunPlan

    plans = [RunPlan.of("s", _config(s.format(lr), lr=lr))
             for s in ("constant(lr={})", "plateau(lr={}, patience=2)", "warmup(plateau(lr={}), steps=3)")
             for lr in (0.1, 0.2)]  # fmt: skip
    groups, alone = plan_groups(plans)
    assert [len(members) for _, members in groups] == [2]
    assert all(str(m.config.schedule).startswith("constant") for m in groups[0][1])
    assert [str(p.config.schedule) for p in alone] == [str(p.config.schedule) for p in plans[2:]]
    assert why_not_vectorized(plans[2].config) == (
        "a plateau(...) schedule is driven by each run's own metric, one run at a time"
    )
