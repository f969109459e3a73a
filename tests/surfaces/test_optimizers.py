"""Optimizers on surfaces: the one grammar with a per-optimizer lr, every optimizer and alias."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lrlab.optim.grammar import OPTIMIZER_ALIASES, OPTIMIZER_CLASSES
from lrlab.surfaces import OPTIMIZER_NAMES, run_trajectory


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_every_optimizer_by_name_runs_on_a_surface(name: str) -> None:
    lr = {"lbfgs": 0.1, "adadelta": 1.0, "rprop": 0.01, "sgd": 0.01, "gd": 0.01}.get(name, 0.05)
    traj = run_trajectory("ravine", f"{name}(lr={lr})", steps=8)
    assert traj.steps == 8
    assert math.isfinite(traj.final_loss)
    assert traj.final_loss < traj.losses[0]


def test_the_names_are_the_grammars_classes_and_aliases_but_matrix_only_muon() -> None:
    assert set(OPTIMIZER_NAMES) == (set(OPTIMIZER_CLASSES) | set(OPTIMIZER_ALIASES)) - {"muon"}
    assert {"lbfgs", "deltabardelta", "adagradmean", "gd", "nesterov", "nag", "dbd"} <= set(OPTIMIZER_NAMES)


@pytest.mark.parametrize("alias", OPTIMIZER_ALIASES)
def test_an_alias_runs_the_trajectory_of_its_spec(alias: str) -> None:
    spec = OPTIMIZER_ALIASES[alias]
    with_lr = spec.replace("(", "(lr=0.05, ") if "(" in spec else f"{spec}(lr=0.05)"
    by_alias = run_trajectory("ravine", f"{alias}(lr=0.05)", steps=30)
    by_spec = run_trajectory("ravine", with_lr, steps=30)
    np.testing.assert_array_equal(by_alias.points, by_spec.points)
    assert by_alias.name == f"{alias}(lr=0.05)"


def test_the_specs_lr_drives_the_optimizer_and_none_keeps_torchs_default() -> None:
    assert run_trajectory("ravine", "sgd(lr=0.05, momentum=0.9)", steps=3).lrs.tolist() == [0.05] * 3
    assert run_trajectory("ravine", "adam", steps=3).lrs.tolist() == [0.001] * 3


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "adamm(lr=0.1)",
            "unknown optimizer 'adamm' (known: adadelta, adafactor, adagrad, adagradmean, adam",
        ),
        ("adam(momentum=0.9)", "adam() has no parameter 'momentum' (parameters: lr, betas"),
        ("sgd(lr=fast)", "unknown word 'fast'"),
        ("sgd(lr=-1)", "bad optimizer spec 'sgd(lr=-1)': Invalid learning rate: -1"),
        ("muon(lr=0.1)", "Muon only supports 2D parameters"),
        ("sgd:lr=0.1", "unexpected character ':'"),
        ("", "non-empty"),
    ],
)
def test_bad_specs_say_what_is_wrong_in_one_line(spec: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        run_trajectory("ravine", spec, steps=2)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
