"""The warmup rule: a run without warmup whose first steps were its largest and whose loss then
stalled far above its first value is found; the same run warmed up is not, nor a run without
warmup that trains well (a linear model, the case an earlier ratio-only rule found; a pre-norm
transformer whose loss is as flat late on but far lower). Real torch runs of the calibration's
tasks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lrlab.instruments.panel import Instruments
from lrlab.instruments.warmup import (
    STALL_DROP,
    STALL_PROGRESS,
    WARMUP_FACTOR,
    loss_stall,
    loss_stalled,
    needs_warmup,
)
from lrlab.schedules import cosine, warmup
from lrlab.training.tasks import get_task

pytestmark = pytest.mark.usefixtures("one_thread")

STEPS = 105  # the rule judges at the 100th measured step
WINDOW = 60  # the losses the panel keeps (the rule reads the last third of the steps so far)
JUDGED = 100  # the steps seen at the judgement


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
    # the evidence: the loss over the last third of the steps so far, against the first loss
    drop, progress = loss_stall(losses[step - WINDOW : step], losses[0], step)
    assert finding.evidence["loss_drop"] == pytest.approx(drop)
    assert finding.evidence["loss_progress"] == pytest.approx(progress)
    assert finding.evidence["first_loss"] == pytest.approx(losses[0])
    assert drop < STALL_DROP and progress < STALL_PROGRESS
    assert losses[step - 10 : step].mean() > 0.55 * losses[0]  # still near where it started
    assert "no warmup" in finding.message and "warm up the LR" in finding.message
    assert f"{progress:.0%} below its first value" in finding.message


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


def test_a_pre_norm_transformer_without_warmup_flat_but_far_lower_is_not_found():
    """pre-norm, 2 layers of d_model 32, Adam at 0.01 without warmup (within 0.02 nats of its warmed
    twin at the end): its loss is as flat over steps 67-100 as a stuck run's, but half its first value."""
    task = get_task("chars-transformer", d_model=32, layers=2, block_size=32, train_size=1600, val_size=16,
                    corpus_chars=60_000, norm="pre")  # fmt: skip
    adam = lambda p: torch.optim.Adam(p, lr=0.01)  # noqa: E731
    found, ratio, losses = _train(task, adam, cosine(0.01, 200), 1000, batch=16)
    assert found == []
    early, later = float(np.median(ratio[:10])), float(np.median(ratio[50:100]))
    assert early > WARMUP_FACTOR * later  # its first steps were the largest too
    drop, progress = loss_stall(losses[JUDGED - WINDOW : JUDGED], losses[0], JUDGED)
    assert drop < STALL_DROP  # flat enough for a plateau test alone
    assert progress > STALL_PROGRESS + 0.05  # but far below where it started


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

_LOSSES = st.lists(st.floats(0.1, 10.0, allow_nan=False), min_size=WINDOW, max_size=WINDOW)


@settings(max_examples=60, deadline=None)
@given(values=_LOSSES, first=st.floats(0.1, 20.0), scale=st.floats(0.1, 10.0))
def test_a_stall_does_not_depend_on_the_losses_unit(values, first, scale):
    moved = [scale * v for v in values]
    same = loss_stalled(moved, scale * first, JUDGED) == loss_stalled(values, first, JUDGED)
    assert same or _on_the_edge(values, first)


def _on_the_edge(values, first):
    drop, progress = loss_stall(values, first, JUDGED)
    return abs(drop - STALL_DROP) < 1e-9 or abs(progress - STALL_PROGRESS) < 1e-9


@settings(max_examples=60, deadline=None)
@given(values=_LOSSES, above=st.floats(1.0, 1.8))
def test_a_loss_that_never_falls_near_its_start_is_stalled_and_one_falling_or_far_below_is_not(values, above):
    rising = sorted(values)
    last_third = rising[-math.ceil(JUDGED / 3) :]
    assert loss_stalled(rising, above * last_third[0], JUDGED)  # within 45% of the first loss, not falling
    assert not loss_stalled(rising, 2 * rising[-1], JUDGED)  # half the first loss: it learned
    slope = 0.01 + max(values) / 100
    noise = np.asarray(values) / 10 * slope  # bounded by the fall of one step
    falling = [5.0 - slope * t + n for t, n in enumerate(noise)]
    assert not loss_stalled(falling, falling[0], JUDGED)


def test_a_loss_creeping_down_slowly_near_its_start_is_stalled():
    """Down by 3% over the last third of the steps, 30% below the first loss: a run stuck near
    the loss of a model that ignores its input (a stall judged by block means missed these)."""
    creeping = [3.2 - 0.1 * t / WINDOW + 0.02 * math.sin(3 * t) for t in range(WINDOW)]
    drop, progress = loss_stall(creeping, 4.5, JUDGED)
    assert 0.01 < drop < STALL_DROP and progress < STALL_PROGRESS
    assert needs_warmup(0.05, 0.005, False, creeping, 4.5, JUDGED)


@settings(max_examples=60, deadline=None)
@given(
    early=st.floats(0.0, 1.0),
    later=st.floats(1e-6, 1.0),
    values=_LOSSES,
    first=st.floats(0.1, 20.0),
)
def test_no_finding_after_a_warmup_and_only_with_early_steps_the_largest(early, later, values, first):
    assert not needs_warmup(early, later, True, values, first, JUDGED)
    if needs_warmup(early, later, False, values, first, JUDGED):
        assert early > WARMUP_FACTOR * later and loss_stalled(values, first, JUDGED)
    if early <= WARMUP_FACTOR * later:
        assert not needs_warmup(early, later, False, values, first, JUDGED)


def test_too_few_or_non_finite_losses_judge_nothing():
    third = math.ceil(JUDGED / 3)
    assert loss_stall([3.0] * (third - 1), 4.0, JUDGED) is None
    assert not loss_stalled([3.0] * (third - 1), 4.0, JUDGED)
    assert not loss_stalled([3.0] * WINDOW + [math.inf], 4.0, JUDGED)
    assert not needs_warmup(0.5, 0.01, False, [3.0] * WINDOW + [math.nan], 4.0, JUDGED)
    assert not needs_warmup(0.5, 0.01, False, [3.0] * WINDOW, math.nan, JUDGED)
    assert not needs_warmup(math.nan, 0.01, False, [3.0] * WINDOW, 4.0, JUDGED)
    assert needs_warmup(0.5, 0.01, False, [3.0] * WINDOW, 4.0, JUDGED)


def test_a_schedule_that_halved_its_lr_by_step_50_is_not_judged_for_warmup():
    from lrlab.instruments import Instruments

    def fed(lr_at):
        found = []
        panel = Instruments(on_finding=found.append)
        for count in range(120):
            ratio = 0.02 if count < 10 else 0.002  # the first steps ten times the later ones
            panel.observe_update(count, [lr_at(count)], [ratio])
            panel.observe_step(count, 3.0 if count else 4.5)  # stalled far above where it could be
        panel.take()
        return [f.kind for f in found]

    assert "warmup" in fed(lambda t: 0.1)  # a constant LR: the early steps are the outliers
    assert "warmup" not in fed(lambda t: 0.1 * 0.01 ** (t / 120))  # an exponential decay: smaller by design
