"""find_lr on any batch: dicts by key names, (x, y, *extra) tuples, a batch_fn, a model that
returns its own loss; one-shot iterators refused; torch's private flags and a tensor LR kept."""

import types
import warnings

import pytest
import torch
from finder_problems import make_blobs, make_classifier
from torch.nn import functional as F

from lrlab.finder import find_lr


def tuple_batches(batch_size=32):
    data = make_blobs()
    return [
        (data.tensors[0][i : i + batch_size], data.tensors[1][i : i + batch_size])
        for i in range(0, len(data), batch_size)
    ]


def curve(loader, **kwargs):
    """The raw range-test losses of a fresh seed-0 classifier on ``loader``."""
    model = make_classifier(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = kwargs.pop("loss_fn", F.cross_entropy)
    wrap = kwargs.pop("wrap", None)
    result = find_lr(wrap(model) if wrap else model, optimizer, loss_fn, loader, num_iter=30, confirm=0, **kwargs)
    return result


class ReturnsItsLoss(torch.nn.Module):
    """A Hugging Face-style model: forward(input_ids=..., labels=...) -> object with .loss."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, input_ids, labels=None):
        logits = self.inner(input_ids)
        loss = None if labels is None else F.cross_entropy(logits, labels)
        return types.SimpleNamespace(loss=loss, logits=logits)


def test_every_batch_shape_gives_the_same_curve_as_pairs():
    reference = curve(tuple_batches()).losses
    dicts = [{"input_ids": x, "labels": y, "attention_mask": torch.ones(len(y))} for x, y in tuple_batches()]
    shapes = {
        "dict by keys": curve(dicts, inputs="input_ids", targets="labels"),
        "extra items": curve([(x, y, torch.ones(len(y)), "id") for x, y in tuple_batches()]),
        "batch_fn": curve([{"x": x, "y": y} for x, y in tuple_batches()], batch_fn=lambda b: (b["x"], b["y"])),
        "model's own loss": curve(
            [{"input_ids": x, "labels": y} for x, y in tuple_batches()], loss_fn=None, wrap=ReturnsItsLoss
        ),
    }
    for name, result in shapes.items():
        assert torch.equal(torch.from_numpy(result.losses), torch.from_numpy(reference)), name
    assert len(reference) == 30 and reference[0] > reference[-5]


def test_a_model_returning_a_scalar_or_a_mapping_works_without_loss_fn():
    class Scalar(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x, y):
            return {"loss": F.cross_entropy(self.inner(x), y)}

    reference = curve(tuple_batches()).losses
    got = curve([{"x": x, "y": y} for x, y in tuple_batches()], loss_fn=None, wrap=Scalar).losses
    assert torch.equal(torch.from_numpy(got), torch.from_numpy(reference))


@pytest.mark.parametrize(
    ("batches", "kwargs", "message"),
    [
        pytest.param([{"a": torch.zeros(2, 4)}], {}, "needs inputs= and targets= key names", id="dict-no-keys"),
        pytest.param(
            [{"input_ids": torch.zeros(2, 4), "y": torch.zeros(2, dtype=torch.long)}],
            {"inputs": "input_ids", "targets": "labels"},
            "the batch has no key 'labels'",
            id="missing-key",
        ),
        pytest.param([(torch.zeros(2, 4),)], {}, "got tuple of length 1", id="short-tuple"),
        pytest.param(tuple_batches(), {"batch_fn": lambda b: b[0]}, "batch_fn must return", id="batch-fn"),
        pytest.param(tuple_batches(), {"batch_fn": len, "inputs": "x"}, "not both", id="both"),
    ],
)
def test_batches_that_cannot_be_split_are_named_in_one_line(batches, kwargs, message):
    model = make_classifier()
    with pytest.raises(ValueError, match=message) as info:
        find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), F.cross_entropy, batches, num_iter=5, **kwargs)
    assert "\n" not in str(info.value)


def test_model_without_loss_is_named():
    model = ReturnsItsLoss(make_classifier())
    batches = [{"input_ids": x} for x, _ in tuple_batches()]
    with pytest.raises(ValueError, match="without a loss"):
        find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), None, batches, num_iter=5)


def test_a_one_shot_generator_is_refused_at_once_and_not_consumed():
    model = make_classifier()
    generator = (batch for batch in tuple_batches())
    with pytest.raises(ValueError, match=r"one-shot iterator .*pass a DataLoader, a list of batches"):
        find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), F.cross_entropy, generator)
    first = next(generator)
    assert torch.equal(first[0], tuple_batches()[0][0])
    with pytest.raises(ValueError, match="val_loader is a one-shot iterator"):
        find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), F.cross_entropy, tuple_batches(),
                val_loader=iter(tuple_batches()))  # fmt: skip


@pytest.mark.parametrize("stepped_before", [False, True], ids=["fresh", "stepped"])
def test_the_schedulers_call_order_flag_is_as_before(stepped_before):
    model = make_classifier()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10)
    if stepped_before:
        F.cross_entropy(model(torch.randn(4, 4)), torch.tensor([0, 1, 2, 0])).backward()
        optimizer.step()
    before = dict(vars(optimizer))
    find_lr(model, optimizer, F.cross_entropy, tuple_batches(), num_iter=20, confirm=0)
    assert ("_opt_called" in vars(optimizer)) == ("_opt_called" in before) == stepped_before
    assert set(vars(optimizer)) == set(before)
    assert vars(optimizer).get("_opt_called") == before.get("_opt_called")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scheduler.step()
    order_warnings = [w for w in caught if "before `optimizer.step()`" in str(w.message)]
    # torch warns exactly when the user has not stepped the optimizer, as without find_lr.
    assert len(order_warnings) == (0 if stepped_before else 1)


def test_a_tensor_lr_keeps_its_identity_and_value():
    model = make_classifier()
    lr = torch.tensor(0.01)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    result = find_lr(model, optimizer, F.cross_entropy, tuple_batches(), num_iter=30, confirm=3)
    assert optimizer.param_groups[0]["lr"] is lr
    assert torch.equal(lr, torch.tensor(0.01)) and lr.dtype == torch.float32
    assert result.lrs[-1] == pytest.approx(10.0) or result.diverged
