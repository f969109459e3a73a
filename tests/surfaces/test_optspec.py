"""Optimizer specs: the CLI syntax, every torch.optim optimizer by name, clear errors."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from lrlab.optim import DeltaBarDelta
from lrlab.schedules import exponential
from lrlab.surfaces import OPTIMIZER_NAMES, parse_optimizer, run_trajectory


def test_reads_the_documented_example() -> None:
    spec = parse_optimizer("sgd:lr=0.01,momentum=0.9,nesterov=true")
    assert spec.name == "sgd"
    assert spec.kwargs == {"lr": 0.01, "momentum": 0.9, "nesterov": True}
    opt = spec.build([torch.zeros(2, requires_grad=True)])
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["nesterov"] is True


def test_lists_schedules_and_aliases() -> None:
    assert parse_optimizer("adam:lr=0.1,betas=(0.8,0.99)").kwargs["betas"] == (0.8, 0.99)
    assert parse_optimizer("ADAM:betas=[0.8, 0.9]").kwargs == {"betas": (0.8, 0.9)}
    assert parse_optimizer("nesterov:lr=0.05").kwargs == {"momentum": 0.9, "nesterov": True, "lr": 0.05}
    assert parse_optimizer("momentum:momentum=0.5").kwargs == {"momentum": 0.5}
    spec = parse_optimizer("rmsprop:lr=0.2@exponential(lr=0.2, decay_rate=0.99)")
    assert spec.schedule == exponential(0.2, decay_rate=0.99)
    assert parse_optimizer("deltabardelta:lr=0.1").optimizer_class is DeltaBarDelta


@given(st.floats(1e-6, 10.0))
def test_any_float_learning_rate_reads_back_exactly(lr: float) -> None:
    assert parse_optimizer(f"adam:lr={lr!r}").lr == lr


@pytest.mark.parametrize("name", [n for n in OPTIMIZER_NAMES])
def test_every_optimizer_by_name_runs_on_a_surface(name: str) -> None:
    lr = {"lbfgs": 0.1, "adadelta": 1.0, "rprop": 0.01, "sgd": 0.01, "gd": 0.01}.get(name, 0.05)
    traj = run_trajectory("ravine", f"{name}:lr={lr}", steps=8)
    assert traj.steps == 8
    assert math.isfinite(traj.final_loss)
    assert traj.final_loss < traj.losses[0]


def test_every_torch_optimizer_for_dense_parameters_is_available() -> None:
    for cls in ("SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "Rprop", "Adadelta", "Adamax", "NAdam", "RAdam",
                "ASGD", "LBFGS"):  # fmt: skip
        assert cls.lower() in OPTIMIZER_NAMES


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "adamm:lr=0.1",
            "unknown optimizer 'adamm'; valid optimizers: adadelta, adafactor, adagrad, adagradmean, adam",
        ),
        ("adam:momentum=0.9", "'adam' \\(Adam\\) does not take 'momentum'; it takes: lr, betas"),
        ("sgd:lr", "must look like key=value"),
        ("sgd:lr=fast", "is not a number"),
        ("sgd:lr=inf", "must be finite"),
        ("sgd:lr=0.1@cosine(lr=0.1", "bad schedule spec"),
        ("", "optimizer spec is empty"),
    ],
)
def test_bad_specs_say_what_is_wrong_in_one_line(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_optimizer(text)
    assert "\n" not in str(info.value)


def test_torch_argument_errors_become_value_errors_naming_the_spec() -> None:
    with pytest.raises(ValueError, match=r"optimizer 'sgd:lr=-1'.*Invalid learning rate"):
        parse_optimizer("sgd:lr=-1").build([torch.zeros(2, requires_grad=True)])
