"""The two rules on the loss: the LR too small (a small update ratio while the loss still falls
steadily) and a run diverging (the loss rising step over step far above its start), on plain
numbers and on real training loops of a task the fault benchmark does not use."""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lrlab.instruments import Instruments
from lrlab.instruments.progress import RISE_FACTOR, RISE_STEPS, STEADY_BLOCK, rising_far, steady_fall
from lrlab.schedules import cosine, warmup
from lrlab.torch import LRScheduler
from lrlab.training.tasks import get_task

WINDOW = 3 * STEADY_BLOCK


def test_a_straight_fall_is_steady_and_a_flattened_one_is_not():
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 0.02, WINDOW)
    assert steady_fall(3.0 - 0.01 * np.arange(WINDOW) + noise)
    assert not steady_fall(1.0 + 2.0 * np.exp(-np.arange(WINDOW) / 8) + noise)  # flattened
    assert not steady_fall(np.full(WINDOW, 2.0) + noise)  # flat: the drop is noise
    assert not steady_fall(3.0 - 0.01 * np.arange(WINDOW - 1))  # too few steps
    assert not steady_fall([*(3.0 - 0.01 * np.arange(WINDOW - 1)), math.nan])


@settings(max_examples=60, deadline=None)
@given(
    slope=st.floats(0.001, 1.0),
    scale=st.floats(0.1, 100.0),
    shift=st.floats(-10.0, 10.0),
    seed=st.integers(0, 2**16),
)
def test_steadiness_does_not_depend_on_the_losses_unit_or_offset(slope, scale, shift, seed):
    losses = 5.0 - slope * np.arange(WINDOW) + np.random.default_rng(seed).normal(0.0, 0.05, WINDOW)
    assert steady_fall(losses) == steady_fall(scale * losses + shift)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.floats(0.01, 100.0), min_size=RISE_STEPS + 1, max_size=RISE_STEPS + 1), st.floats(0.01, 10.0)
)
def test_rising_far_needs_every_step_up_and_the_last_above_the_factor(tail, start):
    expected = all(b > a for a, b in itertools.pairwise(tail)) and tail[-1] > RISE_FACTOR * start
    assert rising_far(tail, start) == expected


def _digits_linear_adam(lr: float, seed: int = 7) -> list:
    """Two epochs (90 steps) of digits-linear with Adam at a constant ``lr``, the panel watching."""
    torch.manual_seed(seed)
    task = get_task("digits-linear")
    model = task.make_model(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    found: list = []
    panel = Instruments(on_finding=found.append).attach(optimizer, model=model)
    step = 0
    for _epoch in range(2):
        for inputs, targets in task.train_loader(32, seed):
            optimizer.zero_grad()
            loss = task.loss_fn(model(inputs), targets)
            loss.backward()
            optimizer.step()
            panel.observe_step(step, loss.item())
            step += 1
    series, _findings = panel.take()
    return found, series


def test_a_too_small_lr_is_found_while_the_loss_still_falls_and_its_clean_twin_is_not():
    found, _series = _digits_linear_adam(1e-4)
    (finding,) = found
    assert finding.kind == "lr_low" and "raise it" in finding.message
    assert finding.evidence["ratio"] < 1e-3 and 50 <= finding.step < 90
    means = finding.evidence["block_means"]
    assert means[0] > means[1] > means[2]  # still falling, block after block
    clean, clean_series = _digits_linear_adam(1e-2)
    assert clean == []
    assert np.median(clean_series["update_ratio/group0"][1][50:]) > 1e-3


def test_a_small_ratio_is_no_finding_once_the_lr_has_decayed():
    """The same too-small LR, halved from the start of the measured window: a decay on purpose."""
    torch.manual_seed(7)
    task = get_task("digits-linear")
    model = task.make_model(7)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    found: list = []
    panel = Instruments(on_finding=found.append).attach(optimizer, model=model)
    step = 0
    for _epoch in range(2):
        for inputs, targets in task.train_loader(32, 7):
            optimizer.param_groups[0]["lr"] = 1e-4 if step < 10 else 4e-5
            optimizer.zero_grad()
            loss = task.loss_fn(model(inputs), targets)
            loss.backward()
            optimizer.step()
            panel.observe_step(step, loss.item())
            step += 1
    panel.take()
    assert found == []


def test_a_fast_divergence_is_found_before_the_loss_is_non_finite():
    """Gradient descent on a quadratic at 2.95 times its stable LR: the loss grows about 24-fold a
    step (|1 - lr * a|^2 with lr * a = 5.9) and is non-finite (float32) some 25 steps later."""
    a = torch.tensor([1.0, 2.0, 50.0])
    weights = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD([weights], lr=2.95 * 2 / 50.0)
    found: list = []
    panel = Instruments(on_finding=found.append).attach(optimizer)
    non_finite = None
    for step in range(2000):
        optimizer.zero_grad()
        loss = 0.5 * (a * weights.pow(2)).sum()
        loss.backward()
        optimizer.step()
        panel.observe_step(step, loss.item())
        if not math.isfinite(loss.item()):
            non_finite = step
            break
        if step % 50 == 49:  # the recorder collects in batches
            panel.take()
    panel.take()
    kinds = [f.kind for f in found]
    assert non_finite is not None and "divergence" in kinds
    divergence = found[kinds.index("divergence")]
    assert divergence.step < non_finite
    assert divergence.evidence["losses"][-1] > RISE_FACTOR * divergence.evidence["first"]
    # the first step with three rises behind it (the loss is already 13,000 times its first)
    assert divergence.step == RISE_STEPS and non_finite > 20


def test_a_real_loop_diverging_is_found_steps_before_its_loss_is_four_times_the_first():
    """chars-lstm with SGD at 30, warmed up over 30 steps (a task the fault benchmark does not
    use): the loss climbs from step ~20 and passes four times its first at step 29."""
    torch.manual_seed(1001)
    task = get_task(
        "chars-lstm", hidden=64, corpus_chars=60_000, block_size=32, train_size=1600, val_size=256
    )
    model = task.make_model(1001)
    optimizer = torch.optim.SGD(model.parameters(), lr=30.0, momentum=0.9)
    scheduler = LRScheduler(optimizer, warmup(cosine(30.0, 170), 30))  # the tuning run's schedule
    found: list = []
    panel = Instruments(on_finding=found.append).attach(optimizer, model=model)
    first, blown = None, None
    for step, (inputs, targets) in enumerate(task.train_loader(16, 1001)):
        optimizer.zero_grad()
        loss = task.loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
        scheduler.step()
        value = loss.item()
        panel.observe_step(step, value)
        first = value if first is None else first
        if not math.isfinite(value) or value > 4 * first:
            blown = step
            break
    panel.take()
    assert blown is not None
    divergence = [f for f in found if f.kind == "divergence"]
    assert divergence and divergence[0].step < blown - 5  # found 7 steps ahead (22 and 29 at this seed)
