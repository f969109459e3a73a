"""examples/cartpole.py: REINFORCE and actor-critic on CartPole-v1 as trial functions.

The pure parts (returns-to-go, the n-step targets, the episode tally) are checked against
brute-force references; the trainables run a couple of short epochs through the trial
interface into a real store; a study on a tiny budget brackets and recommends.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lrlab
from lrlab.core.records import RunConfig, RunStatus
from lrlab.store.sqlite import Store
from lrlab.training.trial_run import train_trainable

pytest.importorskip("gymnasium")

EXAMPLE = Path(__file__).parents[2] / "examples" / "cartpole.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("lrlab_example_cartpole", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


cartpole = _load_example()

# The example functions, shortened: 2 epochs of 2 optimizer steps, small networks.
short_reinforce = lrlab.trainable(
    objective="mean_return", direction="maximize", epochs=2, steps_per_epoch=2,
    options={**cartpole.reinforce.options, "hidden": 8, "episodes_per_step": 4},
)(cartpole.reinforce)  # fmt: skip
short_actor_critic = lrlab.trainable(
    objective="mean_return", direction="maximize", epochs=2, steps_per_epoch=3,
    options={**cartpole.actor_critic.options, "hidden": 8, "num_envs": 4, "rollout_steps": 8},
)(cartpole.actor_critic)  # fmt: skip


# ---------------------------------------------------------------- the pure parts


@settings(max_examples=30, deadline=None)
@given(
    rewards=st.lists(st.lists(st.floats(0, 1), min_size=3, max_size=3), min_size=1, max_size=12),
    gamma=st.floats(0.0, 1.0),
)
def test_returns_to_go_equal_the_discounted_sum_of_later_rewards(rewards, gamma):
    got = cartpole.returns_to_go(torch.tensor(rewards, dtype=torch.float64), gamma).numpy()
    steps = len(rewards)
    weights = np.array([[gamma ** (k - t) if k >= t else 0.0 for k in range(steps)] for t in range(steps)])
    np.testing.assert_allclose(got, weights @ np.array(rewards), rtol=1e-9, atol=1e-9)


def _reference_targets(rollout, next_values, gamma):
    """The n-step targets one environment at a time, written as a reader would by hand."""
    steps, envs = rollout.rewards.shape
    out = torch.zeros(steps, envs)
    for env in range(envs):
        for t in range(steps):
            if not rollout.valid[t, env]:
                out[t, env] = next_values[t, env]
                continue
            total, discount, k = 0.0, 1.0, t
            while True:
                total += discount * float(rollout.rewards[k, env])
                discount *= gamma
                if rollout.ended[k, env]:
                    total += 0.0 if rollout.terminated[k, env] else discount * float(next_values[k, env])
                    break
                if k == steps - 1:
                    total += discount * float(next_values[k, env])
                    break
                k += 1
            out[t, env] = total
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_n_step_targets_match_a_step_by_step_reference_across_episode_ends(seed):
    torch.manual_seed(seed)
    runner = cartpole.Runner(cartpole.make_envs(4, seed), torch.Generator().manual_seed(seed))
    policy = cartpole.mlp(8, 2)
    rollout = runner.collect(policy, 60)  # a random policy: several episodes end inside 60 steps
    assert rollout.ended.sum() >= 4 and not rollout.valid.all()
    next_values = torch.randn(rollout.rewards.shape)
    got = cartpole.n_step_targets(rollout, next_values, 0.9)
    torch.testing.assert_close(got, _reference_targets(rollout, next_values, 0.9), rtol=1e-5, atol=1e-5)


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**16), steps=st.integers(1, 60))
def test_the_runner_tallies_every_valid_reward_into_exactly_one_episode(seed, steps):
    torch.manual_seed(seed)
    runner = cartpole.Runner(cartpole.make_envs(3, seed), torch.Generator().manual_seed(seed))
    rollout = runner.collect(cartpole.mlp(8, 2), steps)
    valid_rewards = float((rollout.rewards * rollout.valid).sum())
    assert sum(runner.finished) + runner.running_return.sum() == pytest.approx(valid_rewards)
    assert len(runner.finished) == int(rollout.ended.sum())
    assert all(1 <= r <= cartpole.MAX_RETURN for r in runner.finished)


def test_the_greedy_policy_plays_the_more_probable_action():
    policy = torch.nn.Linear(4, 2)
    with torch.no_grad():
        policy.weight.zero_()
        policy.weight[1, 2] = 1.0  # logit of "right" = the pole's angle: push right when it leans right
        policy.bias.zero_()
    observations = torch.tensor([[0.0, 0.0, 0.1, 0.0], [0.0, 0.0, -0.1, 0.0]])
    assert cartpole.sample_actions(policy, observations, None).tolist() == [1, 0]
    greedy = cartpole.play_episodes(cartpole.make_envs(4, 0), policy, None)
    # Sampled, the same policy is close to a coin toss (its logits differ by the angle, < 0.21).
    sampled = cartpole.play_episodes(cartpole.make_envs(4, 0), policy, torch.Generator().manual_seed(0))
    assert np.mean(greedy.returns()) > np.mean(sampled.returns())


def test_a_batch_of_episodes_masks_the_steps_after_each_end():
    torch.manual_seed(0)
    episodes = cartpole.play_episodes(cartpole.make_envs(5, 0), cartpole.mlp(8, 2), torch.Generator())
    lengths = episodes.alive.sum(dim=0)
    assert episodes.returns() == pytest.approx(lengths.float().tolist())  # one reward per live step
    assert int(lengths.max()) == episodes.observations.shape[0]  # it ran until the longest ended
    for env, length in enumerate(lengths.tolist()):
        assert episodes.alive[:length, env].all() and not episodes.alive[length:, env].any()


# ---------------------------------------------------------------- through the trial interface


def _store_run(fn, tmp_path: Path, seed: int = 0, lr: float = 0.01, schedule=None) -> tuple[Store, str]:
    store = Store(tmp_path / "runs.db")
    config = RunConfig(task=fn.name, lr=lr, optimizer="adam", schedule=schedule, seed=seed, epochs=fn.epochs,
                       task_options=dict(fn.options))  # fmt: skip
    run_id = f"{fn.name}-{seed}"
    record = train_trainable(config, store, run_id, task=fn.task())
    assert record.status is RunStatus.DONE, record.error
    return store, run_id


@pytest.mark.parametrize("fn", [short_reinforce, short_actor_critic], ids=["reinforce", "actor_critic"])
def test_a_trainable_records_its_returns_steps_and_lrs_into_the_store(fn, tmp_path, one_thread):
    schedule = f"one_cycle(max_lr=0.01, total_steps={fn.total_steps})"
    store, run_id = _store_run(fn, tmp_path, schedule=schedule)
    epochs = store.epochs(run_id)
    assert [e.epoch for e in epochs] == [1, 2]
    returns = [e.value("mean_return") for e in epochs]
    assert all(1 <= r <= cartpole.MAX_RETURN for r in returns)
    episodes = [e.value("episodes") for e in epochs]
    assert episodes[0] >= 1 and episodes[1] > episodes[0]
    if fn is short_reinforce:
        assert episodes == [8, 16]  # 2 steps x 4 episodes per epoch
    greedy = [e.value("greedy_return") for e in epochs]  # evaluated after the last epoch only
    assert greedy[0] is None and 1 <= greedy[1] <= cartpole.MAX_RETURN
    steps = store.steps(run_id)
    assert list(steps.step) == list(range(fn.total_steps))
    expected = lrlab.schedules.parse(schedule)(np.arange(fn.total_steps))
    np.testing.assert_allclose(np.asarray(steps.lrs)[:, 0], expected, rtol=1e-12)
    assert np.all(np.isfinite(steps.loss)) and np.all(steps.grad_norm > 0)
    store.close()


def test_the_same_seed_gives_the_same_returns_and_another_seed_others():
    def returns(seed: int) -> list[float]:
        trial = short_reinforce.trial(lr=0.01, optimizer="adam", seed=seed)
        short_reinforce(trial)
        return [r["mean_return"] for r in trial.reports]

    first = returns(3)
    assert returns(3) == first
    assert returns(4) != first


@pytest.mark.slow
def test_reinforce_learns_within_a_few_hundred_episodes(one_thread):
    """A sanity check of the algorithm, not of a schedule: Adam at 0.03, 5 epochs x 4 steps
    x 8 episodes; a random policy balances about 22 steps."""
    learner = lrlab.trainable(objective="mean_return", direction="maximize", epochs=5, steps_per_epoch=4,
                              options=cartpole.reinforce.options)(cartpole.reinforce)  # fmt: skip
    trial = learner.trial(lr=0.03, optimizer="adam", seed=0)
    learner(trial)
    first, last = trial.reports[0]["mean_return"], trial.reports[-1]["mean_return"]
    assert first < 40 and last > 2 * first


@pytest.mark.slow
def test_a_study_on_a_tiny_budget_brackets_and_recommends(tmp_path, one_thread):
    """``lrlab.study(fn)`` on the example function, shortened to the study's minimum of 6 steps."""
    tiny = lrlab.trainable(
        objective="mean_return", direction="maximize", epochs=2, steps_per_epoch=3, lr_range=(1e-3, 1e-1),
        options={**cartpole.reinforce.options, "hidden": 8, "episodes_per_step": 2},
    )(cartpole.reinforce)  # fmt: skip
    families = ["constant", "one-cycle"]
    db, out = tmp_path / "s.db", tmp_path / "out"
    study = lrlab.study(tiny, optimizers=["adam"], schedules=families, epochs=2, store=db, out=out)
    result = study.result
    recommendation = result.recommendation
    assert recommendation.metric == "mean_return" and recommendation.higher_is_better
    assert study.optimizer == "adam" and recommendation.best.seeds >= 2
    assert recommendation.best_constant is not None
    assert {r.config.seed for r in result.runs} == {0, 1, 2}
    assert len(result.runs) >= 6 and all(r.status is RunStatus.DONE for r in result.runs)
    store = Store(db)
    for rows in store.epochs_for([r.id for r in result.runs]).values():
        assert [e.epoch for e in rows] == [1, 2] and all(e.value("mean_return") >= 1 for e in rows)
    store.close()
    assert (out / "recommendation.md").exists()


# ---------------------------------------------------------------- the held-out script's arithmetic


def _load_heldout():
    spec = importlib.util.spec_from_file_location(
        "lrlab_example_cartpole_heldout", EXAMPLE.with_name("cartpole_heldout.py")
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


heldout = _load_heldout()


def test_a_paired_margin_inside_two_standard_errors_is_a_tie():
    # differences +4, +18, -13, +19, -11: mean 3.4, sd 15.1, 2 SE = 13.5
    tie = heldout.Paired.of(np.array([500.0, 499, 478, 500, 485]), np.array([496.0, 481, 491, 481, 496]))
    assert tie.margin == pytest.approx(3.4) and tie.noise == pytest.approx(
        2 * np.std([4, 18, -13, 19, -11], ddof=1) / 5**0.5
    )
    assert tie.tie
    clear = heldout.Paired.of(np.array([500.0, 490, 495]), np.array([400.0, 395, 401]))
    assert clear.margin == pytest.approx(96.3333, rel=1e-4) and not clear.tie


def test_episodes_to_a_threshold_are_read_per_seed_and_never_is_nan():
    returns = np.array([[10.0, 480, 500], [10.0, 20, 30]])
    curves = heldout.Curves(
        "x", None, np.array([32.0, 64, 96]), returns, np.array([[1.0, 2, 3], [1, 2, 3]]), np.zeros(2)
    )
    first = heldout.first_reaching(curves, 475.0)
    assert first[0] == 64.0 and np.isnan(first[1])
    assert heldout.reached_words(curves, 475.0) == "1 of 2 seeds reached 475, after 64 episodes (median)"


def test_the_results_go_between_their_markers_and_nowhere_else(tmp_path):
    doc = tmp_path / "rl.md"
    doc.write_text(
        "before\n<!-- s:begin -->\nold\n<!-- s:end -->\nafter\n<!-- t:begin -->\nkept\n<!-- t:end -->\n"
    )
    heldout.write_section(doc, "new", "s")
    assert (
        doc.read_text()
        == "before\n<!-- s:begin -->\nnew\n<!-- s:end -->\nafter\n<!-- t:begin -->\nkept\n<!-- t:end -->\n"
    )
    with pytest.raises(SystemExit, match="no <!-- u:begin -->"):
        heldout.write_section(doc, "new", "u")
