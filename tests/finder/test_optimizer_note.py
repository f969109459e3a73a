"""The default rules were fitted on SGD and Adam and checked on Nesterov SGD and AdamW; for any
other optimizer the reason says to check the LR (and, for RMSprop and Adagrad, how far off
lrlab's benchmark measured it). The LR itself is the same rule's."""

import pytest
import torch
from finder_problems import make_blobs
from torch.nn import functional as F
from torch.utils.data import DataLoader

from lrlab.finder import find_lr, suggest


def loader() -> DataLoader:
    return DataLoader(make_blobs(), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(1))


def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_checked_optimizers_get_no_note(name):
    assert suggest.optimizer_note(name) is None


def test_measured_optimizers_say_how_far_off_and_what_to_do():
    for name, low in (("RMSprop", "1.9x to 16x"), ("Adagrad", "3.6x to 26x")):
        note = suggest.optimizer_note(name)
        assert note is not None
        assert note.startswith(f"{name}: the rule was fitted on Adam")
        assert f"{low} below the best LR" in note
        assert "lrlab tune" in note


def test_other_optimizers_are_named_as_unchecked():
    note = suggest.optimizer_note("Rprop")
    assert note == ("Rprop is not among the optimizers the rule was fitted or checked on (SGD, Adam, AdamW): "
                    "check the LR with a short sweep")  # fmt: skip


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda p: torch.optim.Adagrad(p), "Adagrad"),
        (lambda p: torch.optim.RMSprop(p), "RMSprop"),
        (lambda p: torch.optim.NAdam(p), "NAdam"),
    ],
)
def test_find_lr_adds_the_note_and_keeps_the_adaptive_rule(make, name):
    net = model()
    result = find_lr(net, make(net.parameters()), F.cross_entropy, loader(), num_iter=60)
    assert result.problem is None
    assert result.rule == "minimum/30"
    assert result.lr == pytest.approx(10 * result.suggestions["minimum/10"] / 30, rel=1e-12)
    assert result.reason.endswith(suggest.optimizer_note(name))


def test_adam_and_sgd_reasons_have_no_note():
    for make in (lambda p: torch.optim.Adam(p), lambda p: torch.optim.SGD(p, lr=0.0, momentum=0.9)):
        net = model()
        result = find_lr(net, make(net.parameters()), F.cross_entropy, loader(), num_iter=60)
        assert "fitted or checked on" not in result.reason
        assert "fitted on Adam" not in result.reason
        assert result.reason.endswith("(docs/finder.md)")
