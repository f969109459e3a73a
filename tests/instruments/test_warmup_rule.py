"""The warmup rule: a run without warmup whose first steps were its largest and whose loss then
stalled is found; the same run warmed up is not, nor a run without warmup that trains well
(the case the earlier ratio-only rule found). Real torch runs of the calibration's tasks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lrlab.instruments.panel import Instruments
from lrlab.instruments.warmup import STALL_BLOCK, WARMUP_FACTOR, loss_stalled, needs_warmup
from lrlab.schedules import cosine, warmup
from lrlab.training.tasks import get_task

pytestmark = pytest.mark.usefixtures("one_thread")

STEPS = 105  # the rule judges at the 100th measured step
WINDOW = 3 * STALL_BLOCK


def _train(task, optimizer_fn, schedule, seed: int, *, batch: int, collect_every: int | None = None):
    """``STEPS`` steps of ``task`` under ``schedule`` with the warmup instrument: the findings,
    the update-ratio series and the losses. ``collect_every``: read the panel every so many
    steps (None: once, at the end)."""
    model = task.make_model(seed)
    optimizer = optimizer_fn(model.parameters())
    found = []
    panel = Instruments("warmup,update_ratio", on_finding=found.append).attach(optimizer)
    losses: list[float] = []
    ratio: list[float] = []
    while len(losses) < STEPS:
        for inputs, targets in task.train_loader(batch, seed):
            if len(losses) == STEPS:
                break
            for group in optimizer.param_groups:
                group["lr"] = float(schedule(len(losses)))
            loss = task.loss_fn(model(inputs), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            panel.observe_step(len(losses), losses[-1])
            if collect_every and len(losses) % collect_every == 0:
                ratio += panel.take()[0].get("update_ratio/group0", ([], []))[1]
    ratio += panel.take()[0].get("update_ratio/group0", ([], []))[1]
    return [f for f in found if f.kind == "warmup"], np.array(ratio), np.array(losses)


def _post_norm(warm: bool, collect_every: int | None = None):
    """A calibration run: post-norm, 3 layers of d_model 32, Adam at 0.03, cosine over 200 steps."""
    task = get_task("chars-transformer", d_model=32, layers=3, block_size=32, train_size=1600, val_size=16,
                    corpus_chars=60_000, norm="post")  # fmt: skip
    schedule = warmup(cosine(0.03, 170), 30) if warm else cosine(0.03, 200)
    return _train(task, lambda p: torch.optim.Adam(p, lr=0.03), schedule, 1000, batch=16,
                  collect_every=collect_every)  # fmt: skip


@pytest.fixture(scope="module")
def cold(one_thread):
    return _post_norm(warm=False)


@pytest.fixture(scope="module")
def warm(one_thread):
    return _post_norm(warm=True, collect_every=7)


def test_a_post_norm_transformer_without_warmup_is_found(cold):
    (finding,), ratio, losses = cold
    early, later = float(np.median(ratio[:10])), float(np.median(ratio[50:100]))
    assert finding.evidence["early_ratio"] == pytest.approx(early)
    assert finding.evidence["later_ratio"] == pytest.approx(later)
    assert early > WARMUP_FACTOR * later
    # the evidence: the means of the loss over the 60 steps up to the judgement, in 20-step blocks
    step = finding.step
    assert 99 <= step <= 100
    means = finding.evidence["loss_means"]
    assert means == pytest.approx(losses[step - WINDOW : step].reshape(3, STALL_BLOCK).mean(axis=1).tolist())
    assert means[2] > means[0] - 0.05  # stalled: no real fall over those steps
    assert "no warmup" in finding.message and "warm up the LR" in finding.message
    assert f"{means[0]:.3g}" in finding.message


def test_the_warmed_twin_is_not_found_and_trains_far_better(cold, warm):
    assert warm[0] == []
    assert cold[2][80:100].mean() - warm[2][80:100].mean() > 0.2  # the need is real


def test_a_linear_model_without_warmup_that_trains_well_is_not_found():
    """digits-linear, SGD with momentum at 0.3 (its loss still falling at step 100): the earlier
    rule (an early ratio above 0.1 and ten times the later one) called it a warmup problem."""
    task = get_task("digits-linear")
    sgd = lambda p: torch.optim.SGD(p, lr=0.3, momentum=0.9)  # noqa: E731
    found, ratio, losses = _train(task, sgd, cosine(0.3, 180), 1000, batch=32)
    assert found == []
    early, later = float(np.median(ratio[:10])), float(np.median(ratio[50:100]))
    assert early > 0.1 and early > 10 * later  # what the earlier rule fired on
    assert losses[80:100].mean() < min(losses[40:60].mean(), losses[:20].mean() / 3)  # still falling


def _burst(warm: bool, collect_every: int | None):
    """Steps of a chosen size on a constant loss (stalled by construction): 0.2 of the weights'
    size for 10 steps, 1e-3 after; with ``warm`` the LR ramps up over 50 steps."""
    w = torch.nn.Parameter(torch.full((100,), 10.0))
    optimizer = torch.optim.SGD([w], lr=1.0)
    found = []
    panel = Instruments("warmup", on_finding=found.append).attach(optimizer)
    for step in range(1, 121):
        optimizer.param_groups[0]["lr"] = min(1.0, step / 50) if warm else 1.0
        optimizer.zero_grad()
        (w.sum() * (2.0 if step <= 10 else 0.01)).backward()
        optimizer.step()
        panel.observe_step(step, 1.0)
        if collect_every and step % collect_every == 0:
            panel.take()
    panel.take()
    return [f.kind for f in found]


@pytest.mark.parametrize("collect_every", [None, 1, 30, 100])
def test_a_warmup_is_seen_however_often_the_panel_is_read(collect_every):
    # the LRs of the steps read in the same batch as the judgement count: a ramp read only at the
    # end is still a warmup
    assert _burst(warm=True, collect_every=collect_every) == []
    assert _burst(warm=False, collect_every=collect_every) == ["warmup"]


# ---------------------------------------------------------------- the pure rule

_LOSSES = st.lists(st.floats(0.0, 10.0, allow_nan=False), min_size=WINDOW, max_size=WINDOW)


@settings(max_examples=60, deadline=None)
@given(values=_LOSSES, shift=st.floats(-5.0, 5.0), scale=st.floats(0.1, 10.0))
def test_a_stall_does_not_depend_on_the_losses_level_or_unit(values, shift, scale):
    moved = [scale * v + shift for v in values]
    assert loss_stalled(moved) == loss_stalled(values) or _on_the_edge(values)


def _on_the_edge(values):
    blocks = np.asarray(values).reshape(3, STALL_BLOCK)
    means = blocks.mean(axis=1)
    error = blocks.std(axis=1).mean() / math.sqrt(STALL_BLOCK)
    return abs((means[0] - means[2]) - 0.5 * error) < 1e-9 * (1 + abs(means).max())


@settings(max_examples=60, deadline=None)
@given(values=_LOSSES)
def test_a_loss_that_never_falls_is_stalled_and_one_falling_steadily_is_not(values):
    assert loss_stalled(sorted(values))  # rising (or flat) through the window
    slope = 0.01 + max(values) / 100
    noise = np.asarray(values) / 10 * slope  # bounded by the fall of one step
    falling = [5.0 - slope * t + n for t, n in enumerate(noise)]
    assert not loss_stalled(falling)


@settings(max_examples=60, deadline=None)
@given(
    early=st.floats(0.0, 1.0),
    later=st.floats(1e-6, 1.0),
    values=_LOSSES,
)
def test_no_finding_after_a_warmup_and_only_with_early_steps_the_largest(early, later, values):
    assert not needs_warmup(early, later, True, values)
    if needs_warmup(early, later, False, values):
        assert early > WARMUP_FACTOR * later and loss_stalled(values)
    if early <= WARMUP_FACTOR * later:
        assert not needs_warmup(early, later, False, values)


def test_too_few_or_non_finite_losses_judge_nothing():
    assert not loss_stalled([3.0] * (WINDOW - 1))
    assert not loss_stalled([3.0] * (WINDOW - 1) + [math.inf])
    assert not needs_warmup(0.5, 0.01, False, [3.0] * (WINDOW - 1) + [math.nan])
    assert not needs_warmup(math.nan, 0.01, False, [3.0] * WINDOW)
    assert needs_warmup(0.5, 0.01, False, [3.0] * WINDOW)
