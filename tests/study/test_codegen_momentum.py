"""The code a study writes for a one-cycle drives the momentum as the run did (0.95 -> 0.85 ->
0.95, torch's OneCycleLR): pasted and run, it sets the momentum torch's OneCycleLR sets."""

from __future__ import annotations

import os
import textwrap
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.optim import lr_scheduler as L

from lrlab.schedules import momentum_for, parse
from lrlab.study.codegen import hf_snippet, keras_snippet, lightning_snippet, torch_snippet

ONE_CYCLE = "one_cycle(max_lr=0.01, total_steps=300)"  # as measured: 300 steps
EPOCHS, BATCHES = 3, 6  # the user's run: 18 steps


def _data():
    torch.manual_seed(0)
    x, y = torch.randn(BATCHES * 4, 5), torch.randint(0, 3, (BATCHES * 4,))
    return list(zip(x.split(4), y.split(4), strict=True))


def _momentum(optimizer):
    group = optimizer.param_groups[0]
    return group["betas"][0] if "betas" in group else group["momentum"]


def _onecyclelr_run(make_optimizer):
    """The user's loop with torch's OneCycleLR: the momentum before each step, and the weights."""
    torch.manual_seed(1)
    model = torch.nn.Linear(5, 3)
    optimizer = make_optimizer(model.parameters())
    scheduler = L.OneCycleLR(optimizer, max_lr=0.01, total_steps=EPOCHS * BATCHES)
    seen = []
    for _ in range(EPOCHS):
        for x, y in _data():
            seen.append(_momentum(optimizer))
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
            scheduler.step()
    return seen, model.weight.detach().clone()


@pytest.mark.parametrize(
    ("spec", "make"),
    [
        ("adam", lambda p: torch.optim.Adam(p, lr=0.0004)),
        ("sgd(momentum=0.9)", lambda p: torch.optim.SGD(p, lr=0.0004, momentum=0.9)),
    ],
)
def test_pasted_torch_code_cycles_momentum_as_onecyclelr(spec, make):
    torch.manual_seed(1)
    model = torch.nn.Linear(5, 3)
    seen = []
    namespace = {"model": model, "train_loader": _data(), "epochs": EPOCHS}

    def loss_fn(output, target):  # called once per step, before optimizer.step()
        seen.append(_momentum(namespace["optimizer"]))
        return torch.nn.functional.cross_entropy(output, target)

    namespace["loss_fn"] = loss_fn
    code = torch_snippet(spec, ONE_CYCLE, study_steps=300)
    assert "LRScheduler(optimizer, schedule, momentum=momentum)" in code
    exec(code, namespace)
    expected, weights = _onecyclelr_run(make)
    assert seen == expected and seen[0] == 0.95 and min(seen) < 0.86
    torch.testing.assert_close(model.weight.detach(), weights, rtol=1e-6, atol=1e-9)


def test_lightning_and_hugging_face_code_drive_the_momentum_too():
    code = lightning_snippet("adam", ONE_CYCLE, study_steps=300)
    method = textwrap.dedent(code[code.index("    def configure_optimizers") :])
    namespace: dict = {}
    exec(code[: code.index("# a method")] + method, namespace)
    module = SimpleNamespace(
        parameters=torch.nn.Linear(5, 3).parameters, trainer=SimpleNamespace(estimated_stepping_batches=18)
    )
    scheduler = namespace["configure_optimizers"](module)["lr_scheduler"]["scheduler"]
    assert scheduler.momentum == momentum_for(parse("one_cycle(max_lr=0.01, total_steps=18)"))
    assert "LRScheduler(optimizer, schedule, momentum=momentum)" in hf_snippet("adam", ONE_CYCLE, study_steps=300)


@pytest.mark.parametrize(
    ("optimizer", "schedule"),
    [("adam", "cosine(lr=0.01, total_steps=300)"), ("sgd", ONE_CYCLE), ("adam", f"warmup({ONE_CYCLE}, steps=5)")],
)
def test_no_momentum_where_the_run_had_none(optimizer, schedule):
    for snippet in (torch_snippet, lightning_snippet, hf_snippet, keras_snippet):
        code = snippet(optimizer, schedule, study_steps=300)
        assert "momentum_for" not in code and "momentum=momentum" not in code


def test_a_runs_own_momentum_schedule_is_written_as_it_ran():
    code = torch_snippet("adam", ONE_CYCLE, study_steps=300, momentum="constant(0.9)")
    assert "momentum = parse('constant(lr=0.9)')" in code and "momentum_for" not in code
    code = torch_snippet("sgdm", "constant(lr=0.1)", study_steps=300,
                         momentum="linear(start_lr=0.95, end_lr=0.85, total_steps=300)")  # fmt: skip
    namespace = {"model": torch.nn.Linear(5, 3), "train_loader": _data(), "epochs": EPOCHS,
                 "loss_fn": torch.nn.functional.cross_entropy}  # fmt: skip
    exec(code, namespace)
    assert namespace["momentum"] == parse("linear(start_lr=0.95, end_lr=0.85, total_steps=18)")
    assert namespace["optimizer"].param_groups[0]["momentum"] == 0.85


@pytest.mark.slow
def test_pasted_keras_code_sets_beta_1_from_the_one_cycle_before_each_step():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    x_train, y_train = np.random.default_rng(0).random((24, 4)), np.arange(24) % 3
    namespace = {"model": model, "x_train": x_train, "batch_size": 4, "epochs": 2}
    exec(keras_snippet("adam", ONE_CYCLE, study_steps=300), namespace)
    optimizer, seen = namespace["optimizer"], []

    class Read(keras.callbacks.Callback):  # after the snippet's callback, before the step
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(float(optimizer.beta_1))

    model.fit(x_train, y_train, batch_size=4, epochs=2, verbose=0, callbacks=[namespace["Momentum"](), Read()])
    expected = momentum_for(parse("one_cycle(max_lr=0.01, total_steps=12)"))
    assert seen == [expected(t) for t in range(12)] and seen[0] == 0.95
