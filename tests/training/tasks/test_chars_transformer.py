"""chars-transformer's ``norm`` option: the default pre-norm model exactly as it was, a post-norm
variant (LayerNorm after each residual sum) through ``--task-option norm=post``, one clear error
for any other value."""

from __future__ import annotations

import math
import sys

import pytest
import torch
from torch import nn

from lrlab.cli import main
from lrlab.store.sqlite import Store
from lrlab.training.tasks import get_task
from lrlab.training.tasks._base import task_fingerprint
from lrlab.training.tasks.chars import VOCAB_SIZE
from lrlab.training.tasks.options import parse_options

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = {"corpus_chars": 5_000, "block_size": 16, "d_model": 32, "layers": 2}


class _PreNormBefore(nn.Module):
    """The pre-norm model as it was written before the option existed (the reference)."""

    def __init__(self, block_size: int, d_model: int, heads: int = 4, layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB_SIZE, d_model)
        self.position = nn.Parameter(torch.zeros(block_size, d_model))
        nn.init.normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(
            d_model, heads, dim_feedforward=4 * d_model, dropout=0.0, batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, VOCAB_SIZE)
        self.register_buffer(
            "mask", nn.Transformer.generate_square_subsequent_mask(block_size), persistent=False
        )

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        length = ids.shape[1]
        x = self.embed(ids) * math.sqrt(self.embed.embedding_dim) + self.position[:length]
        x = self.blocks(x, mask=self.mask[:length, :length], is_causal=True)
        return self.head(self.norm(x))


def _two_adam_steps(task, model):
    """The losses of two Adam steps at lr 1e-2 on the task's first batches (seed 0)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for (inputs, targets), _ in zip(task.train_loader(8, seed=0), range(2)):
        optimizer.zero_grad()
        loss = task.loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_the_default_is_the_pre_norm_model_as_before_bit_for_bit():
    task = get_task("chars-transformer", **SMALL)
    model = task.make_model(3)
    torch.manual_seed(3)
    before = _PreNormBefore(16, 32)
    for (name, now), (_, then) in zip(model.state_dict().items(), before.state_dict().items(), strict=True):
        assert torch.equal(now, then), name
    losses = _two_adam_steps(task, model)
    assert losses == _two_adam_steps(task, before)  # the first step's loss and the one after it, exactly
    assert "norm" not in task.options  # the fingerprint its stored runs carry is unchanged


def test_post_norm_puts_the_layer_norms_after_the_residual_sums():
    pre = get_task("chars-transformer", **SMALL).make_model(0)
    task = get_task("chars-transformer", **SMALL, norm="post")
    post = task.make_model(0)
    assert all(not layer.norm_first for layer in post.blocks.layers)
    assert all(layer.norm_first for layer in pre.blocks.layers)
    assert isinstance(post.norm, nn.Identity)  # each block already ends in a LayerNorm
    # the same random draws: every weight the two share is equal, only the head's input differs
    shared = {k: v for k, v in pre.state_dict().items() if not k.startswith("norm.")}
    assert shared.keys() == post.state_dict().keys()
    assert all(torch.equal(v, post.state_dict()[k]) for k, v in shared.items())
    ids = torch.randint(0, VOCAB_SIZE, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        hidden = post.blocks(post.embed(ids) * math.sqrt(32) + post.position, mask=post.mask, is_causal=True)
    # a LayerNorm is the last thing each position passes: mean 0, variance 1 (its weights at init)
    assert hidden.mean(-1).abs().max() < 1e-5
    assert (hidden.var(-1, unbiased=False) - 1).abs().max() < 1e-3
    assert task.options["norm"] == "post"
    assert (
        task_fingerprint(task)["options"]
        != task_fingerprint(get_task("chars-transformer", **SMALL))["options"]
    )


def test_post_norm_is_causal_and_trains():
    task = get_task("chars-transformer", **SMALL, norm="post")
    model = task.make_model(0).eval()
    ids = torch.randint(0, VOCAB_SIZE, (1, 16), generator=torch.Generator().manual_seed(1))
    changed = ids.clone()
    changed[0, 9:] = (changed[0, 9:] + 1) % VOCAB_SIZE
    with torch.no_grad():
        torch.testing.assert_close(model(ids)[0, :9], model(changed)[0, :9])
    start = task.evaluate(model, task.val_loader(64))["val_loss"]
    assert abs(start - math.log(VOCAB_SIZE)) < 0.7
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _epoch in range(3):
        for inputs, targets in task.train_loader(16, seed=0):
            optimizer.zero_grad()
            task.loss_fn(model(inputs), targets).backward()
            optimizer.step()
    assert task.evaluate(model.eval(), task.val_loader(64))["val_loss"] < start - 0.5


def test_the_option_reads_from_its_text_form():
    task = get_task("chars-transformer", **SMALL, **parse_options(["norm=post"]))
    assert task.options["norm"] == "post" and not task.make_model(0).blocks.layers[0].norm_first


@pytest.mark.parametrize("value", ["mid", "Post", 1])
def test_another_norm_is_one_clear_error(value):
    with pytest.raises(ValueError) as info:
        get_task("chars-transformer", **SMALL, norm=value)
    assert str(info.value) == f"task 'chars-transformer': norm must be one of pre, post, got {value!r}"


def test_the_cli_names_a_bad_norm_in_one_line_exit_2_and_stores_nothing(tmp_path, monkeypatch, capsys):
    db = tmp_path / "runs.db"
    args = ["lrlab", "find", "--task", "chars-transformer", "--task-option", "norm=mid", "--db", str(db)]
    monkeypatch.setattr(sys, "argv", args)
    monkeypatch.setenv("COLUMNS", "300")
    with pytest.raises(SystemExit) as info:
        main()
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert "task 'chars-transformer': norm must be one of pre, post, got 'mid'" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not db.exists() or not Store(db).runs()
