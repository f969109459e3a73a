"""μP through microsoft's mup and through lrlab's own multipliers: the same numbers as
mup's own optimizers, the parametrization's rules per layer, and bad input in one line."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from mup import MuAdam, MuReadout, MuSGD
from torch import nn

from lrlab.finetune import param_groups
from lrlab.optim.grammar import make_optimizer
from lrlab.training.tasks.digits import digits_mlp
from lrlab.transfer.mup import family_of, mup_model, mup_setup

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread is faster


def mlp(width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(8, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 3)
    )


class ConvReadout(nn.Module):
    """A model whose readout is a 1x1 convolution: no nn.Linear for MuReadout to replace."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Conv1d(2, width, 1)
        self.head = nn.Conv1d(width, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.body(x))).mean(-1)


BATCH = (torch.randn(32, 8, generator=torch.Generator().manual_seed(1)), torch.arange(32) % 3)


def _train(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int = 5) -> list[torch.Tensor]:
    for _ in range(steps):
        loss = F.cross_entropy(model(BATCH[0]), BATCH[1])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize(("family", "mu_optimizer"), [("adam", MuAdam), ("sgd", MuSGD)])
@pytest.mark.parametrize("method", ["mup", "lrlab"])
def test_lrlab_param_groups_train_as_mups_own_optimizer(family, mu_optimizer, method):
    """The multipliers in lrlab's param groups (what a run's lr_mult gives) train the μP
    model exactly as mup's MuAdam / MuSGD on a model given mup's base shapes, either way."""
    torch.manual_seed(0)
    reference, _ = mup_model(mlp(256), mlp(64), mlp(128), optimizer=family, method="mup")
    expected = _train(reference, mu_optimizer(reference.parameters(), lr=0.01))

    torch.manual_seed(0)
    model, setup = mup_model(mlp(256), mlp(64), mlp(128), optimizer=family, method=method)
    assert setup.method == method
    optimizer = make_optimizer(family, param_groups(model, 0.01, rules=setup.lr_mult), 0.01)
    got = _train(model, optimizer)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


@settings(max_examples=20, deadline=None)
@given(base=st.sampled_from([8, 16, 32]), mult=st.sampled_from([1, 2, 3, 4, 8]))
def test_multipliers_follow_the_width(base, mult):
    """Adam: the hidden matrix's LR falls as 1/width_mult, the rest keep theirs; SGD: the
    vector-like parameters' LR rises as width_mult, the hidden matrix keeps its own."""
    width = base * mult
    _, adam = mup_model(mlp(width), mlp(base), mlp(2 * base), optimizer="adam")
    assert adam.width_mult == mult
    assert adam.lr_mult["2.weight"] == pytest.approx(1 / mult)
    assert {k: v for k, v in adam.lr_mult.items() if k != "2.weight"} == dict.fromkeys(
        ["0.weight", "0.bias", "2.bias", "4.weight", "4.bias"], 1.0
    )
    _, sgd = mup_model(mlp(width), mlp(base), mlp(2 * base), optimizer="sgd(momentum=0.9)")
    assert sgd.lr_mult["2.weight"] == pytest.approx(1.0)
    for name in ("0.weight", "0.bias", "2.bias", "4.weight"):
        assert sgd.lr_mult[name] == pytest.approx(mult)
    assert sgd.lr_mult["4.bias"] == 1.0  # no width dimension at all


def test_readout_divides_by_the_width_and_its_init_grows_by_its_root():
    torch.manual_seed(3)
    plain = mlp(256)
    torch.manual_seed(3)
    model, setup = mup_model(mlp(256), mlp(64), mlp(128), method="lrlab")
    assert setup.width_mult == 4.0
    torch.testing.assert_close(model[4].weight, plain[4].weight * 2.0)  # sqrt(4)
    torch.testing.assert_close(model[2].bias, plain[2].bias * 2.0)  # a hidden bias: sqrt(fan-in mult)
    torch.testing.assert_close(model[0].bias, plain[0].bias)  # fan-in fixed (8 inputs)
    hidden = torch.randn(5, 256)
    torch.testing.assert_close(model[4](hidden), F.linear(hidden / 4.0, model[4].weight, model[4].bias))


def test_at_the_base_width_mup_is_the_standard_model():
    """μP is defined against the base: there the model is the factory's own, output for output."""
    setup = mup_setup(digits_mlp, "hidden", 32, base=32)
    assert setup.method == "mup" and setup.width_mult == 1.0 and set(setup.lr_mult.values()) == {1.0}
    mu, plain = setup.task.make_model(5), digits_mlp(hidden=32).make_model(5)
    assert isinstance(mu[4], MuReadout)
    x = torch.rand(7, 64)
    torch.testing.assert_close(mu(x), plain(x))


def test_setup_of_a_task_factory_builds_every_model_in_mup():
    setup = mup_setup(digits_mlp, "hidden", 128, base=32)
    assert setup.task.options["parametrization"] == "mup" and setup.task.options["hidden"] == 128
    first, again = setup.task.make_model(1), setup.task.make_model(1)
    assert isinstance(first[4], MuReadout) and first[4].width_mult() == 4.0
    for a, b in zip(first.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)
    assert setup.lr_mult["2.weight"] == 0.25
    assert setup.readout == "4"
    assert "2.weight: lr x 0.25" in setup.describe()


def test_a_readout_mup_cannot_take_is_done_by_lrlab():
    torch.manual_seed(0)
    model, setup = mup_model(ConvReadout(64), ConvReadout(16), ConvReadout(32), optimizer="adam")
    assert (setup.method, setup.readout, setup.width_mult) == ("lrlab", "head", 4.0)
    torch.manual_seed(0)
    plain = ConvReadout(64)
    x = torch.randn(4, 2, 5)
    # the readout's init is x sqrt(4) and its input / 4: the logits are half the standard ones
    torch.testing.assert_close(model(x), (plain(x) - plain.head.bias) / 2 + model.head.bias)
    with pytest.raises(ValueError, match=r"method='mup' needs an nn.Linear readout, got Conv1d"):
        mup_model(ConvReadout(64), ConvReadout(16), ConvReadout(32), method="mup")


class TwoHeads(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Linear(4, width)
        self.left = nn.Linear(width, 2)
        self.right = nn.Linear(width, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        return self.left(h) + self.right(h)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: mup_model(TwoHeads(64), TwoHeads(16), TwoHeads(32)),
         r"exactly one readout .* found left, right; name it with readout="),
        (lambda: mup_model(mlp(64), mlp(16), mlp(16)), r"no parameter changes shape"),
        (lambda: mup_model(mlp(64), mlp(16), mlp(32), readout="nope"), r"readout 'nope' is not a module"),
        (lambda: mup_model(mlp(64), mlp(16), mlp(32), method="magic"), r"method must be one of auto, mup, lrlab"),
        (lambda: family_of("adamw(weight_decay=0.1)"), r"μP with weight decay is not supported"),
        (lambda: family_of("rmsprop"), r"defined for the Adam and SGD families .* got 'rmsprop'"),
        (lambda: mup_setup(digits_mlp, "hidden", 64, base=0), r"base must be a whole number >= 1, got 0"),
        (lambda: mup_setup(digits_mlp, "hidden", 64, base=32, delta=32), r"delta must differ from base"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line(call, message):
    with pytest.raises(ValueError, match=message) as info:
        call()
    assert "\n" not in str(info.value)


def test_two_heads_work_when_one_is_named_and_the_other_is_refused_by_mup():
    # mup itself refuses a second width-to-fixed Linear that is not a MuReadout
    with pytest.raises(AssertionError):
        mup_model(TwoHeads(64), TwoHeads(16), TwoHeads(32), readout="left", method="mup")
    _, setup = mup_model(TwoHeads(64), TwoHeads(16), TwoHeads(32), readout="left", method="lrlab")
    assert setup.readout == "left" and setup.width_mult == 4.0


def _study_form(width: int):
    """``lrlab.study``'s model-function form: (model_fn, train, val)."""
    x, y = torch.randn(64, 8, generator=torch.Generator().manual_seed(0)), torch.arange(64) % 3
    return (lambda: mlp(width)), (x[:48], y[:48]), (x[48:], y[48:])


def test_the_model_function_form_is_built_in_mup():
    setup = mup_setup(_study_form, "width", 128, base=32)
    assert setup.task is not None and setup.width_mult == 4.0
    model = setup.task.make_model(0)
    assert isinstance(model[4], MuReadout) and model[4].width_mult() == 4.0


def test_a_trainable_is_refused_in_one_line():
    import lrlab

    def factory(width: int):
        @lrlab.trainable(objective="loss", direction="minimize", epochs=1, steps_per_epoch=1)
        def train(trial):  # pragma: no cover - never trained here
            trial.report(1, loss=0.0)

        return train

    with pytest.raises(ValueError, match=r"μP needs a model lrlab builds, and a trainable builds its own"):
        mup_setup(factory, "width", 64, base=16)
