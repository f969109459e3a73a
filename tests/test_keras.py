"""lrlab.keras.LearningRateSchedule with Keras 3 on the torch backend."""

from __future__ import annotations

import importlib.util
import inspect
import os
import subprocess
import sys

import numpy as np
import pytest

from lrlab import schedules as S

os.environ["KERAS_BACKEND"] = "torch"
keras = pytest.importorskip("keras")
from lrlab.keras import LearningRateSchedule  # noqa: E402

# Never zero: Ftrl divides by the learning rate.
SCHEDULE = S.warmup(
    S.cyclic(1e-3, 0.1, step_size=5, step_size_down=9, mode="triangular2"), steps=4, start_lr=1e-4
)
# Optimizers that take a learning rate; the wrappers (LossScaleOptimizer, MultiOptimizer)
# take other optimizers instead.
OPTIMIZERS = sorted(
    name
    for name, cls in vars(keras.optimizers).items()
    if inspect.isclass(cls)
    and issubclass(cls, keras.optimizers.Optimizer)
    and name not in ("Optimizer", "LossScaleOptimizer", "MultiOptimizer")
)


@pytest.fixture
def float64_keras():
    before = keras.config.floatx()
    keras.config.set_floatx("float64")
    yield
    keras.config.set_floatx(before)


def test_values_are_the_schedule_in_float64(float64_keras):
    lr = LearningRateSchedule(SCHEDULE)
    assert isinstance(lr, keras.optimizers.schedules.LearningRateSchedule)
    values = [float(keras.ops.convert_to_numpy(lr(step))) for step in range(200)]
    assert values == [SCHEDULE(t) for t in range(200)]


def test_values_follow_floatx():
    lr = LearningRateSchedule(SCHEDULE)
    value = keras.ops.convert_to_numpy(lr(7))
    assert value.dtype == np.dtype(keras.config.floatx())
    assert value == np.asarray(SCHEDULE(7), dtype=keras.config.floatx())


def test_accepts_a_spec_string_or_a_dict_and_rejects_other_things():
    assert LearningRateSchedule(str(SCHEDULE)).schedule == SCHEDULE
    assert LearningRateSchedule(SCHEDULE.to_dict()).schedule == SCHEDULE
    with pytest.raises(TypeError, match="schedule must be an lrlab schedule"):
        LearningRateSchedule(0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="position"):
        LearningRateSchedule("cosine(lr=0.1")


def test_config_round_trips_through_keras_serialization():
    lr = LearningRateSchedule(SCHEDULE)
    assert LearningRateSchedule.from_config(lr.get_config()).schedule == SCHEDULE
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(lr))
    assert isinstance(restored, LearningRateSchedule)
    assert restored.schedule == SCHEDULE
    optimizer = keras.optimizers.Adam(learning_rate=lr)
    again = keras.optimizers.Adam.from_config(optimizer.get_config())
    assert again.learning_rate == pytest.approx(float(SCHEDULE(0)))
    assert again._learning_rate.schedule == SCHEDULE


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_keras_optimizer_follows_the_schedule(name):
    optimizer = getattr(keras.optimizers, name)(learning_rate=LearningRateSchedule(SCHEDULE))
    weights = keras.Variable(np.ones((3, 2), dtype="float32"))
    for step in range(12):
        assert float(optimizer.iterations) == step
        assert float(optimizer.learning_rate) == pytest.approx(SCHEDULE(step), rel=1e-6)
        optimizer.apply_gradients([(keras.ops.ones((3, 2)) * 0.5, weights)])
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(weights)))


@pytest.mark.slow
def test_model_fit_uses_the_scheduled_learning_rate(tmp_path):
    # Zero for three steps (the weights must not move), then a cosine.
    schedule = S.sequence([S.constant(0.0), S.cosine(0.05, total_steps=8)], boundaries=[3])
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=LearningRateSchedule(schedule)), loss="mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5, 3.0], dtype="float32"))[:, None]

    class Record(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.lrs: list[float] = []
            self.kernels: list[np.ndarray] = []

        def on_train_batch_begin(self, batch, logs=None):
            self.lrs.append(float(self.model.optimizer.learning_rate))

        def on_train_batch_end(self, batch, logs=None):
            self.kernels.append(keras.ops.convert_to_numpy(self.model.layers[0].kernel).copy())

    record = Record()
    start = keras.ops.convert_to_numpy(model.layers[0].kernel).copy()
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0, callbacks=[record])
    assert len(record.lrs) == 10
    np.testing.assert_allclose(record.lrs, [schedule(t) for t in range(10)], rtol=1e-6)
    for kernel in record.kernels[:3]:
        np.testing.assert_array_equal(kernel, start)
    assert not np.array_equal(record.kernels[3], start)

    # The schedule survives saving and loading the whole model.
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.optimizer._learning_rate.schedule == schedule


def test_lrlab_does_not_import_keras_unless_asked():
    code = (
        "import sys, lrlab, lrlab.schedules, lrlab.torch, lrlab.cli.app;"
        "assert 'keras' not in sys.modules, 'keras imported'"
    )
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_importing_lrlab_keras_leaves_the_environment_alone_and_says_what_to_set(tmp_path):
    # No KERAS_BACKEND, no keras.json: Keras would pick TensorFlow, which is not installed here.
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"} | {"KERAS_HOME": str(tmp_path)}
    code = "import os, lrlab.keras"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    if importlib.util.find_spec("tensorflow") is None:
        assert result.returncode != 0
        assert "set KERAS_BACKEND=torch" in result.stderr.splitlines()[-1]
    result = subprocess.run(
        [sys.executable, "-c", "import os, lrlab.keras, keras; print(os.environ['KERAS_BACKEND'], keras.backend.backend())"],
        capture_output=True, text=True, env={**env, "KERAS_BACKEND": "torch"}, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["torch", "torch"]



LOADER = """
import os, sys
os.environ["KERAS_BACKEND"] = "torch"
import numpy as np
import keras
try:  # a fresh process that has not imported lrlab.keras
    keras.models.load_model(sys.argv[1])
except Exception as exc:
    print("refused:", " ".join(str(exc).split()))
else:
    print("loaded without lrlab.keras")
import lrlab.keras  # registers lrlab>LearningRateSchedule with Keras
model = keras.models.load_model(sys.argv[1])
optimizer = model.optimizer
print(optimizer._learning_rate.schedule, int(optimizer.iterations))
x = np.ones((8, 4), dtype="float32")
model.fit(x, x.sum(axis=1, keepdims=True), batch_size=4, epochs=1, verbose=0, shuffle=False)
print(repr(float(optimizer.learning_rate)), int(optimizer.iterations))
"""


@pytest.mark.slow
def test_load_model_in_a_fresh_process_restores_the_schedule_or_names_lrlab_keras(tmp_path):
    schedule = S.cosine(0.05, total_steps=20)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=LearningRateSchedule(schedule)), loss="mse")
    x = np.ones((12, 4), dtype="float32")
    model.fit(x, x.sum(axis=1, keepdims=True), batch_size=4, epochs=1, verbose=0)  # 3 steps
    path = tmp_path / "model.keras"
    model.save(path)
    (tmp_path / "load.py").write_text(LOADER)
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    done = subprocess.run([sys.executable, str(tmp_path / "load.py"), str(path)], capture_output=True, text=True,
                          env=env, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    refused, first, second = done.stdout.strip().splitlines()
    # Without lrlab.keras imported Keras cannot know the class; its error names the module to import.
    assert refused.startswith("refused:") and "lrlab.keras" in refused and "LearningRateSchedule" in refused
    assert first == f"{schedule} 3"
    lr, iterations = second.split()
    # Two more steps after the three saved: the LR of step 5 of the same schedule.
    assert int(iterations) == 5 and float(lr) == pytest.approx(schedule(5), rel=1e-6)
