"""GradualUnfreezer: one layer group more every k epochs, and the weights really train."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from lrlab.finetune import GradualUnfreezer, param_groups
from lrlab.schedules import constant
from lrlab.torch import LRScheduler


def trainable(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_default_groups_are_top_level_children_last_first(small):
    unfreezer = GradualUnfreezer(small, every=2)
    assert unfreezer.groups == [["head"], ["body"], ["stem"]]
    assert trainable(small) == {"head.weight", "head.bias"}
    schedule = {e: unfreezer.trainable_groups(e) for e in range(1, 9)}
    assert schedule == {1: 1, 2: 1, 3: 2, 4: 2, 5: 3, 6: 3, 7: 3, 8: 3}


def test_on_epoch_start_returns_what_it_unfroze(small):
    unfreezer = GradualUnfreezer(small, every=1)
    assert unfreezer.on_epoch_start(1) == []
    assert unfreezer.on_epoch_start(2) == ["body.weight", "body.bias"]
    assert unfreezer.on_epoch_start(2) == []
    assert unfreezer.on_epoch_start(3) == ["stem.0.weight", "stem.0.bias", "stem.1.weight", "stem.1.bias"]
    assert trainable(small) == {n for n, _ in small.named_parameters()}


def test_resumed_run_gets_every_due_group_at_once(small):
    unfreezer = GradualUnfreezer(small, every=2)
    assert len(unfreezer.on_epoch_start(5)) == 6
    assert trainable(small) == {n for n, _ in small.named_parameters()}


def test_custom_groups_in_unfreeze_order(small):
    unfreezer = GradualUnfreezer(small, every=1, groups=[["head", "body"], ["stem.1"]])
    assert trainable(small) == {
        "head.weight",
        "head.bias",
        "body.weight",
        "body.bias",
        "stem.0.weight",
        "stem.0.bias",
    }
    assert unfreezer.on_epoch_start(2) == ["stem.1.weight", "stem.1.bias"]


def test_unfreezing_reaches_a_group_the_param_groups_froze(small):
    param_groups(small, 0.1, freeze=["stem", "body"])
    unfreezer = GradualUnfreezer(small, every=1)
    assert unfreezer.on_epoch_start(2) == ["body.weight", "body.bias"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"every": 0}, "every must be an integer >= 1", id="every0"),
        pytest.param({"every": 1.5}, "every must be an integer >= 1", id="every-float"),
        pytest.param(
            {"every": 1, "groups": [["tail"]]}, r"groups\[0\]: \['tail'\] matches no parameter", id="dead"
        ),
        pytest.param({"every": 1, "groups": []}, "groups must be a non-empty list", id="empty"),
    ],
)
def test_bad_input_names_it(small, kwargs, message):
    with pytest.raises(ValueError, match=message):
        GradualUnfreezer(small, **kwargs)


def test_epoch_must_be_one_based(small):
    with pytest.raises(ValueError, match="epoch must be an integer >= 1"):
        GradualUnfreezer(small, every=1).on_epoch_start(0)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_a_layer_trains_from_its_epoch_on_and_not_before(small, optimizer):
    # Real training: 3 epochs of 4 steps, every=1 -> head from epoch 1, body from 2, stem from 3.
    torch.manual_seed(1)
    x, y = torch.randn(32, 1, 4, 4), torch.randint(0, 3, (32,))
    unfreezer = GradualUnfreezer(small, every=1)
    groups = param_groups(small, 0.05, rules={"head": 10.0}, weight_decay=0.01)
    opt = (
        torch.optim.SGD(groups, lr=0.05, momentum=0.9)
        if optimizer == "sgd"
        else torch.optim.AdamW(groups, lr=0.05)
    )
    sched = LRScheduler(opt, constant(0.05))
    changed_by_epoch = {}
    for epoch in (1, 2, 3):
        unfreezer.on_epoch_start(epoch)
        before = {n: p.detach().clone() for n, p in small.named_parameters()}
        for i in range(4):
            opt.zero_grad()
            nn.functional.cross_entropy(small(x[i * 8 : (i + 1) * 8]), y[i * 8 : (i + 1) * 8]).backward()
            opt.step()
            sched.step()
        changed_by_epoch[epoch] = {
            n.split(".")[0] for n, p in small.named_parameters() if not torch.equal(p, before[n])
        }
    assert changed_by_epoch == {1: {"head"}, 2: {"head", "body"}, 3: {"head", "body", "stem"}}


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 6), st.integers(1, 4), st.lists(st.integers(1, 30), min_size=1, max_size=8))
def test_trainable_groups_follow_the_schedule_in_any_epoch_order(n_layers, every, epochs):
    model = nn.Sequential(*[nn.Linear(2, 2) for _ in range(n_layers)])
    unfreezer = GradualUnfreezer(model, every=every)
    due = 1
    for epoch in epochs:
        unfrozen_now = unfreezer.on_epoch_start(epoch)
        expected = max(due, min(n_layers, 1 + (epoch - 1) // every))  # never re-freezes
        assert len(unfrozen_now) == 2 * (expected - due)
        due = expected
        trainable_layers = {int(n.split(".")[0]) for n, p in model.named_parameters() if p.requires_grad}
        assert trainable_layers == set(range(n_layers - due, n_layers))
