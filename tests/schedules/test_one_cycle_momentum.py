"""The momentum of a one-cycle equals torch's OneCycleLR(cycle_momentum=True), read from the
optimizer after every step: SGD's ``momentum`` and Adam's ``betas[0]``, exactly (==)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch.optim import lr_scheduler as L

from lrlab import schedules as S
from lrlab.torch import LRScheduler

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
        optimizer, max_lr=0.1, total_steps=total, pct_start=pct, anneal_strategy=anneal, three_phase=three_phase
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
    assert str(m) == 'one_cycle_momentum(total_steps=100, pct_start=0.25, anneal="linear", base_momentum=0.8, max_momentum=0.97)'


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
