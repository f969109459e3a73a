"""The one optimizer grammar: parsed safely, validated against the classes' signatures, one
alias table, ``lr`` and closures only where the caller allows them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import lrlab
from lrlab.optim import AdaGradMean, DeltaBarDelta
from lrlab.optim.grammar import (
    NEEDS_CLOSURE,
    OPTIMIZER_ALIASES,
    OPTIMIZER_CLASSES,
    OPTIMIZER_NAMES,
    accepted_arguments,
    make_optimizer,
    optimizer_key,
    parse_optimizer,
    resolve_optimizer,
)

LR_MESSAGE = "lr comes from the run's lr and schedule, not the optimizer spec"


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
            "AdamW(weight_decay=0.02)", torch.optim.AdamW, "weight_decay", 0.02, id="case-insensitive"
        ),
        pytest.param("rmsprop", torch.optim.RMSprop, "alpha", 0.99, id="rmsprop"),
        pytest.param("adagrad()", torch.optim.Adagrad, "lr_decay", 0, id="empty-parens"),
        pytest.param("deltabardelta(kappa=0.1)", DeltaBarDelta, "kappa", 0.1, id="lrlab-dbd"),
        pytest.param("adagradmean(eps=1e-08)", AdaGradMean, "eps", 1e-08, id="lrlab-adagradmean"),
        pytest.param("sgdm", torch.optim.SGD, "momentum", 0.9, id="alias"),
        pytest.param("nesterov(momentum=0.8)", torch.optim.SGD, "momentum", 0.8, id="alias-overridden"),
        pytest.param("dbd", DeltaBarDelta, "kappa", 0.05, id="alias-lrlab"),
    ],
)
def test_specs_build_the_optimizer(spec, cls, key, value):
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
        pytest.param("sgdd", "aliases: dbd, gd, momentum, nag, nesterov, sgdm)", id="unknown-lists-aliases"),
        pytest.param("sgd(lr=0.1)", LR_MESSAGE, id="lr-in-spec"),
        pytest.param("nesterov(lr=0.1)", LR_MESSAGE, id="lr-after-alias"),
        pytest.param("sgd(moment=0.9)", "no parameter 'moment'", id="unknown-kwarg"),
        pytest.param(
            "adam(momentum=0.9)", "adam() has no parameter 'momentum' (parameters: betas", id="kwarg"
        ),
        pytest.param("sgd(0.9)", "key=value", id="positional"),
        pytest.param("sgd(momentum=0.9", "expected ',' or ')'", id="unclosed"),
        pytest.param("sgd(momentum=0.9, momentum=0.8)", "got 'momentum' twice", id="twice"),
        pytest.param("sgd(momentum=-1)", "Invalid momentum", id="torch-rejects"),
        pytest.param("sgd(momentum=cosine(lr=1.0, total_steps=3))", "must be a number", id="schedule-value"),
        pytest.param("lbfgs", "optimizer.step(closure)", id="needs-closure"),
        pytest.param("sparseadam", "unknown optimizer", id="sparse-only"),
        pytest.param("__import__('os')", "unknown optimizer", id="no-eval"),
        pytest.param("sgd:lr=0.1", "unexpected character ':'", id="old-surface-form"),
        pytest.param("", "non-empty", id="empty"),
    ],
)
def test_bad_specs_raise_one_line_value_errors_naming_the_problem(spec, fragment):
    with pytest.raises(ValueError) as info:
        make_optimizer(spec, _params(), lr=0.1)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_names_cover_the_common_optimizers_and_lrlabs_own():
    assert {"sgd", "adam", "adamw", "rmsprop", "adagrad", "deltabardelta", "adagradmean"} <= set(
        OPTIMIZER_NAMES
    )
    assert OPTIMIZER_CLASSES["deltabardelta"] is DeltaBarDelta
    assert OPTIMIZER_CLASSES["adagradmean"] is AdaGradMean
    for cls in ("SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "Rprop", "Adadelta", "Adamax", "NAdam", "RAdam",
                "ASGD", "LBFGS"):  # fmt: skip
        assert OPTIMIZER_CLASSES[cls.lower()] is getattr(torch.optim, cls)
    assert "lbfgs" not in OPTIMIZER_NAMES and NEEDS_CLOSURE.issubset(OPTIMIZER_CLASSES)


@given(st.floats(0.0, 0.999), st.floats(0.0, 0.9999))
def test_betas_round_trip_through_the_spec(beta1, beta2):
    name, kwargs = parse_optimizer(f"adam(betas=[{beta1!r}, {beta2!r}])")
    assert name == "adam" and kwargs == {"betas": (beta1, beta2)}


# ------------------------------------------------------------------ lr and closures


@given(st.floats(1e-6, 10.0))
def test_any_float_lr_reads_back_exactly_where_lr_is_allowed(lr):
    assert parse_optimizer(f"adam(lr={lr!r})", allow_lr=True) == ("adam", {"lr": lr})


def test_lr_is_rejected_by_default_and_allowed_for_surfaces():
    with pytest.raises(ValueError, match=re.escape(LR_MESSAGE)):
        parse_optimizer("sgd(lr=0.05, momentum=0.9)")
    assert parse_optimizer("sgd(lr=0.05, momentum=0.9)", allow_lr=True) == (
        "sgd",
        {"lr": 0.05, "momentum": 0.9},
    )
    assert "lr" in accepted_arguments("sgd", allow_lr=True) and "lr" not in accepted_arguments("sgd")


def test_a_spec_lr_wins_over_the_default_lr_and_none_keeps_the_class_default():
    assert make_optimizer("sgd(lr=0.05)", _params(), lr=0.1, allow_lr=True).param_groups[0]["lr"] == 0.05
    assert make_optimizer("adam", _params()).param_groups[0]["lr"] == 0.001  # torch's default


def test_sweeps_reject_lr_in_a_spec():
    from lrlab.sweeps.spec import load_sweep

    with pytest.raises(ValueError, match=re.escape(LR_MESSAGE)):
        load_sweep(
            {"name": "s", "task": "digits-linear", "grid": {"lr": [0.1], "optimizer": ["sgd(lr=0.1)"]}}
        )


def test_closures_only_where_allowed():
    name, kwargs = parse_optimizer("lbfgs(lr=1, history_size=10)", allow_lr=True, allow_closure=True)
    assert name == "lbfgs" and kwargs == {"lr": 1, "history_size": 10}
    with pytest.raises(ValueError, match="training loop"):
        parse_optimizer("lbfgs")


# ------------------------------------------------------------------ the one alias table


@pytest.mark.parametrize("alias", list(OPTIMIZER_ALIASES))
def test_every_alias_resolves_to_a_spec_of_a_class(alias):
    spec = OPTIMIZER_ALIASES[alias]
    assert resolve_optimizer(alias) == resolve_optimizer(alias.upper()) == spec
    name, kwargs = parse_optimizer(spec)
    assert spec.split("(")[0] == name and name in OPTIMIZER_CLASSES  # no alias of an alias
    assert parse_optimizer(alias) == (name, kwargs)
    assert parse_optimizer(f"{alias}()") == (name, kwargs)
    assert parse_optimizer(f"{alias}(lr=0.05)", allow_lr=True) == (name, {**kwargs, "lr": 0.05})
    assert type(make_optimizer(alias, _params(), lr=0.1)) is OPTIMIZER_CLASSES[name]


def test_the_table_holds_every_alias_lrlab_ever_had():
    assert OPTIMIZER_ALIASES == {
        "gd": "sgd",
        "sgdm": "sgd(momentum=0.9)",
        "momentum": "sgd(momentum=0.9)",
        "nesterov": "sgd(momentum=0.9, nesterov=true)",
        "nag": "sgd(momentum=0.9, nesterov=true)",
        "adamw": "adamw(weight_decay=0.01)",
        "dbd": "deltabardelta",
    }
    # Class names resolve to themselves; the adamw alias only spells out torch's default.
    assert (
        resolve_optimizer("adam") == "adam"
        and resolve_optimizer("sgd(momentum=0.95)") == "sgd(momentum=0.95)"
    )
    assert torch.optim.AdamW(_params()).defaults["weight_decay"] == 0.01


def test_short_names_are_the_first_alias_of_a_spec():
    assert optimizer_key("sgd(momentum=0.9)") == "sgdm"
    assert optimizer_key("sgd(momentum=0.9, nesterov=true)") == "nesterov"
    assert optimizer_key("adamw(weight_decay=0.01)") == "adamw"
    assert optimizer_key("sgd") == "sgd" and optimizer_key("deltabardelta") == "deltabardelta"
    assert optimizer_key("sgd(momentum=0.95)") == "sgd-momentum-0-95"


def test_no_other_module_spells_an_alias_table():
    """The aliases are written once: no other module of lrlab maps an alias name to anything."""
    package = Path(lrlab.__file__).parent
    keywords = {arg for name in OPTIMIZER_CLASSES for arg in accepted_arguments(name)}
    # "momentum": and "nesterov": are also keyword names, "adamw": a class name.
    names = "|".join(a for a in OPTIMIZER_ALIASES if a not in keywords and a not in OPTIMIZER_CLASSES)
    alias_key = re.compile(r"""["'](?:""" + names + r""")["']\s*:""")
    offenders = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if path.name != "grammar.py" and alias_key.search(path.read_text())
    ]
    assert offenders == []
