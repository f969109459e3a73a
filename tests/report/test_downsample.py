"""Downsampling keeps the shape that matters: extremes per bucket, ends, the divergence point."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from lrlab.plot.downsample import downsample, downsample_indices

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
values = st.one_of(finite, st.just(np.inf), st.just(np.nan))


@settings(max_examples=150, deadline=None)
@given(
    y=arrays(np.float64, st.integers(1, 3000), elements=values),
    max_points=st.integers(8, 400),
    data=st.data(),
)
def test_downsample_keeps_ends_extremes_first_nonfinite_and_forced_points(y, max_points, data):
    n = len(y)
    keep = data.draw(st.lists(st.integers(0, n - 1), max_size=3))
    idx = downsample_indices(y, max_points, keep)
    assert np.all(np.diff(idx) > 0), "sorted and unique"
    assert idx[0] == 0 and idx[-1] == n - 1
    assert set(keep) <= set(idx.tolist())
    if n <= max_points:
        assert len(idx) == n
        return
    assert len(idx) <= max_points + len(keep)
    ok = np.isfinite(y)
    if not ok.all():
        assert int(np.argmin(ok)) in idx, "the first non-finite point (divergence) is kept"
    if ok.any():
        kept = y[idx][np.isfinite(y[idx])]
        assert kept.max() == y[ok].max(), "the highest spike is kept"
        assert kept.min() == y[ok].min()


@settings(max_examples=60, deadline=None)
@given(y=arrays(np.float64, st.integers(500, 4000), elements=finite), max_points=st.integers(20, 300))
def test_every_point_lies_inside_the_envelope_of_its_neighbourhood(y, max_points):
    idx = downsample_indices(y, max_points)
    buckets = max(1, (max_points - 2) // 2)
    edges = np.linspace(0, len(y), buckets + 1).astype(int)
    for a, b in itertools.pairwise(edges):
        inside = idx[(idx >= a) & (idx < b)]
        assert y[inside].max() == y[a:b].max() and y[inside].min() == y[a:b].min()


def test_a_single_spike_in_a_long_series_survives():
    y = np.ones(10_000)
    y[7_777] = 50.0
    x, kept = downsample(np.arange(10_000), y, max_points=100)
    assert 7_777 in x and kept.max() == 50.0 and len(x) <= 100


def test_the_divergence_point_survives_even_when_finite():
    y = np.linspace(2.0, 0.5, 10_000)
    idx = downsample_indices(y, 50, keep=[4321])
    assert 4321 in idx


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"values": np.zeros((2, 2))}, "one-dimensional"),
        ({"values": np.zeros(10), "max_points": 7}, "max_points"),
        ({"values": np.zeros(10), "keep": [10]}, "keep"),
    ],
)
def test_bad_arguments_raise_naming_the_parameter(kwargs, message):
    with pytest.raises(ValueError, match=message):
        downsample_indices(**kwargs)


def test_x_and_y_of_different_shapes_are_rejected():
    with pytest.raises(ValueError, match="same shape"):
        downsample(np.arange(3), np.arange(4.0))
