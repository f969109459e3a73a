"""Keras 3 binding: any lrlab schedule as a ``keras.optimizers.schedules.LearningRateSchedule``.

Importing this module imports Keras; nothing else in lrlab does. Install with
``pip install "lrlab[keras]"``.

Keras picks its backend when it is first imported, from ``KERAS_BACKEND`` or
``~/.keras/keras.json``. This module never chooses one for you: where neither names an
importable backend (Keras' own default is TensorFlow), importing it raises an
``ImportError`` that says to set ``KERAS_BACKEND=torch`` (lrlab always has torch).

Example:
    >>> import keras
    >>> from lrlab.schedules import cosine
    >>> from lrlab.keras import LearningRateSchedule
    >>> schedule = LearningRateSchedule(cosine(0.1, total_steps=100))
    >>> optimizer = keras.optimizers.SGD(learning_rate=schedule)
    >>> round(float(schedule(50)), 6)
    0.05
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from lrlab.schedules import Schedule, from_dict, parse


def _check_backend() -> None:
    """Fail with what to do, before Keras fails on a backend that is not installed."""
    if "keras" in sys.modules:
        return
    backend = os.environ.get("KERAS_BACKEND")
    if not backend:
        config = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "keras.json"
        try:
            backend = json.loads(config.read_text()).get("backend")
        except (OSError, ValueError, AttributeError):
            backend = None
    backend = backend if isinstance(backend, str) and backend else "tensorflow"
    if importlib.util.find_spec(backend) is None:
        raise ImportError(
            f"Keras' backend {backend!r} is not installed: set KERAS_BACKEND=torch (or jax) before "
            "importing keras or lrlab.keras, e.g. os.environ['KERAS_BACKEND'] = 'torch'"
        )


_check_backend()

import keras  # noqa: E402  (after checking the backend)

__all__ = ["LearningRateSchedule"]


@keras.saving.register_keras_serializable(package="lrlab")
class LearningRateSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Drive any Keras 3 optimizer with an lrlab ``schedule``.

    ``schedule`` is a schedule, its spec string or its ``to_dict()``. The learning rate
    at optimizer iteration ``t`` (0-based) is ``schedule(t)``, computed in float64 by
    lrlab and handed to Keras in ``keras.config.floatx()``.

    Eager backends (torch, numpy) read the step directly; TensorFlow graphs and JAX
    traces call back into numpy (``tf.numpy_function`` / ``jax.pure_callback``).

    A model saved with this schedule (``model.save("m.keras")``) keeps it: it is
    registered with Keras as ``lrlab>LearningRateSchedule`` (``get_config`` /
    ``from_config``), so ``keras.models.load_model`` in another process restores it and
    the optimizer's iteration count once ``lrlab.keras`` is imported there; without that
    import Keras refuses, naming the class and its module, ``lrlab.keras``.
    """

    def __init__(self, schedule: Schedule | str | dict[str, Any]) -> None:
        super().__init__()
        if isinstance(schedule, str):
            schedule = parse(schedule)
        elif isinstance(schedule, dict):
            schedule = from_dict(schedule)
        if not isinstance(schedule, Schedule):
            raise TypeError(
                f"schedule must be an lrlab schedule, a spec string or a schedule dict, "
                f"got {type(schedule).__name__}"
            )
        self.schedule = schedule

    def _numpy_values(self, step: Any) -> np.ndarray:
        return np.asarray(self.schedule(np.asarray(step, dtype=np.float64)), dtype=keras.config.floatx())

    def __call__(self, step: Any) -> Any:
        dtype = keras.config.floatx()
        backend = keras.backend.backend()
        if backend == "tensorflow":  # pragma: no cover - tensorflow is not installed here
            import tensorflow as tf

            value = tf.numpy_function(self._numpy_values, [step], tf.as_dtype(dtype), stateful=False)
            return tf.reshape(value, tf.shape(step))
        if backend == "jax":  # pragma: no cover - jax is not installed here
            import jax

            shape = jax.ShapeDtypeStruct(np.shape(step), dtype)
            return jax.pure_callback(self._numpy_values, shape, step)
        steps = keras.ops.convert_to_numpy(step)
        return keras.ops.convert_to_tensor(self._numpy_values(steps), dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        return {"schedule": self.schedule.to_dict()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LearningRateSchedule:
        return cls(config["schedule"])

    def __repr__(self) -> str:
        return f"LearningRateSchedule({self.schedule})"
