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
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from lrlab.schedules import Schedule, from_dict, parse
from lrlab.schedules.plateau import PlateauState, find_plateaus, observe


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

__all__ = ["LearningRateSchedule", "PlateauCallback", "Recorder"]


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


class PlateauCallback(keras.callbacks.Callback):
    """Drive the ``plateau(...)`` node of the optimizer's :class:`LearningRateSchedule` with the
    metric ``model.fit`` monitors (``val_loss`` by default), as Keras' ``ReduceLROnPlateau``.

    At each epoch's end the monitored value goes to the plateau node in effect at the
    epoch's last step (:func:`lrlab.schedules.observe`); the schedule keeps counting
    optimizer steps, so ``warmup(plateau(...), steps=500)`` warms up per step and reduces
    per epoch. The plateau's ``mode`` must follow the metric (``"max"`` for an accuracy).

    Example::

        schedule = LearningRateSchedule("warmup(plateau(lr=0.01, patience=3), steps=100)")
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=schedule), loss=...)
        model.fit(x, y, validation_data=(x_val, y_val), callbacks=[PlateauCallback()])
    """

    def __init__(self, monitor: str = "val_loss") -> None:
        super().__init__()
        self.monitor = monitor
        self.states: tuple[PlateauState, ...] | None = None

    def _schedule(self) -> LearningRateSchedule:
        schedule = getattr(self.model.optimizer, "_learning_rate", None)
        if not isinstance(schedule, LearningRateSchedule) or not find_plateaus(schedule.schedule):
            raise ValueError(
                "lrlab.keras.PlateauCallback needs an optimizer whose learning_rate is an "
                "lrlab.keras.LearningRateSchedule with a plateau(...) node"
            )
        return schedule

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._schedule()
        self.states = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        if self.monitor not in logs:
            raise ValueError(
                f"lrlab.keras.PlateauCallback monitors {self.monitor!r}, which model.fit did not report "
                f"(it has: {', '.join(sorted(logs))}); pass validation_data (or validation_split) to fit"
            )
        schedule = self._schedule()
        step = max(int(_float(self.model.optimizer.iterations)) - 1, 0)
        schedule.schedule, self.states = observe(schedule.schedule, step, float(logs[self.monitor]), self.states)


def _float(value: Any) -> float:
    return float(np.asarray(keras.ops.convert_to_numpy(value)))


class Recorder(keras.callbacks.Callback):
    """Stream a ``model.fit`` run into the lrlab store (options as for ``lrlab.track``).

    Per batch: the optimizer's LR for that step (read before it), its momentum or beta_1,
    the batch's loss (from Keras' running mean: exact for equal batch sizes) and, on the
    torch backend, the gradient norm of the trainable weights (NaN on other backends).
    Per epoch: the ``val_*`` logs (``val_loss``, ``val_accuracy``...) and the mean batch loss.
    On the torch backend the run's instruments also get each step's update-to-weight ratio
    (the trainable weights before and after the batch), so the update-ratio and warmup rules
    judge a Keras run as they judge a torch one; the spike rules read the losses on any backend.
    """

    def __init__(self, name: str, *, db: Any = None, **options: Any) -> None:
        super().__init__()
        self.name, self.db, self.options = name, db, options
        self.run: Any = None
        self._lr: float | None = None
        self._mean = 0.0
        self._before: list[Any] | None = None  # the trainable weights before the batch (torch backend)

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        from lrlab.track import Run, end_left_open

        end_left_open(self.run)  # the last training raised
        others = [
            c for c in getattr(self.model, "_lrlab_recorders", []) if c is not self and c.run is not None
        ]
        if others:
            message = (
                "two lrlab Recorder callbacks on one model.fit: attach one (each would record the run again)"
            )
            for other in others:  # the first one's run ends failed with this line, its rows kept
                other.run.end(error=message)
            raise RuntimeError(message)
        self.model._lrlab_recorders = [self]
        optimizer = self.model.optimizer
        options = dict(self.options)
        if self.db is not None:
            options["db"] = self.db
        params = self.params or {}
        if params.get("epochs"):
            options.setdefault("epochs", int(params["epochs"]))
        if params.get("epochs") and params.get("steps"):
            options.setdefault("total_steps", int(params["epochs"]) * int(params["steps"]))
        name = type(optimizer).__name__.lower()
        self.run = Run(
            None, name=self.name, lr=_float(optimizer.learning_rate), optimizer_name=name, **options
        ).begin()

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._lr = _float(self.model.optimizer.learning_rate)
        self._before = None
        if self._measures_ratio():
            import torch

            with torch.no_grad():
                self._before = [v.value.detach().clone() for v in self.model.trainable_weights]

    def _measures_ratio(self) -> bool:
        if self.run is None or keras.backend.backend() != "torch":
            return False
        settings = self.run.recorder.instruments.settings
        return "update_ratio" in settings or "warmup" in settings

    def _update_ratio(self) -> float | None:
        """The batch's ``||w_after - w_before|| / ||w_before||`` over the trainable weights, as
        the hooks of a torch optimizer read it (:func:`lrlab.instruments.update_ratios`)."""
        before, self._before = self._before, None
        if before is None:
            return None
        import torch

        from lrlab.instruments import update_ratios

        with torch.no_grad():
            after = [v.value.detach() for v in self.model.trainable_weights]
            if len(after) != len(before):
                return None
            return float(update_ratios(before, after, [0] * len(after), 1)[0])  # one group; NaN for zero weights

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._mean = 0.0

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.run is None or not logs or "loss" not in logs:
            return
        mean = float(logs["loss"])
        loss = (batch + 1) * mean - batch * self._mean
        self._mean = mean
        optimizer = self.model.optimizer
        # lrlab.torch.group_momentum's precedence, on Keras' attributes: momentum, else beta_1.
        momentum = getattr(optimizer, "momentum", None)
        momentum = getattr(optimizer, "beta_1", None) if momentum is None else momentum
        momentum = None if momentum is None else float(momentum)
        norms: Any = float("nan")
        if keras.backend.backend() == "torch":
            import torch

            grads = [
                g
                for g in (getattr(v.value, "grad", None) for v in self.model.trainable_weights)
                if g is not None
            ]
            norms = tuple(torch._foreach_norm(grads)) if grads else 0.0
        step = int(_float(optimizer.iterations))
        lr = self._lr if self._lr is not None else math.nan
        ratio = self._update_ratio()
        if ratio is not None:  # the update just taken is the optimizer's (step - 1)-th, counted from 0
            panel = self.run.recorder.instruments
            panel.align(step)  # once: that update is shown at the step Keras logs it
            panel.observe_update(max(step - 1, 0), [lr], [ratio])
        self.run.record(loss, step, [lr], momentum, norms)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.run is None:
            return
        metrics = {k: float(v) for k, v in (logs or {}).items() if k.startswith("val_") and np.ndim(v) == 0}
        self.run.epoch(**metrics)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.run is not None:
            self.run.end()
            self.model._lrlab_recorders = []
