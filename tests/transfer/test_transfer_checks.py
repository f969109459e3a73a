"""A transfer's arguments: each bad one is one line that names what is wrong and what is allowed."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import lrlab
from lrlab.transfer.checks import TransferError, check_axis, check_proxies, factory_keywords


def mlp(width: int = 8, train_size: int = 300):
    raise AssertionError("never called by a check")


def test_fewer_than_three_proxies_is_refused_and_names_how_many():
    with pytest.raises(TransferError, match=r"at least 3 distinct proxies .* got 2 \(32, 64\)"):
        check_proxies([32, 64, 64], 1024, "width")


def test_a_target_inside_the_proxies_range_is_refused():
    with pytest.raises(TransferError, match=r"target width 48 lies inside the proxies' range 32\.\.128"):
        check_proxies([32, 64, 128], 48, "width")


def test_a_target_below_the_smallest_proxy_is_allowed():
    assert check_proxies([128, 32, 64], 8, "width") == ((32.0, 64.0, 128.0), 8.0)


def test_run_axes_take_whole_numbers_only():
    with pytest.raises(TransferError, match=r"proxy steps must be a whole number"):
        check_proxies([1, 1.5, 4], 16, "steps")


@pytest.mark.parametrize("bad", [0, -2, math.nan, math.inf, "64", True])
def test_a_proxy_that_is_no_positive_number_is_refused(bad):
    with pytest.raises(TransferError, match=r"proxy width must be a number > 0"):
        check_proxies([32, bad, 128], 1024, "width")


def test_an_axis_the_factory_does_not_take_names_the_keywords_it_takes():
    with pytest.raises(
        TransferError, match=r"mlp\(\) takes no keyword 'depth' \(it takes: width, train_size\)"
    ):
        check_axis(mlp, "depth")


def test_run_axes_and_keywords_pass():
    check_axis(mlp, "width")
    check_axis(mlp, "steps")
    check_axis(mlp, "batch_size")
    check_axis(lambda **kw: None, "anything")  # **kwargs takes any keyword
    assert factory_keywords(mlp) == (("width", "train_size"), False)


def test_the_api_refuses_before_anything_is_stored(tmp_path):
    db = tmp_path / "runs.db"
    with pytest.raises(TransferError, match="takes no keyword 'depth'"):
        lrlab.transfer(mlp, axis="depth", proxies=[4, 8, 16], target=64, store=db)
    with pytest.raises(TransferError, match="seeds must be"):
        lrlab.transfer(mlp, axis="width", proxies=[4, 8, 16], target=64, seeds=0, store=db)
    with pytest.raises(TransferError, match="parametrization must be one of standard, mup"):
        lrlab.transfer(mlp, axis="width", proxies=[4, 8, 16], target=64, parametrization="ntk", store=db)
    for bad, message in [({"epochs": 0}, "epochs must be a whole number >= 1"), ({"lr": -1.0}, "lr must be a number > 0"),
                         ({"max_extra": -1}, "max_extra must be"), ({"level": 1.5}, "level must be a number between"),
                         ({"batch_size": 2.5}, "batch_size must be a whole number")]:  # fmt: skip
        with pytest.raises(TransferError, match=message):
            lrlab.transfer(mlp, axis="width", proxies=[4, 8, 16], target=64, store=db, **bad)
    with pytest.raises(TransferError, match="schedule must be one of"):
        lrlab.transfer(mlp, axis="width", proxies=[4, 8, 16], target=64, schedule="zigzag", store=db)
    assert not db.exists()


@given(
    st.lists(st.floats(min_value=1e-3, max_value=1e6, allow_nan=False), min_size=0, max_size=6),
    st.floats(min_value=1e-3, max_value=1e7, allow_nan=False),
)
def test_checked_proxies_are_three_or_more_sorted_distinct_with_the_target_outside(proxies, target):
    try:
        values, goal = check_proxies(proxies, target, "width")
    except TransferError as exc:
        assert "\n" not in str(exc)
        distinct = sorted(set(proxies))
        assert len(distinct) < 3 or distinct[0] <= target <= distinct[-1]
        return
    assert len(values) >= 3 and list(values) == sorted(set(values))
    assert goal < values[0] or goal > values[-1]


def test_a_schedule_spec_with_placeholders_peaks_at_each_lr():
    from lrlab.transfer.proxies import build_schedule

    spec = "warmup(cosine(lr={lr}, total_steps={total_steps}), steps={steps_per_epoch})"
    schedule = build_schedule(spec, 0.1, 100, 10)
    assert str(schedule) == "warmup(cosine(lr=0.1, total_steps=100), steps=10)"
    assert build_schedule("cosine", 0.05, 40, 4)(0) == pytest.approx(0.05)
