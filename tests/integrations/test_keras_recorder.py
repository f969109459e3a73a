"""A real Keras ``model.fit`` (torch backend) streamed into the store by lrlab.keras.Recorder."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
from lrlab.keras import LearningRateSchedule, Recorder  # noqa: E402
from lrlab.schedules import cosine  # noqa: E402
from lrlab.store import Store  # noqa: E402


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 8)).astype("float32")
    y = ((x[:, 0] > 0).astype("int64") + (x[:, 1] > 0)).astype("int64")
    return x, y


def model(lr):
    keras.utils.set_random_seed(0)
    m = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)]
    )
    m.compile(keras.optimizers.Adam(learning_rate=lr),
              keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])  # fmt: skip
    return m


def test_recorder_reads_back_lr_loss_grad_and_val_metrics(tmp_path):
    x, y = data()
    schedule = cosine(0.01, total_steps=16)
    m = model(LearningRateSchedule(schedule))
    rec = Recorder(name="tiny-keras", db=tmp_path / "r.db", sweep="k")
    history = m.fit(
        x, y, batch_size=16, epochs=2, validation_split=0.25, verbose=0, callbacks=[rec], shuffle=False
    )
    store = Store(tmp_path / "r.db", readonly=True)
    run = store.run(rec.run.run_id)
    assert str(run.status) == "done" and run.config.optimizer == "adam" and run.extras["total_steps"] == 12
    series = store.steps(run.id)
    assert list(series.step) == list(range(1, 13))
    assert series.lr == pytest.approx([schedule(t) for t in range(12)], rel=1e-5)
    assert series.momentum == pytest.approx([0.9] * 12) and (series.grad_norm > 0).all()
    # per-batch losses average back to Keras' epoch loss (6 equal batches per epoch)
    assert np.mean(series.loss[:6]) == pytest.approx(history.history["loss"][0], rel=1e-4)
    epochs = store.epochs(run.id)
    assert [e.val_loss for e in epochs] == pytest.approx(history.history["val_loss"], rel=1e-5)
    assert [e.val_accuracy for e in epochs] == pytest.approx(history.history["val_accuracy"], rel=1e-5)


def test_two_recorders_on_one_fit_are_refused(tmp_path):
    x, y = data()
    a, b = Recorder(name="a", db=tmp_path / "r.db"), Recorder(name="b", db=tmp_path / "r.db")
    with pytest.raises(RuntimeError, match="two lrlab Recorder callbacks"):
        model(0.01).fit(x, y, epochs=1, verbose=0, callbacks=[a, b])
    runs = Store(tmp_path / "r.db").runs()
    assert [str(r.status) for r in runs] == ["failed"] and "two lrlab Recorder" in runs[0].error


def test_the_update_ratio_of_each_keras_step_is_the_weights_change_over_their_size(tmp_path):
    x, y = data()
    m = model(0.01)
    weights = []

    class Snap(keras.callbacks.Callback):  # the trainable weights after each batch, read by hand
        def on_train_batch_end(self, batch, logs=None):
            weights.append([np.array(keras.ops.convert_to_numpy(v.value)) for v in m.trainable_weights])

    first = [np.array(keras.ops.convert_to_numpy(v.value)) for v in m.trainable_weights]
    rec = Recorder(name="ratio", db=tmp_path / "r.db")
    m.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[rec, Snap()], shuffle=False)
    series = Store(tmp_path / "r.db", readonly=True).instruments(rec.run.run_id)["update_ratio/group0"]
    before = [first, *weights[:-1]]
    expected = [
        np.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(after, prev))) / np.sqrt(sum((b**2).sum() for b in prev))
        for after, prev in zip(weights, before)
    ]
    assert series.steps == [1, 2, 3, 4]  # as Keras logs them (optimizer.iterations after the batch)
    assert series.values == pytest.approx(expected, rel=1e-4)
    off = Recorder(name="off", db=tmp_path / "r.db", instruments=False)
    model(0.01).fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[off])
    assert Store(tmp_path / "r.db", readonly=True).instruments(off.run.run_id) == {}
