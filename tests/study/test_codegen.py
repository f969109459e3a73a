"""The generated code runs: the PyTorch snippet drives a real optimizer along the schedule,
the Keras snippet compiles a real model."""

import os

import numpy as np
import pytest
import torch

from lrlab.optim import DeltaBarDelta, grammar
from lrlab.optim.grammar import OPTIMIZER_CLASSES, OPTIMIZER_NAMES
from lrlab.optim.lr_free import LR_FREE_OPTIMIZERS
from lrlab.schedules import parse
from lrlab.study import plan
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


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_the_torch_class_comes_from_the_grammars_registry(name):
    cls = OPTIMIZER_CLASSES[name]
    line = torch_snippet(name, "constant(lr=0.1)").splitlines()
    optimizer_line = next(text for text in line if text.startswith("optimizer = "))
    if getattr(torch.optim, cls.__name__, None) is cls:
        assert optimizer_line.startswith(f"optimizer = torch.optim.{cls.__name__}(model.parameters(), lr=0.1")
    elif name in LR_FREE_OPTIMIZERS:  # an LR-free optimizer from its own library
        assert f"from {LR_FREE_OPTIMIZERS[name].package} import {cls.__name__}" in line
        assert optimizer_line.startswith(f"optimizer = {cls.__name__}(model.parameters(), lr=0.1")
    else:  # lrlab's own optimizers are imported from lrlab.optim
        assert f"from lrlab.optim import {cls.__name__}" in line
        assert optimizer_line.startswith(f"optimizer = {cls.__name__}(model.parameters(), lr=0.1")


def test_lrlabs_own_optimizer_snippet_runs():
    model = torch.nn.Linear(4, 3)
    namespace = {"model": model, "train_loader": [], "loss_fn": None, "epochs": 0}
    exec(torch_snippet("dbd(kappa=0.1)", SPEC), namespace)
    assert type(namespace["optimizer"]) is DeltaBarDelta
    assert namespace["optimizer"].param_groups[0]["kappa"] == 0.1


def test_study_and_codegen_use_the_one_alias_table():
    from lrlab.study import checks as study_checks
    from lrlab.study import rungs as study_rungs

    assert study_checks.resolve_optimizer is grammar.resolve_optimizer
    assert study_rungs.optimizer_key is grammar.optimizer_key
    assert not hasattr(plan, "OPTIMIZER_ALIASES")  # the study keeps no table of its own
    for alias, spec in grammar.OPTIMIZER_ALIASES.items():
        assert torch_snippet(alias, SPEC) == torch_snippet(spec, SPEC)
        assert keras_snippet(alias, SPEC) == keras_snippet(spec, SPEC)
    assert "torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)" in torch_snippet("sgdm", SPEC)
    assert "weight_decay=0.01" in keras_snippet("adamw", SPEC)  # Keras' own default is 0.004


@pytest.mark.parametrize(
    ("spec", "cls"),
    [("nadam", "Nadam"), ("adamw", "AdamW"), ("rmsprop", "RMSprop"), ("rprop", "SGD")],
)
def test_keras_names_follow_torch_but_for_keras_spellings(spec, cls):
    assert f"keras.optimizers.{cls}(learning_rate=schedule" in keras_snippet(spec, SPEC)
