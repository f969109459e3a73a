"""The digits-transfer task: a real pre-trained backbone, few-shot digits 5-9."""

import pytest
import torch

from lrlab.finetune import GradualUnfreezer, param_groups
from lrlab.schedules import cosine
from lrlab.torch import LRScheduler
from lrlab.training.tasks import get_task
from lrlab.training.tasks.transfer import _pretrain, pretrained_backbone


@pytest.fixture(scope="module")
def task():
    return get_task("digits-transfer")


def test_few_shot_data_on_digits_five_to_nine(task):
    assert len(task.train_data) == 100
    assert torch.bincount(task.train_data.targets).tolist() == [20] * 5
    assert set(task.val_data.targets.tolist()) == {0, 1, 2, 3, 4}
    assert len(task.val_data) == 187  # every 5-9 digit of the 359-image validation split
    assert len(get_task("digits-transfer", shots=3).train_data) == 15


def test_backbone_is_pretrained_on_zero_to_four_and_deterministic():
    state, accuracy = pretrained_backbone(seed=0)
    assert accuracy > 0.95
    _pretrain.cache_clear()
    again, _ = pretrained_backbone(seed=0)
    assert (
        state.keys() == again.keys() == {"conv1.0.weight", "conv1.0.bias", "conv2.0.weight", "conv2.0.bias"}
    )
    assert all(torch.equal(state[k], again[k]) for k in state)


def test_make_model_loads_backbone_and_a_fresh_seeded_head(task):
    state, _ = pretrained_backbone()
    a, b, c = task.make_model(1), task.make_model(1), task.make_model(2)
    assert torch.equal(a.conv2[0].weight, state["conv2.0.weight"])
    assert torch.equal(a.head.weight, b.head.weight)
    assert not torch.equal(a.head.weight, c.head.weight)
    assert a.head.out_features == 5
    assert [name for name, _ in a.named_children()] == ["conv1", "conv2", "head"]


def test_first_pretraining_does_not_change_what_the_seed_gives(task):
    _pretrain.cache_clear()
    cold = task.make_model(5).head.weight
    warm = task.make_model(5).head.weight
    assert torch.equal(cold, warm)


def test_disk_cache_round_trips(tmp_path):
    state, accuracy = pretrained_backbone(seed=0, cache_dir=tmp_path)
    files = list(tmp_path.iterdir())
    assert [f.name for f in files] == ["digits-transfer-s0-c16-e8.pt"]
    loaded, loaded_accuracy = pretrained_backbone(seed=0, cache_dir=tmp_path)
    assert loaded_accuracy == accuracy
    assert all(torch.equal(state[k], loaded[k]) for k in state)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"shots": 0}, "shots must be an integer >= 1", id="shots"),
        pytest.param({"pretrain_epochs": 0}, "pretrain_epochs must be an integer >= 1", id="epochs"),
        pytest.param({"pretrained": "yes"}, "pretrained must be true or false", id="pretrained"),
    ],
)
def test_bad_options_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        get_task("digits-transfer", **options)


def _fine_tune(task, lr, seed=0, epochs=20, **finetune):
    torch.set_num_threads(1)
    model = task.make_model(seed)
    unfreeze = finetune.pop("unfreeze_every", None)
    unfreezer = GradualUnfreezer(model, every=unfreeze) if unfreeze else None
    optimizer = torch.optim.SGD(param_groups(model, lr, **finetune), lr=lr, momentum=0.9)
    scheduler = LRScheduler(optimizer, cosine(lr, total_steps=epochs * 5))
    for epoch in range(1, epochs + 1):
        if unfreezer:
            unfreezer.on_epoch_start(epoch)
        for x, y in task.train_loader(20, seed):
            optimizer.zero_grad()
            task.loss_fn(model(x), y).backward()
            optimizer.step()
            scheduler.step()
    return task.evaluate(model, task.val_loader(256))


def test_pretrained_backbone_transfers_and_head_multiplier_helps_at_low_lr(task):
    # 100 examples, 100 SGD steps at base LR 0.001: with the head at 10x the pre-trained
    # network reaches a validation loss under half that of a uniform LR; from-scratch
    # training is far behind.
    uniform = _fine_tune(task, 0.001)
    discriminative = _fine_tune(task, 0.001, rules={"head": 10.0})
    from_scratch = _fine_tune(get_task("digits-transfer", pretrained=False), 0.001)
    assert discriminative["val_accuracy"] > 0.93
    assert discriminative["val_loss"] < 0.5 * uniform["val_loss"]
    assert from_scratch["val_accuracy"] < 0.6


def test_gradual_unfreezing_with_frozen_backbone_trains_the_head_first(task):
    before = pretrained_backbone()[0]["conv1.0.weight"].clone()
    result = _fine_tune(task, 0.003, epochs=4, rules={"head": 10.0}, unfreeze_every=2)
    assert result["val_accuracy"] > 0.85
    # the unfreezer worked on a fresh model: the shared cached backbone is untouched
    assert torch.equal(pretrained_backbone()[0]["conv1.0.weight"], before)
