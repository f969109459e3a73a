"""The momentum of a one-cycle equals torch's OneCycleLR(cycle_momentum=True), read from the
optimizer after every step: SGD's ``momentum`` and Adam's ``betas[0]``, exactly (==); and a
run with a one-cycle cycles it by default (its config, id and recorded steps say so)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch.optim import lr_scheduler as L

from lrlab import schedules as S
from lrlab.core.defaults import _optimizer_momentum
from lrlab.core.records import RunConfig, default_momentum
from lrlab.optim.grammar import OPTIMIZER_ALIASES, OPTIMIZER_NAMES, make_optimizer
from lrlab.optim.lr_free import is_schedule_free
from lrlab.store.sqlite import Store
from lrlab.sweeps import expand, load_sweep, run_id_for
from lrlab.torch import LRScheduler, group_momentum
from lrlab.training.loop import train_run

CASES = [
    pytest.param(total, pct, anneal, three, id=f"{total}-{pct}-{anneal}-{'3p' if three else '2p'}")
    for (total, pct), anneal, three in itertools.product(
        [(100, 0.3), (333, 0.25), (57, 0.1), (1000, 0.45), (10, 0.3)], ["cos", "linear"], [False, True]
    )
]
OPTIMIZERS = {
    "sgd": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
    "adam": lambda p: torch.optim.Adam(p, lr=0.1),
}


def _momentum(optimizer: torch.optim.Optimizer) -> float:
    group = optimizer.param_groups[0]
    return group["betas"][0] if "betas" in group else group["momentum"]


def torch_momenta(kind: str, total: int, pct: float, anneal: str, three_phase: bool) -> list[float]:
    """The momentum torch's OneCycleLR sets before each of the ``total`` steps."""
    param = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    optimizer = OPTIMIZERS[kind]([param])
    scheduler = L.OneCycleLR(
        optimizer,
        max_lr=0.1,
        total_steps=total,
        pct_start=pct,
        anneal_strategy=anneal,
        three_phase=three_phase,
    )
    values = [_momentum(optimizer)]
    for _ in range(total - 1):
        param.grad = torch.ones_like(param)
        optimizer.step()
        scheduler.step()
        values.append(_momentum(optimizer))
    return values


@pytest.mark.parametrize("kind", sorted(OPTIMIZERS))
@pytest.mark.parametrize(("total", "pct", "anneal", "three_phase"), CASES)
def test_equals_onecyclelr_momentum(kind, total, pct, anneal, three_phase):
    ours = S.one_cycle_momentum(total, pct_start=pct, anneal=anneal, three_phase=three_phase)
    expected = torch_momenta(kind, total, pct, anneal, three_phase)
    assert ours(np.arange(total, dtype=np.float64)).tolist() == expected
    assert [ours(t) for t in range(total)] == expected
    assert expected[0] == 0.95 and 0.85 <= min(expected) < 0.857  # down to base_momentum, near its step


@pytest.mark.parametrize("kind", sorted(OPTIMIZERS))
@pytest.mark.parametrize(("total", "pct", "anneal", "three_phase"), CASES[::3])
def test_lrlab_scheduler_drives_the_optimizer_as_onecyclelr(kind, total, pct, anneal, three_phase):
    """lrlab.torch.LRScheduler with ``momentum=momentum_for(one_cycle)`` sets the same LR and
    momentum as OneCycleLR at every step."""
    lr = S.one_cycle(0.1, total_steps=total, pct_start=pct, anneal=anneal, three_phase=three_phase)
    param = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    optimizer = OPTIMIZERS[kind]([param])
    scheduler = LRScheduler(optimizer, lr, momentum=S.momentum_for(lr))
    seen = [(optimizer.param_groups[0]["lr"], _momentum(optimizer))]
    for _ in range(total - 1):
        param.grad = torch.ones_like(param)
        optimizer.step()
        scheduler.step()
        seen.append((optimizer.param_groups[0]["lr"], _momentum(optimizer)))
    assert [m for _, m in seen] == torch_momenta(kind, total, pct, anneal, three_phase)
    np.testing.assert_allclose([v for v, _ in seen], lr(np.arange(total, dtype=np.float64)), rtol=0)


def test_holds_max_momentum_after_the_cycle_and_reads_back():
    m = S.one_cycle_momentum(100, pct_start=0.25, anneal="linear", base_momentum=0.8, max_momentum=0.97)
    assert m(100) == m(10**9) == 0.97 and m(0) == 0.97 and m(24) == 0.8
    assert S.parse(str(m)) == m and S.from_dict(m.to_dict()) == m
    assert (
        str(m)
        == 'one_cycle_momentum(total_steps=100, pct_start=0.25, anneal="linear", base_momentum=0.8, max_momentum=0.97)'
    )


def test_momentum_for_follows_the_one_cycle_and_nothing_else():
    lr = S.one_cycle(0.3, total_steps=200, pct_start=0.2, anneal="linear", three_phase=True)
    assert S.momentum_for(lr) == S.one_cycle_momentum(200, pct_start=0.2, anneal="linear", three_phase=True)
    assert S.momentum_for(S.cosine(0.1, 100)) is None
    assert S.momentum_for(S.warmup(lr, 10)) is None  # only a one-cycle that is the whole schedule


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"total_steps": 0}, "total_steps must be > 1"),
        ({"total_steps": 100, "pct_start": 1.0}, "pct_start must be in (0, 1)"),
        ({"total_steps": 100, "anneal": "exp"}, "anneal must be one of 'cos', 'linear'"),
        ({"total_steps": 100, "base_momentum": 1.5}, "base_momentum must be in [0, 1]"),
        ({"total_steps": 100, "max_momentum": -0.1}, "max_momentum must be in [0, 1]"),
        ({"total_steps": 3, "pct_start": 0.3}, "pct_start * total_steps must be > 1"),
    ],
)
def test_bad_parameters_are_one_line_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=None) as info:
        S.one_cycle_momentum(**kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)


# ----------------------------------------------------------------------------------------
# The default: a run with a one-cycle LR and an optimizer with a momentum cycles it.


ONE_CYCLE = "one_cycle(max_lr=0.01, total_steps=300)"


@pytest.mark.parametrize("spec", [*OPTIMIZER_NAMES, *OPTIMIZER_ALIASES, "sgd(momentum=0.5)", "rmsprop(momentum=0.9)",
                                  "nesterov(momentum=0.8)", "sgd(momentum=0)", "adam(betas=[0.8, 0.99])"])  # fmt: skip
def test_the_torch_free_rule_agrees_with_the_optimizer_torch_builds(spec):
    """Cycled where the built optimizer has betas or a momentum > 0 (schedule-free aside)."""
    param = torch.nn.Parameter(torch.zeros(4, 4))
    optimizer = make_optimizer(spec, [param], lr=0.1)
    group = optimizer.param_groups[0]
    momentum = group_momentum(group)
    has = momentum is not None and ("betas" in group or momentum > 0) and not is_schedule_free(optimizer)
    assert _optimizer_momentum(spec) is has


def test_a_one_cycle_run_cycles_momentum_unless_it_sets_one():
    cycled = S.one_cycle_momentum(300)
    assert RunConfig(task="t", lr=0.01, optimizer="adam", schedule=ONE_CYCLE).momentum == cycled
    assert RunConfig(task="t", lr=0.01, optimizer="nesterov", schedule=ONE_CYCLE).momentum == cycled
    assert RunConfig(task="t", lr=0.01, optimizer="sgd", schedule=ONE_CYCLE).momentum is None  # no momentum
    assert (
        RunConfig(task="t", lr=0.01, optimizer="adam", schedule="cosine(lr=0.01, total_steps=300)").momentum
        is None
    )
    assert (
        RunConfig(task="t", lr=0.01, optimizer="adam", schedule=f"warmup({ONE_CYCLE}, steps=10)").momentum
        is None
    )
    opted_out = RunConfig(task="t", lr=0.01, optimizer="adam", schedule=ONE_CYCLE, momentum="constant(0.9)")
    assert str(opted_out.momentum) == "constant(lr=0.9)"
    config = RunConfig(task="t", lr=0.01, optimizer="adam", schedule=ONE_CYCLE)
    assert config.to_dict()["momentum"] == "one_cycle_momentum(total_steps=300)"
    assert RunConfig.from_dict(config.to_dict()) == config
    assert default_momentum("rmsprop(momentum=0.9)", S.parse(ONE_CYCLE)) == cycled


def test_a_stored_one_cycle_config_without_momentum_reads_back_as_it_ran():
    """A run recorded before the default trained at the optimizer's momentum: reading it
    back adds nothing."""
    old = {"task": "t", "lr": 0.01, "optimizer": "adam", "schedule": ONE_CYCLE, "seed": 0, "epochs": None,
           "batch_size": None, "task_options": {}, "divergence_factor": 4.0}  # fmt: skip
    assert RunConfig.from_dict(old).momentum is None


# Ids computed before one-cycle cycled momentum (lrlab at 498dfff): the ids of runs that are
# not one-cycle runs with a momentum optimizer do not change.
PINNED = [
    (dict(task="digits-mlp", lr=0.1, optimizer="sgd(momentum=0.9)", schedule="cosine(lr=0.1, total_steps=300)"),
     "62ba6801b2f80bab"),
    (dict(task="digits-mlp", lr=0.003, optimizer="adam", schedule="warmup(cosine(lr=0.003, total_steps=270), steps=30)"),
     "8c34762f9cce5c23"),
    (dict(task="digits-linear", lr=0.5, optimizer="sgd", seed=2, epochs=3), "d4b4c64d588407ba"),
    (dict(task="digits-mlp", lr=0.01, optimizer="adam", schedule="cyclic(base_lr=0.001, max_lr=0.01, step_size=20)",
          momentum="cyclic(base_lr=0.85, max_lr=0.95, step_size=20)"), "6bef20e1ac626997"),
    (dict(task="digits-mlp", lr=0.1, optimizer="sgd", schedule="one_cycle(max_lr=0.1, total_steps=300)"),
     "0069816f0946aba9"),
    (dict(task="digits-mlp", lr=0.1, optimizer="sgd(momentum=0.9)", schedule="one_cycle(max_lr=0.1, total_steps=300)",
          momentum="constant(0.9)"), "5cc29d416fd9dae6"),
]  # fmt: skip


@pytest.mark.parametrize(("config", "run_id"), PINNED)
def test_ids_of_other_runs_are_unchanged(config, run_id):
    assert run_id_for("pin", RunConfig(**config)) == run_id


def test_the_id_of_a_cycled_one_cycle_run_changes():
    config = RunConfig(
        task="digits-mlp", lr=0.01, optimizer="adam", schedule="one_cycle(max_lr=0.01, total_steps=300)"
    )
    assert run_id_for("pin", config) != "05339de8534de045"  # its id before the default
    assert run_id_for("pin", config.replace(momentum="constant(0.9)")) != run_id_for("pin", config)


def test_a_sweep_trains_the_one_cycle_with_torchs_momentum(tmp_path):
    """A sweep file with a one-cycle: its Adam run records betas[0] equal to OneCycleLR's at
    every step; the run that writes momentum = constant(0.9) keeps 0.9 (the opt-out)."""
    spec = load_sweep({
        "name": "oc", "task": "digits-mlp", "task_options": {"train_size": 128, "val_size": 64, "hidden": 16},
        "epochs": 2, "batch_size": 32, "seeds": [0],
        "grid": {"lr": [0.01], "optimizer": ["adam"], "schedule": ["one_cycle(max_lr={lr}, total_steps={total_steps})"],
                 "momentum": ["constant(0.9)"]},
    })  # fmt: skip
    opted_out = expand(spec)
    default = expand(spec.model_copy(update={"grid": spec.grid.model_copy(update={"momentum": None})}))
    assert [str(p.config.momentum) for p in opted_out] == ["constant(lr=0.9)"]
    assert [str(p.config.momentum) for p in default] == ["one_cycle_momentum(total_steps=8)"]
    store = Store(tmp_path / "r.db")
    for plan in [*default, *opted_out]:
        assert train_run(plan.config, store, plan.id, sweep="oc").status.value == "done"
    assert store.steps(default[0].id).momentum.tolist() == torch_momenta("adam", 8, 0.3, "cos", False)
    assert store.steps(opted_out[0].id).momentum.tolist() == [0.9] * 8
