"""plateau(...) under a real Keras ``model.fit`` (torch backend): PlateauCallback feeds the
monitored val_loss to the LearningRateSchedule's plateau at each epoch's end."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import pytest
import torch

keras = pytest.importorskip("keras")
from lrlab.keras import LearningRateSchedule, PlateauCallback  # noqa: E402
from lrlab.schedules import observe, parse  # noqa: E402

STEPS_PER_EPOCH, EPOCHS = 6, 5


def _fit(schedule: LearningRateSchedule, callbacks, validation: bool = True):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 8)).astype("float32")
    y = ((x[:, 0] > 0).astype("int64") + (x[:, 1] > 0)).astype("int64")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    model.compile(keras.optimizers.SGD(learning_rate=schedule),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))  # fmt: skip
    lrs: list[float] = []
    watch = keras.callbacks.LambdaCallback(
        on_train_batch_begin=lambda batch, logs: lrs.append(float(model.optimizer.learning_rate)))
    history = model.fit(x, y, batch_size=16, epochs=EPOCHS, validation_split=0.25 if validation else 0.0,
                        verbose=0, shuffle=False, callbacks=[*callbacks, watch])  # fmt: skip
    return lrs, history.history


def test_warmup_per_step_then_reduce_when_val_loss_stalls():
    # An LR so small that the validation loss stalls: each epoch's end reduces it.
    spec = "warmup(plateau(lr=1e-6, factor=0.5, patience=0), steps=3, start_lr=1e-7)"
    schedule = LearningRateSchedule(spec)
    lrs, history = _fit(schedule, [PlateauCallback()])
    assert len(lrs) == STEPS_PER_EPOCH * EPOCHS
    replay, states, expected = parse(spec), None, []
    for epoch, loss in enumerate(history["val_loss"], start=1):
        expected += [float(np.float32(replay(t))) for t in range((epoch - 1) * STEPS_PER_EPOCH, epoch * STEPS_PER_EPOCH)]
        replay, states = observe(replay, epoch * STEPS_PER_EPOCH - 1, loss, states)
    assert lrs == expected
    assert str(schedule.schedule) == str(replay) and "reductions=" in str(replay)
    # After the warmup, each epoch's LR is torch's ReduceLROnPlateau fed the same losses.
    reference = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-6)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(reference, factor=0.5, patience=0)
    for epoch, loss in enumerate(history["val_loss"][:-1], start=1):
        plateau.step(loss)
        assert lrs[epoch * STEPS_PER_EPOCH] == float(np.float32(reference.param_groups[0]["lr"]))
    assert lrs[-1] < lrs[STEPS_PER_EPOCH]


def test_without_validation_there_is_no_metric_to_drive_the_plateau():
    with pytest.raises(ValueError, match=r"monitors 'val_loss', which model.fit did not report"):
        _fit(LearningRateSchedule("plateau(lr=1e-6)"), [PlateauCallback()], validation=False)


def test_a_schedule_without_plateau_is_refused():
    with pytest.raises(ValueError, match="with a plateau"):
        _fit(LearningRateSchedule("constant(lr=1e-6)"), [PlateauCallback()])
