"""The coordinate check: μP passes, a wrong parametrization fails loudly in one line, and
its activation scales are mup's own (``mup.coord_check.get_coord_data``) where they overlap."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from mup.coord_check import get_coord_data

from lrlab.finetune import param_groups
from lrlab.optim.grammar import make_optimizer
from lrlab.training.tasks.digits import digits_mlp
from lrlab.transfer.coord import coord_check, coord_data, growth_exponent
from lrlab.transfer.mup import mup_setup

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread is faster

WIDTHS = [64, 128, 256, 512]


def test_mup_passes_at_every_step():
    check = coord_check(digits_mlp, "hidden", WIDTHS, lr=0.01, parametrization="mup")
    assert check.check() is check
    worst = check.worst_exponents()
    assert set(worst) == {"0", "2", "4", ""}
    assert all(abs(e) < 0.2 for e in worst.values()), worst


def test_standard_parametrization_with_adam_fails_naming_a_growing_layer():
    check = coord_check(digits_mlp, "hidden", WIDTHS, lr=0.01, parametrization="standard")
    worst = check.worst_exponents()
    assert worst["2"] > 0.7 and worst["4"] > 0.7  # hidden and readout updates grow about as the width
    assert abs(worst["0"]) < 0.2  # the input layer's fan-in (64 pixels) does not grow
    with pytest.raises(ValueError, match=r"layer '(2|4|)' changes as width\^\+\d\.\d\d") as info:
        check.check()
    assert "\n" not in str(info.value) and "standard adam lr=0.01" in str(info.value)


def _readout_scaled_twice(width: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """μP, then the readout's LR divided by the width multiplier once more (a classic slip:
    MuReadout already divides its output by it)."""
    setup = mup_setup(digits_mlp, "hidden", width, base=64)
    rules = dict(setup.lr_mult)
    for name in ("4.weight", "4.bias"):
        rules[name] /= setup.width_mult
    model = setup.task.make_model(int(torch.initial_seed()))
    return model, make_optimizer("adam", param_groups(model, 0.01, rules=rules), 0.01)


def test_a_readout_whose_lr_is_scaled_twice_is_caught():
    task = digits_mlp(hidden=64)
    batch = next(iter(task.train_loader(64, 0)))
    check = coord_data(_readout_scaled_twice, WIDTHS, batch, task.loss_fn, label="readout scaled twice")
    worst = check.worst_exponents()
    assert -1.3 < worst["4"] < -0.6, worst  # its own update shrinks as 1/width
    assert abs(worst["0"]) < 0.2 and abs(worst["2"]) < 0.2
    with pytest.raises(
        ValueError, match=r"for readout scaled twice: layer '4' changes as width\^-[01]\.\d\d"
    ):
        check.check()


def test_activation_scales_equal_mups_coord_data():
    """Same models (mup's MuReadout and base shapes), same batch, MuAdam against lrlab's
    Adam with the multipliers: mup's l1 per module and step equals ours."""
    lr, steps = 0.01, 3
    task = digits_mlp(hidden=64)
    batch = next(iter(task.train_loader(64, 0)))
    setups = {w: mup_setup(digits_mlp, "hidden", w, base=64) for w in WIDTHS[:3]}
    frame = get_coord_data(
        {w: (lambda s=s: s.task.make_model(0)) for w, s in setups.items()},
        [batch],
        optimizer="adam",
        lr=lr,
        mup=True,
        nsteps=steps,
        nseeds=1,
        cuda=False,
    )

    def build(width: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        model = setups[width].task.make_model(0)
        return model, make_optimizer("adam", param_groups(model, lr, rules=setups[width].lr_mult), lr)

    ours = coord_data(build, WIDTHS[:3], batch, task.loss_fn, steps=steps, seeds=(0,))
    compared = 0
    for row in frame.itertuples():
        if row.module in ours.l1:
            expected = ours.l1[row.module][row.t - 1, WIDTHS.index(row.width)]
            assert row.l1 == pytest.approx(expected, rel=1e-5), (row.module, row.t, row.width)
            compared += 1
    assert compared == 4 * steps * 3  # layers 0, 2, 4 and the model, every step and width


@settings(max_examples=50, deadline=None)
@given(
    exponent=st.floats(-2, 2),
    scale=st.floats(1e-3, 1e3),
    widths=st.lists(st.integers(2, 4096), min_size=3, max_size=6, unique=True),
)
def test_growth_exponent_recovers_a_power_law(exponent, scale, widths):
    values = [scale * w**exponent for w in widths]
    assert growth_exponent(widths, values) == pytest.approx(exponent, abs=1e-6)


def test_growth_exponent_of_a_zero_or_infinite_scale_is_nan():
    assert math.isnan(growth_exponent([1, 2, 4], [1.0, 0.0, 2.0]))
    assert math.isnan(growth_exponent([1, 2, 4], [1.0, math.inf, 2.0]))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"widths": [64, 128]}, r"widths must be at least 3 distinct sizes, got \[64, 128\]"),
        ({"steps": 1}, r"steps must be a whole number >= 2, got 1"),
        ({"parametrization": "ntk"}, r"parametrization must be one of mup, standard, got 'ntk'"),
    ],
)
def test_bad_input_is_one_line(kwargs, message):
    arguments = {"widths": WIDTHS[:3], "lr": 0.01, **kwargs}
    with pytest.raises(ValueError, match=message):
        coord_check(digits_mlp, "hidden", **arguments)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": 0.0}, r"lr must be a finite number > 0, got 0.0"),
        ({"lr": float("nan")}, r"lr must be a finite number > 0, got nan"),
        ({"widths": [64, 128.5, 256]}, r"widths must be whole numbers >= 1, got \[64, 128.5, 256\]"),
    ],
)
def test_bad_lr_or_widths_are_one_line(kwargs, message):
    arguments = {"widths": WIDTHS[:3], "lr": 0.01, **kwargs}
    with pytest.raises(ValueError, match=message):
        coord_check(digits_mlp, "hidden", **arguments)


class _NoisyMLP(torch.nn.Module):
    """Dropout, BatchNorm and an in-place ReLU: what a recording could disturb."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.inp = torch.nn.Linear(64, width)
        self.norm = torch.nn.BatchNorm1d(width)
        self.drop = torch.nn.Dropout(0.3)
        self.act = torch.nn.ReLU(inplace=True)
        self.out = torch.nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.drop(self.act(self.norm(self.inp(x)))))


def test_recording_leaves_training_as_it_was_and_sees_no_change_before_the_first_update():
    task = digits_mlp(hidden=64)
    batch = next(iter(task.train_loader(32, 0)))
    built: dict[int, torch.nn.Module] = {}

    def build(width: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        built[width] = model = _NoisyMLP(width)
        return model, torch.optim.Adam(model.parameters(), lr=0.01)

    check = coord_data(build, [16, 32, 64], batch, task.loss_fn, steps=3, seeds=(0,))
    for name, update in check.update.items():
        assert np.all(update[0] == 0.0), name  # step 1: the same weights, the same dropout mask
    assert np.all(check.update["out"][1:] > 0)

    recorded = built[64]
    torch.manual_seed(0)
    plain, optimizer = build(64)
    for _ in range(3):
        loss = task.loss_fn(plain(batch[0]), batch[1])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert recorded is not plain
    for (name, a), b in zip(recorded.state_dict().items(), plain.state_dict().values(), strict=True):
        assert torch.equal(a, b), name  # weights and BatchNorm's running statistics alike
