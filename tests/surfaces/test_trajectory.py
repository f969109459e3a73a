"""Trajectories: closed-form checks of the path and of every metric."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lrlab.schedules import cosine, exponential
from lrlab.surfaces import Surface, run_trajectories, run_trajectory


@settings(max_examples=25, deadline=None)
@given(st.floats(0.01, 0.24), st.integers(1, 40))
def test_gd_on_the_ravine_matches_the_closed_form(lr: float, steps: int) -> None:
    traj = run_trajectory("ravine", f"sgd(lr={lr!r})", steps=steps)
    t = np.arange(steps + 1)
    np.testing.assert_allclose(traj.points[:, 0], -10.0 * (1 - lr * 0.1) ** t, rtol=1e-9)
    np.testing.assert_allclose(traj.points[:, 1], 1.0 * (1 - lr * 8.0) ** t, rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(traj.losses, 0.05 * traj.points[:, 0] ** 2 + 4 * traj.points[:, 1] ** 2)
    assert traj.lrs.tolist() == [lr] * steps


def test_steps_to_tol_is_the_first_step_within_tol() -> None:
    # Along a 1-D bowl f = x^2 from x=1 with lr=0.25: x_t = 0.5^t, f = 0.25^t.
    bowl = Surface("bowl", lambda xy: xy[..., 0] ** 2 + xy[..., 1] ** 2, start=(1, 0), x_range=(-2, 2),
                   y_range=(-2, 2), minima=[(0, 0)])  # fmt: skip
    traj = run_trajectory(bowl, "sgd(lr=0.25)", steps=10, tol=1e-3)
    assert traj.steps_to_tol == 5  # 0.25**4 = 0.0039 > 1e-3 >= 0.25**5 = 0.00098
    assert traj.distance == pytest.approx(0.5**10)
    assert run_trajectory(bowl, "sgd(lr=0.25)", steps=4, tol=1e-3).steps_to_tol is None


def test_gd_at_the_edge_of_stability_oscillates_at_every_step() -> None:
    traj = run_trajectory("ravine", "sgd(lr=0.25)", steps=40)
    assert traj.points[1:, 1].tolist() == [(-1.0) ** t for t in range(1, 41)]
    assert traj.oscillations == 39
    assert traj.across_travel == pytest.approx(2 * 40)  # wall to wall, 2 per step


def test_oscillation_threshold_ignores_jitter() -> None:
    traj = run_trajectory("ravine", "rmsprop(lr=0.1)", steps=300)
    assert traj.oscillation_count(threshold=0.0) > 100  # round-off flips at the minimum
    assert traj.oscillations == 0


def test_divergence_stops_the_run_and_is_reported() -> None:
    traj = run_trajectory("ravine", "sgd(lr=1.0)", steps=500)  # across factor 1 - 8 = -7
    assert traj.diverged and traj.diverged_step is not None and traj.diverged_step < 10
    assert traj.steps == traj.diverged_step
    summary = traj.summary()
    assert summary["diverged"] is True and summary["steps_to_tol"] is None


def test_nan_is_divergence_too() -> None:
    sqrt_surface = Surface("sqrt", lambda xy: torch.sqrt(xy[..., 0]) + xy[..., 1] ** 2, start=(1, 1),
                           x_range=(0, 2), y_range=(-2, 2))  # fmt: skip
    traj = run_trajectory(sqrt_surface, "sgd(lr=5)", steps=20)
    assert traj.diverged
    assert json.dumps(traj.summary(), allow_nan=False)


def test_a_schedule_sets_every_steps_learning_rate() -> None:
    schedule = exponential(0.1, decay_rate=0.9)
    traj = run_trajectory("ravine", "sgd", steps=20, schedule=schedule)
    np.testing.assert_allclose(traj.lrs, schedule(np.arange(20)))


def test_a_schedule_is_used_as_written_unless_scaled_to_the_specs_lr() -> None:
    schedule = cosine(0.2, total_steps=10)
    exact = run_trajectory("ravine", "sgd(lr=0.1)", steps=10, schedule=schedule)
    np.testing.assert_allclose(exact.lrs, schedule(np.arange(10)))
    scaled = run_trajectory("ravine", "sgd(lr=0.1)", steps=10, schedule=schedule, scale_schedule=True)
    np.testing.assert_allclose(scaled.lrs, 0.5 * schedule(np.arange(10)))
    no_lr = run_trajectory("ravine", "sgd", steps=10, schedule=schedule, scale_schedule=True)
    np.testing.assert_allclose(no_lr.lrs, schedule(np.arange(10)))
    assert exact.summary()["optimizer"] == "sgd(lr=0.1)"
    assert exact.summary()["schedule"] == "cosine(lr=0.2, total_steps=10)"


def test_a_shared_schedule_is_scaled_to_each_optimizers_lr() -> None:
    shared = cosine(1.0, total_steps=50)
    sgd, adam = run_trajectories(
        "ravine", ["sgd(lr=0.02)", "adam(lr=0.3)"], steps=50, schedule=shared, scale_schedule=True
    )
    np.testing.assert_allclose(sgd.lrs, 0.02 * shared(np.arange(50)))
    np.testing.assert_allclose(adam.lrs, 0.3 * shared(np.arange(50)))


def test_a_plain_callable_is_a_surface() -> None:
    def himmelblau(xy: torch.Tensor) -> torch.Tensor:
        return (xy[0] ** 2 + xy[1] - 11) ** 2 + (xy[0] + xy[1] ** 2 - 7) ** 2

    traj = run_trajectory(himmelblau, "adam(lr=0.1)", steps=300, start=(0.0, 0.0))
    assert traj.final_loss < 1e-6
    assert traj.steps_to_tol is None and traj.distance is None  # no minimum was declared
    with pytest.raises(ValueError, match="needs a start point"):
        run_trajectory(himmelblau, "adam")


def test_lbfgs_uses_its_closure() -> None:
    traj = run_trajectory("rosenbrock", "lbfgs(lr=1, history_size=10)", steps=30)
    assert traj.final_loss < 1e-8


def test_second_moments_are_recorded_for_adaptive_optimizers() -> None:
    rms = run_trajectory("ravine", "rmsprop(lr=0.1, alpha=0.5)", steps=3)
    g0 = np.array([0.1 * -10.0, 8.0 * 1.0])
    assert rms.second_moment[0] == pytest.approx(0.5 * g0**2)
    assert run_trajectory("ravine", "sgd(lr=0.1)", steps=3).second_moment is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"start": (math.inf, 0)}, "start must be finite"), ({"steps": -1}, "steps"), ({"tol": -1.0}, "tol"),
     ({"start": "1"}, "start must be two numbers")],
)  # fmt: skip
def test_bad_arguments_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run_trajectory("ravine", "sgd", **kwargs)


def test_summary_has_the_contract_keys_and_is_plain_json() -> None:
    summary = run_trajectory("beale", "adam(lr=0.05)", steps=50).summary()
    for key in ("name", "final_loss", "steps_to_tol", "diverged", "distance", "oscillations", "max_step"):
        assert key in summary
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary
