"""DeltaBarDelta: Jacobs' gain rules exactly, state_dict resume, a ravine, and real training."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lrlab.optim import DeltaBarDelta
from lrlab.schedules import cosine
from lrlab.surfaces import run_trajectory
from lrlab.torch import LRScheduler


def _reference_gains(grads: list[float], *, lr: float, kappa: float, phi: float, theta: float) -> list[float]:
    """Jacobs' rule transcribed on plain floats: (gain, bar, weight) for a 1-weight model."""
    gain, bar, weights, w = 1.0, 0.0, [], 0.0
    for g in grads:
        if bar * g > 0:
            gain += kappa
        elif bar * g < 0:
            gain *= 1 - phi
        gain = min(max(gain, 0.01), 100.0)
        bar = (1 - theta) * g + theta * bar
        w -= lr * gain * g
        weights.append(w)
    return weights


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-5, 5, allow_nan=False).filter(lambda v: abs(v) > 1e-3), min_size=1, max_size=30))
def test_updates_follow_jacobs_rule_for_any_gradient_sequence(grads: list[float]) -> None:
    w = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = DeltaBarDelta([w], lr=0.1, kappa=0.05, phi=0.2, theta=0.7)
    expected = _reference_gains(grads, lr=0.1, kappa=0.05, phi=0.2, theta=0.7)
    for g, want in zip(grads, expected):
        w.grad = torch.tensor([g], dtype=torch.float64)
        opt.step()
        assert w.item() == pytest.approx(want, rel=1e-12, abs=1e-12)


def test_gains_grow_additively_while_the_sign_agrees_and_shrink_when_it_flips() -> None:
    w = torch.nn.Parameter(torch.zeros(2))
    opt = DeltaBarDelta([w], lr=0.1, kappa=0.1, phi=0.5)
    for _ in range(5):  # coordinate 0 always +1, coordinate 1 alternates
        step = int(opt.state[w]["step"]) if opt.state[w] else 0
        w.grad = torch.tensor([1.0, 1.0 if step % 2 == 0 else -1.0])
        opt.step()
    gain = opt.state[w]["gain"]
    assert float(gain[0]) == pytest.approx(1.4)  # 4 agreeing steps after the first: +0.1 each
    assert float(gain[1]) == pytest.approx(0.5**4)  # 4 flips: x0.5 each


def test_gains_stay_within_their_bounds() -> None:
    w = torch.nn.Parameter(torch.zeros(1))
    opt = DeltaBarDelta([w], lr=0.01, kappa=1.0, gain_max=3.0)
    for _ in range(10):
        w.grad = torch.ones(1)
        opt.step()
    assert float(opt.state[w]["gain"]) == 3.0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"lr": -1.0}, "lr"), ({"phi": 1.0}, "phi"), ({"theta": -0.1}, "theta"), ({"momentum": 1.5}, "momentum"),
     ({"initial_gain": 200.0}, "initial_gain")],
)  # fmt: skip
def test_bad_hyperparameters_name_the_parameter(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        DeltaBarDelta([torch.nn.Parameter(torch.zeros(1))], **kwargs)


def test_fixes_the_ravine_where_gd_at_the_same_rate_stalls() -> None:
    gd = run_trajectory("ravine", "sgd(lr=0.25)", steps=200)
    dbd = run_trajectory("ravine", "deltabardelta(lr=0.25)", steps=200)
    assert gd.steps_to_tol is None
    assert dbd.steps_to_tol is not None and dbd.steps_to_tol < 100
    assert not dbd.diverged


def test_gains_grow_along_the_valley_and_shrink_across_it() -> None:
    point = torch.nn.Parameter(torch.tensor([-10.0, 1.0], dtype=torch.float64))
    opt = DeltaBarDelta([point], lr=0.25)
    for _ in range(30):
        opt.zero_grad()
        (0.05 * point[0] ** 2 + 4.0 * point[1] ** 2).backward()
        opt.step()
    along, across = (float(g) for g in opt.state[point]["gain"])
    assert along > 2.0  # the along gradient never changes sign
    assert across < 1.0  # the across gradient flipped at every step at lr = 2/curvature


def _digits_full_batch():  # type: ignore[no-untyped-def]
    from lrlab.training.tasks import get_task

    task = get_task("digits-linear")
    return task, task.train_data.inputs, task.train_data.targets


def _train(task, x, y, optimizer_factory, steps: int, schedule=None):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = task.make_model(0)
    opt = optimizer_factory(model.parameters())
    sched = LRScheduler(opt, schedule) if schedule is not None else None
    for _ in range(steps):
        opt.zero_grad()
        loss = task.loss_fn(model(x), y)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
    with torch.no_grad():
        return model, opt, float(task.loss_fn(model(x), y))


def test_trains_digits_linear_faster_than_sgd_at_the_same_rate() -> None:
    torch.set_num_threads(1)
    task, x, y = _digits_full_batch()
    sgd_model, _, sgd_loss = _train(task, x, y, lambda p: torch.optim.SGD(p, lr=0.5), 60)
    dbd_model, _, dbd_loss = _train(task, x, y, lambda p: DeltaBarDelta(p, lr=0.5), 60)
    assert dbd_loss < 0.75 * sgd_loss
    val = task.val_loader(512)
    assert task.evaluate(dbd_model, val)["val_loss"] < task.evaluate(sgd_model, val)["val_loss"]


def test_a_schedule_drives_the_global_rate() -> None:
    task, x, y = _digits_full_batch()
    _, opt, loss = _train(
        task, x, y, lambda p: DeltaBarDelta(p, lr=0.0), 40, schedule=cosine(0.5, total_steps=40)
    )
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    assert loss < 1.0  # it learnt: the initial loss is ln(10) = 2.3


def test_state_dict_resume_continues_identically() -> None:
    task, x, y = _digits_full_batch()
    model, opt, _ = _train(task, x, y, lambda p: DeltaBarDelta(p, lr=0.5, momentum=0.5), 10)
    twin_model = copy.deepcopy(model)
    twin_opt = DeltaBarDelta(twin_model.parameters(), lr=0.5, momentum=0.5)
    twin_opt.load_state_dict(copy.deepcopy(opt.state_dict()))
    for m, o in ((model, opt), (twin_model, twin_opt)):
        for _ in range(5):
            o.zero_grad()
            task.loss_fn(m(x), y).backward()
            o.step()
    for a, b in zip(model.parameters(), twin_model.parameters()):
        assert torch.equal(a, b)
    assert "gain" in opt.state_dict()["state"][0]
