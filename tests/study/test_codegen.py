"""The generated code runs: the PyTorch snippet drives a real optimizer along the schedule,
the Keras snippet compiles a real model."""

import os

import numpy as np
import pytest
import torch

from lrlab.schedules import parse
from lrlab.study.codegen import keras_snippet, torch_snippet

SPEC = 'cyclic(base_lr=0.01, max_lr=0.1, step_size=3, shape="sine", cycle_decay=0.5)'


def test_torch_snippet_runs_and_follows_the_schedule():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    x, y = torch.randn(24, 4), torch.randint(0, 3, (24,))
    loader = list(zip(x.split(4), y.split(4), strict=True))
    namespace = {
        "model": model,
        "train_loader": loader,
        "loss_fn": torch.nn.functional.cross_entropy,
        "epochs": 2,
    }
    exec(torch_snippet("sgd(momentum=0.9, nesterov=true)", SPEC), namespace)
    optimizer, scheduler = namespace["optimizer"], namespace["scheduler"]
    assert optimizer.param_groups[0]["nesterov"] is True
    assert scheduler.last_epoch == 12
    assert optimizer.param_groups[0]["lr"] == parse(SPEC)(12)


@pytest.mark.slow
def test_keras_snippet_compiles_a_real_model():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    namespace = {"model": model}
    exec(keras_snippet("adam(betas=[0.9, 0.99], eps=1e-07)", SPEC), namespace)
    optimizer = namespace["optimizer"]
    assert float(optimizer.beta_2) == pytest.approx(0.99)
    model.fit(np.random.rand(8, 4), np.arange(8) % 3, epochs=1, batch_size=4, verbose=0)
    assert float(optimizer.learning_rate) == pytest.approx(parse(SPEC)(2), rel=1e-6)
