"""Optimizer spec strings: parsed safely, validated against torch's signatures."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from lrlab.experiments.optimizers import OPTIMIZER_NAMES, make_optimizer, parse_optimizer


def _params():
    return torch.nn.Linear(3, 2).parameters()


@pytest.mark.parametrize(
    ("spec", "cls", "key", "value"),
    [
        pytest.param("sgd", torch.optim.SGD, "momentum", 0, id="bare-name"),
        pytest.param(
            "sgd(momentum=0.9, nesterov=true)", torch.optim.SGD, "nesterov", True, id="sgd-nesterov"
        ),
        pytest.param("adam(betas=[0.9, 0.99])", torch.optim.Adam, "betas", (0.9, 0.99), id="adam-betas"),
        pytest.param(
            "AdamW(weight_decay=0.01)", torch.optim.AdamW, "weight_decay", 0.01, id="case-insensitive"
        ),
        pytest.param("rmsprop", torch.optim.RMSprop, "alpha", 0.99, id="rmsprop"),
        pytest.param("adagrad()", torch.optim.Adagrad, "lr_decay", 0, id="empty-parens"),
    ],
)
def test_specs_build_the_torch_optimizer(spec, cls, key, value):
    opt = make_optimizer(spec, _params(), lr=0.05)
    assert type(opt) is cls
    assert opt.param_groups[0]["lr"] == 0.05
    assert opt.param_groups[0][key] == value


def test_param_group_dicts_keep_their_lr():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    groups = [{"params": model[0].parameters(), "lr": 0.5}, {"params": model[1].parameters()}]
    opt = make_optimizer("sgd(momentum=0.9)", groups, lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.1]


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        pytest.param("sgdd", "unknown optimizer 'sgdd' (known: adadelta", id="unknown"),
        pytest.param("sgd(lr=0.1)", "lr comes from the run", id="lr-in-spec"),
        pytest.param("sgd(moment=0.9)", "no parameter 'moment'", id="unknown-kwarg"),
        pytest.param("sgd(0.9)", "key=value", id="positional"),
        pytest.param("sgd(momentum=0.9", "expected ',' or ')'", id="unclosed"),
        pytest.param("sgd(momentum=-1)", "Invalid momentum", id="torch-rejects"),
        pytest.param("lbfgs", "unknown optimizer", id="needs-closure"),
        pytest.param("__import__('os')", "unknown optimizer", id="no-eval"),
        pytest.param("", "non-empty", id="empty"),
    ],
)
def test_bad_specs_raise_value_error_naming_the_problem(spec, fragment):
    with pytest.raises(ValueError) as info:
        make_optimizer(spec, _params(), lr=0.1)
    assert fragment in str(info.value)


def test_names_cover_the_common_optimizers():
    assert {"sgd", "adam", "adamw", "rmsprop", "adagrad"} <= set(OPTIMIZER_NAMES)


@given(st.floats(0.0, 0.999), st.floats(0.0, 0.9999))
def test_betas_round_trip_through_the_spec(beta1, beta2):
    name, kwargs = parse_optimizer(f"adam(betas=[{beta1!r}, {beta2!r}])")
    assert name == "adam" and kwargs == {"betas": (beta1, beta2)}
