"""find_lr(repeats=N): N range tests from the same state, each on the next num_iter steps'
batches, and the rules read their mean curve."""

import math

import numpy as np
import pytest
import torch
from finder_problems import make_blobs
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn import functional as F

from lrlab.finder import find_lr
from lrlab.finder.range import _mean_curve

NUM_ITER = 30


def batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """20 fixed batches, in a list: no sampler, so a rotated copy is the oracle of a skip."""
    data = make_blobs(320, seed=2)
    return [(data.tensors[0][i : i + 16], data.tensors[1][i : i + 16]) for i in range(0, 320, 16)]


def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))


def run(loader, **options):
    net = model()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.0, momentum=0.9)
    return net, optimizer, find_lr(net, optimizer, F.cross_entropy, loader, num_iter=NUM_ITER, end_lr=5.0, **options)


def test_one_repeat_is_the_plain_test_bit_for_bit():
    _, _, plain = run(batches())
    _, _, once = run(batches(), repeats=1)
    np.testing.assert_array_equal(plain.lrs, once.lrs)
    np.testing.assert_array_equal(plain.losses, once.losses)
    assert plain.suggestions == once.suggestions
    assert plain.lr == once.lr
    assert "repeat_losses" not in once.config


def test_three_repeats_read_the_mean_of_three_tests_on_successive_batches():
    loader = batches()
    _, _, result = run(loader, repeats=3)
    singles = []
    for k in range(3):
        shift = (k * NUM_ITER) % len(loader)
        singles.append(run(loader[shift:] + loader[:shift])[2])
    length = min(len(s) for s in singles)
    assert len(result) == length
    expected = np.mean([s.losses[:length] for s in singles], axis=0)
    np.testing.assert_allclose(result.losses, expected, rtol=1e-12)
    np.testing.assert_array_equal(result.lrs, singles[0].lrs[:length])
    for k, s in enumerate(singles):  # each repeat's own curve is kept, as it was measured
        np.testing.assert_allclose(np.asarray(result.config["repeat_losses"][k], dtype=float), s.losses, rtol=0)
    assert result.config["repeats"] == 3
    # the curves differ (different batches), so the mean is not any one of them
    assert not np.allclose(singles[0].losses[:length], singles[1].losses[:length])


def test_state_is_restored_after_repeats():
    net = model()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in net.parameters()]
    find_lr(net, optimizer, F.cross_entropy, batches(), num_iter=NUM_ITER, repeats=3)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    assert optimizer.state_dict()["state"] == {}
    assert optimizer.param_groups[0]["lr"] == 1e-3


def test_progress_counts_every_step_of_every_repeat():
    seen = []
    run(batches(), repeats=2, progress=lambda i, total, lr, loss: seen.append((i, total)))
    assert [t for _, t in seen] == [2 * NUM_ITER] * len(seen)
    assert [i for i, _ in seen] == sorted(i for i, _ in seen)
    assert seen[0][0] == 0
    assert seen[-1][0] >= NUM_ITER  # the second test reported after the first


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "3"])
def test_repeats_must_be_a_positive_integer(value):
    with pytest.raises(ValueError, match="repeats must be an integer >= 1"):
        run(batches(), repeats=value)


curve = st.lists(st.one_of(st.floats(0.01, 10.0), st.just(math.nan)), min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(curve, st.booleans()), min_size=1, max_size=4))
def test_mean_curve_is_the_nan_mean_up_to_the_shortest(tests):
    shaped = [([float(i) for i in range(len(losses))], losses, diverged) for losses, diverged in tests]
    lrs, mean, diverged = _mean_curve(shaped)
    length = min(len(losses) for losses, _ in tests)
    assert len(lrs) == len(mean) == length
    for i in range(length):
        values = [losses[i] for losses, _ in tests if not math.isnan(losses[i])]
        if values:
            assert mean[i] == pytest.approx(sum(values) / len(values), rel=1e-12)
        else:
            assert math.isnan(mean[i])
    assert diverged == any(d and len(losses) == length for losses, d in tests)
