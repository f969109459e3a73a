"""The range test on real (tiny) torch training: curve, suggestions, and no trace left."""

import copy
import math
import random

import numpy as np
import pytest
import torch
from finder_problems import make_blobs, make_classifier
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

import lrlab
from lrlab.finder import find_lr
from lrlab.finder.range import lr_at


def snapshot(model, optimizer, loader):
    """Everything that must come back bit for bit, as plain copies."""
    return {
        "params": {k: v.detach().clone() for k, v in model.named_parameters()},
        "buffers": {k: v.detach().clone() for k, v in model.named_buffers()},
        "grads": {k: None if v.grad is None else v.grad.clone() for k, v in model.named_parameters()},
        "training": [m.training for m in model.modules()],
        "opt": copy.deepcopy(optimizer.state_dict()),
        "param_ids": [id(p) for g in optimizer.param_groups for p in g["params"]],
        "torch_rng": torch.get_rng_state(),
        "np_rng": np.random.get_state()[1].copy(),
        "py_rng": random.getstate(),
        "loader_rng": loader.generator.get_state(),
    }


def assert_same(before, model, optimizer, loader):
    after = snapshot(model, optimizer, loader)
    for key in ("params", "buffers"):
        for name, tensor in before[key].items():
            assert torch.equal(after[key][name], tensor), f"{key} {name} changed"
    for name, grad in before["grads"].items():
        got = after["grads"][name]
        assert (grad is None and got is None) or torch.equal(got, grad), f"grad {name} changed"
    assert after["training"] == before["training"]
    opt_before, opt_after = before["opt"], after["opt"]
    assert opt_after["param_groups"] == opt_before["param_groups"]
    assert opt_after["state"].keys() == opt_before["state"].keys()
    for index, state in opt_before["state"].items():
        for key, value in state.items():
            other = opt_after["state"][index][key]
            assert torch.equal(other, value) if torch.is_tensor(value) else other == value
    assert after["param_ids"] == before["param_ids"]
    assert torch.equal(after["torch_rng"], before["torch_rng"])
    assert np.array_equal(after["np_rng"], before["np_rng"])
    assert after["py_rng"] == before["py_rng"]
    assert torch.equal(after["loader_rng"], before["loader_rng"])


def warmed_up(optimizer_cls, loader, **kwargs):
    """A model and optimizer with non-empty state (momentum / Adam moments) and gradients."""
    model = make_classifier()
    optimizer = optimizer_cls(model.parameters(), lr=0.01, **kwargs)
    for inputs, targets in list(loader)[:2]:
        optimizer.zero_grad()
        F.cross_entropy(model(inputs), targets).backward()
        optimizer.step()
    model.eval()  # a caller may well be in eval mode; it must stay so
    return model, optimizer


@pytest.mark.parametrize(
    ("optimizer_cls", "kwargs"),
    [
        pytest.param(torch.optim.SGD, {"momentum": 0.9}, id="sgd-momentum"),
        pytest.param(torch.optim.Adam, {}, id="adam"),
    ],
)
def test_finishes_and_leaves_no_trace(blobs_loader, optimizer_cls, kwargs):
    model, optimizer = warmed_up(optimizer_cls, blobs_loader, **kwargs)
    before = snapshot(model, optimizer, blobs_loader)
    result = find_lr(model, optimizer, F.cross_entropy, blobs_loader, start_lr=1e-5, end_lr=1.0, num_iter=40)
    assert len(result) == 40 and not result.diverged
    assert_same(before, model, optimizer, blobs_loader)


def test_divergence_stops_early_and_leaves_no_trace(blobs_loader):
    model, optimizer = warmed_up(torch.optim.SGD, blobs_loader, momentum=0.9)
    before = snapshot(model, optimizer, blobs_loader)
    result = find_lr(model, optimizer, F.cross_entropy, blobs_loader, start_lr=1e-4, end_lr=1e6, num_iter=100)
    assert result.diverged
    assert len(result) < 100
    finite = result.smoothed[np.isfinite(result.smoothed)]
    assert finite[-1] > 4.0 * finite.min() or result.skipped >= 5
    assert_same(before, model, optimizer, blobs_loader)


class Boom(RuntimeError):
    pass


@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt], ids=["raises", "ctrl-c"])
def test_exception_inside_leaves_no_trace(blobs_loader, error):
    model, optimizer = warmed_up(torch.optim.Adam, blobs_loader)
    before = snapshot(model, optimizer, blobs_loader)
    calls = 0

    def loss_fn(output, target):
        nonlocal calls
        calls += 1
        if calls == 7:
            raise error("stop here")
        return F.cross_entropy(output, target)

    with pytest.raises(error):
        find_lr(model, optimizer, loss_fn, blobs_loader, num_iter=20)
    assert calls == 7
    assert_same(before, model, optimizer, blobs_loader)


def test_nan_batches_are_skipped(blobs_loader):
    data = make_blobs(128)
    inputs = data.tensors[0].clone()
    inputs[32:64] = float("nan")  # the second of four batches is poisoned
    loader = DataLoader(TensorDataset(inputs, data.tensors[1]), batch_size=32)
    model = make_classifier()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = find_lr(model, optimizer, F.cross_entropy, loader, start_lr=1e-4, end_lr=0.5, num_iter=20)
    assert len(result) == 20
    assert result.skipped == 5  # iterations 1, 5, 9, 13, 17
    assert np.isnan(result.losses[1::4]).all() and np.isfinite(result.losses[0::4]).all()
    assert np.isfinite(result.smoothed).all()
    assert math.isfinite(result.lr)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())


def test_suggestion_is_below_the_stability_limit_of_a_quadratic():
    # Least squares with E[x x^T] = I: the Hessian of the MSE is 2I, so plain SGD diverges
    # above lr = 1; the loss falls fastest between 0.01 and 1.
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(512, 8, generator=gen)
    y = x @ torch.randn(8, 1, generator=gen)
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True, generator=gen)
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    result = find_lr(model, optimizer, F.mse_loss, loader, start_lr=1e-5, end_lr=100.0, num_iter=100)
    assert result.diverged
    assert 0.5 < result.lrs[-1] < 10.0
    assert set(result.suggestions) == {"steepest", "valley", "minimum/10", "minimum/3", "minimum/30", "minimum/7"}
    for name, lr in result.suggestions.items():
        if name != "minimum/30":  # a third of minimum/10, pinned to it below
            assert 1e-3 < lr < 1.0, (name, lr)
    assert result.suggestions["minimum/3"] == pytest.approx(result.suggestions["minimum/10"] * 10 / 3)
    assert result.suggestions["minimum/30"] == pytest.approx(result.suggestions["minimum/10"] / 3)
    assert result.rule == "minimum/7"  # plain SGD: a seventh of the minimum
    assert result.lr == result.suggestions[result.rule]
    assert result.rule in result.reason
    base, top = result.cyclic_bounds()
    assert base == pytest.approx(top / 4) and 0.05 < top < 4.0  # the EMA lags a little


def test_linear_mode_and_lr_mult_groups(blobs_loader):
    model = make_classifier()
    optimizer = torch.optim.SGD(
        [
            {"params": model[0].parameters(), "lr_mult": 0.1},
            {"params": model[4].parameters()},
            {"params": model[1].parameters()},
        ],
        lr=0.01,
    )
    seen = []

    def progress(iteration, total, lr, loss):
        seen.append((lr, [g["lr"] for g in optimizer.param_groups]))

    result = find_lr(
        model,
        optimizer,
        F.cross_entropy,
        blobs_loader,
        start_lr=0.01,
        end_lr=0.1,
        num_iter=10,
        mode="linear",
        progress=progress,
    )
    assert np.allclose(result.lrs, np.linspace(0.01, 0.1, 10))
    assert len(seen) == 10
    for lr, group_lrs in seen:
        assert group_lrs == pytest.approx([lr * 0.1, lr, lr])
    assert [g["lr"] for g in optimizer.param_groups] == [0.01, 0.01, 0.01]
    assert "lr_mult" in optimizer.param_groups[0] and "lr_mult" not in optimizer.param_groups[1]


def test_gradient_accumulation_matches_a_twice_larger_batch():
    data = make_blobs(512)
    counted = []

    def run(batch_size, accumulation_steps):
        # No BatchNorm/Dropout: the mean of two half-batch gradients is the full-batch gradient.
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
        calls = 0

        def loss_fn(out, target):
            nonlocal calls
            calls += 1
            return F.cross_entropy(out, target)

        loader = DataLoader(data, batch_size=batch_size)
        result = find_lr(
            model,
            optimizer,
            loss_fn,
            loader,
            start_lr=1e-3,
            end_lr=1.0,
            num_iter=12,
            accumulation_steps=accumulation_steps,
        )
        counted.append(calls)
        return result.losses

    np.testing.assert_allclose(run(32, 2), run(64, 1), rtol=1e-5)
    assert counted == [24, 12]


def test_validation_loader_gives_the_validation_loss(blobs_loader):
    val = DataLoader(make_blobs(96, seed=5), batch_size=48)
    model = make_classifier()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9)
    result = find_lr(
        model,
        optimizer,
        F.cross_entropy,
        blobs_loader,
        val_loader=val,
        start_lr=1e-4,
        end_lr=1.0,
        num_iter=20,
    )
    model.eval()
    with torch.no_grad():
        initial = F.cross_entropy(model(make_blobs(96, seed=5).tensors[0]), make_blobs(96, seed=5).tensors[1])
    assert result.config["validation"] is True
    assert result.losses[0] == pytest.approx(float(initial), rel=0.05)  # one tiny step from the start
    assert np.nanmin(result.losses) < 0.8 * result.losses[0]


def test_a_shuffling_loader_is_only_read(blobs_loader):
    model = make_classifier()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    expected = [b[1].tolist() for b in blobs_loader]  # advances the loader's generator...
    blobs_loader.generator.manual_seed(1)  # ...so wind it back
    find_lr(model, optimizer, F.cross_entropy, blobs_loader, num_iter=30)  # ~4 passes over the data
    assert [b[1].tolist() for b in blobs_loader] == expected
    assert len(blobs_loader.dataset) == 256


def test_global_rng_continues_as_if_nothing_ran(blobs_loader, seeded):
    model = make_classifier()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    state = torch.get_rng_state()
    find_lr(model, optimizer, F.cross_entropy, blobs_loader, num_iter=10)
    after = torch.rand(3)
    torch.set_rng_state(state)
    assert torch.equal(after, torch.rand(3))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"start_lr": 0.0}, "start_lr must be", id="start"),
        pytest.param({"end_lr": 1e-8}, "end_lr must be", id="end"),
        pytest.param({"num_iter": 1}, "num_iter must be", id="num-iter"),
        pytest.param({"mode": "log"}, "mode must be 'exp' or 'linear'", id="mode"),
        pytest.param({"smooth": 1.0}, "smooth must be in", id="smooth"),
        pytest.param({"diverge": 1.0}, "diverge must be", id="diverge"),
        pytest.param({"accumulation_steps": 0}, "accumulation_steps must be", id="accumulation"),
        pytest.param({"amp": True}, "amp=True needs the model on a CUDA device", id="amp-cpu"),
    ],
)
def test_bad_arguments_raise_one_clear_error(blobs_loader, kwargs, message):
    model = make_classifier()
    with pytest.raises(ValueError, match=message):
        find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), F.cross_entropy, blobs_loader, **kwargs)


def test_bad_batches_and_empty_loaders_are_named():
    model = make_classifier()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="yielded no batches"):
        find_lr(model, optimizer, F.cross_entropy, [], num_iter=5)
    with pytest.raises(ValueError, match=r"\(inputs, targets, \*extra\) tuple or a dict, got Tensor"):
        find_lr(model, optimizer, F.cross_entropy, [torch.zeros(2, 4)], num_iter=5)


def test_lr_grid_is_geometric():
    lrs = [lr_at(i, 9, 1e-7, 10.0) for i in range(9)]
    assert lrs[0] == pytest.approx(1e-7) and lrs[-1] == pytest.approx(10.0)
    assert np.allclose(np.diff(np.log10(lrs)), 1.0)


def test_find_lr_is_exported_lazily():
    assert lrlab.find_lr is find_lr
    assert "find_lr" in lrlab.__all__


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA for AMP")
def test_cuda_amp_runs_and_leaves_no_trace():
    data = make_blobs(256)
    loader = DataLoader(data, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(1))
    model = make_classifier().cuda()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def loss_fn(out, target):
        return F.cross_entropy(out, target)

    result = find_lr(model, optimizer, loss_fn, loader, start_lr=1e-6, end_lr=10.0, num_iter=50, amp=True)
    assert len(result) >= 20 and math.isfinite(result.lr)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    assert not optimizer.state


class RunningMean(torch.nn.Module):
    """Keeps a non-persistent buffer (not in the state dict) that training changes."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)
        self.register_buffer("seen", torch.zeros(4), persistent=False)

    def forward(self, x):
        if self.training:
            self.seen.add_(x.detach().mean(0))
        return self.linear(x)


def test_non_persistent_buffers_are_restored_too(blobs_loader):
    model = RunningMean()
    model.seen.fill_(0.5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    find_lr(model, optimizer, F.cross_entropy, blobs_loader, num_iter=10)
    assert "seen" not in model.state_dict()
    assert torch.equal(model.seen, torch.full((4,), 0.5))


@given(
    stop_at=st.integers(1, 25),
    error=st.sampled_from([RuntimeError, KeyboardInterrupt, FloatingPointError]),
    accumulation_steps=st.integers(1, 3),
)
@settings(max_examples=12, deadline=None)
def test_any_interruption_point_leaves_no_trace(stop_at, error, accumulation_steps):
    loader = DataLoader(
        make_blobs(128), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(3)
    )
    model, optimizer = warmed_up(torch.optim.SGD, loader, momentum=0.9, nesterov=True)
    before = snapshot(model, optimizer, loader)
    calls = 0

    def loss_fn(output, target):
        nonlocal calls
        calls += 1
        if calls == stop_at:
            raise error("interrupted")
        return F.cross_entropy(output, target)

    with pytest.raises(error):
        find_lr(model, optimizer, loss_fn, loader, num_iter=30, accumulation_steps=accumulation_steps)
    assert_same(before, model, optimizer, loader)


@pytest.mark.parametrize(
    ("make", "rule"),
    [
        (lambda p: torch.optim.SGD(p, lr=0.0), "minimum/7"),
        (lambda p: torch.optim.SGD(p, lr=0.0, momentum=0.9, nesterov=True), "minimum/7"),
        (lambda p: torch.optim.ASGD(p, lr=0.0), "minimum/7"),
        (lambda p: torch.optim.Adam(p, lr=0.0), "minimum/30"),
        (lambda p: torch.optim.AdamW(p, lr=0.0), "minimum/30"),
        (lambda p: torch.optim.RMSprop(p, lr=0.0), "minimum/30"),
    ],
)
def test_the_default_rule_follows_the_optimizer_family(make, rule):
    # A classification loss (a regression loss has its own rule: test_regression_rule.py).
    loader = DataLoader(make_blobs(), batch_size=32)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    result = find_lr(model, make(model.parameters()), F.cross_entropy, loader, num_iter=60)
    assert result.rule == rule
    assert result.lr == result.suggestions[rule]
    assert result.reason.startswith(rule)
    assert ("for SGD" in result.reason) == (rule == "minimum/7")
