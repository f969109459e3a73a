"""Reinforcement learning as an lrlab study: REINFORCE and actor-critic on CartPole-v1.

Two trial functions on gymnasium's CartPole-v1 (no download; ``pip install -e ".[rl]"``):

- ``reinforce``: REINFORCE with a baseline (the batch's returns-to-go, whitened), one optimizer
  step per batch of 8 whole episodes played at once in gymnasium's vectorised CartPole;
- ``actor_critic``: advantage actor-critic (A2C), 8 environments that keep running, one
  optimizer step per 16 steps of each, n-step returns bootstrapped by the critic.

Each takes the configuration being tried from the trial (``trial.optimizer``,
``trial.scheduler``, ``trial.seed``), logs the surrogate loss per step and reports, after
every epoch, ``mean_return``: the mean return of the last 32 episodes finished (the maximum is
500), ``episodes``: how many episodes were played so far, and ``env_steps``: how many
environment steps they took (one reward per step); after the last epoch also
``greedy_return``, the mean return of the greedy policy over 16 evaluation episodes.

    lrlab study --train examples/cartpole.py:reinforce
    lrlab study --train examples/cartpole.py:actor_critic

or from Python: ``lrlab.study(reinforce)``. The same seed gives the same numbers: the
environments, the initial weights and the sampled actions are all seeded from ``trial.seed``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import torch
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv
from torch import nn

import lrlab

LAST_EPISODES = 32  # mean_return is the mean over this many of the latest finished episodes
MAX_RETURN = 500.0  # CartPole-v1 truncates an episode at 500 steps, one reward per step
EVAL_EPISODES = 16  # greedy episodes played after the last epoch (greedy_return)
EVAL_SEED_OFFSET = 10_000  # evaluation environments start apart from the training ones


def make_envs(num_envs: int, seed: int) -> CartPoleVectorEnv:
    """``num_envs`` CartPole-v1 environments stepped together, their starts drawn from ``seed``."""
    envs = CartPoleVectorEnv(num_envs=num_envs)
    envs.reset(seed=seed)
    return envs


def mlp(hidden: int, outputs: int) -> nn.Module:
    """The 4 CartPole observations -> ``hidden`` tanh units -> ``outputs``."""
    return nn.Sequential(nn.Linear(4, hidden), nn.Tanh(), nn.Linear(hidden, outputs))


def sample_actions(
    policy: nn.Module, observations: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """One action (0 or 1) per environment, drawn from the policy's softmax; the most
    probable one when ``generator`` is None (the greedy policy, for evaluation).

    Drawn as ``uniform < p(right)`` rather than through ``torch.distributions``: the same
    distribution at a quarter of the cost, which matters at one call per environment step.
    The trial's own generator, not torch's global one, so that the draws depend on the
    seed alone, whatever else runs in the process.
    """
    with torch.no_grad():
        prob_right = torch.softmax(policy(observations), dim=-1)[:, 1]
        if generator is None:
            return (prob_right > 0.5).long()
        return (torch.rand(prob_right.shape, generator=generator) < prob_right).long()


def as_tensor(array: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(array, dtype=torch.float32)


# ---------------------------------------------------------------- REINFORCE


@dataclass(frozen=True)
class Episodes:
    """A batch of whole episodes, time-major: ``observations`` (T, N, 4), the rest (T, N).

    ``alive`` is False from the step after an episode ended (those steps are padding).
    """

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    alive: torch.Tensor

    def returns(self) -> list[float]:
        """The undiscounted return of each episode."""
        return self.rewards.sum(dim=0).tolist()


def play_episodes(envs: CartPoleVectorEnv, policy: nn.Module, generator: torch.Generator | None) -> Episodes:
    """Plays one whole episode in each environment; steps after an episode's end are masked.
    ``generator`` None plays the greedy policy."""
    observations, _ = envs.reset()
    alive = np.ones(envs.num_envs, dtype=bool)
    steps: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []
    while alive.any():
        obs = as_tensor(observations)
        actions = sample_actions(policy, obs, generator)
        observations, rewards, terminated, truncated, _ = envs.step(actions.numpy())
        steps.append((obs, actions, as_tensor(rewards * alive), torch.as_tensor(alive)))
        alive = alive & ~(terminated | truncated)
    obs_t, actions_t, rewards_t, alive_t = (torch.stack(column) for column in zip(*steps))
    return Episodes(obs_t, actions_t, rewards_t, alive_t)


def greedy_return(policy: nn.Module, seed: int) -> float:
    """The mean return of the greedy policy (the most probable action) over
    ``EVAL_EPISODES`` episodes in environments of their own: the measure rl-baselines3-zoo's
    benchmark reports (a deterministic policy after training), where ``mean_return`` is the
    sampling policy while it trains."""
    envs = make_envs(EVAL_EPISODES, seed + EVAL_SEED_OFFSET)
    return float(np.mean(play_episodes(envs, policy, None).returns()))


def returns_to_go(rewards: torch.Tensor, gamma: float) -> torch.Tensor:
    """sum_{k >= t} gamma**(k - t) * r_k for every step t, time-major (T, N)."""
    out = torch.zeros_like(rewards)
    running = torch.zeros(rewards.shape[1])
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = rewards[t] + gamma * running
        out[t] = running
    return out


def reinforce_loss(policy: nn.Module, episodes: Episodes, gamma: float) -> torch.Tensor:
    """The REINFORCE surrogate: -log pi(a|s) times the whitened return-to-go, over live steps.

    Whitening subtracts the batch's mean return-to-go (the baseline) and divides by its
    standard deviation, so the gradient's scale does not grow with the episodes' length.
    """
    mask = episodes.alive.float()
    count = mask.sum()
    returns = returns_to_go(episodes.rewards, gamma)
    mean = (returns * mask).sum() / count
    std = (((returns - mean) ** 2 * mask).sum() / count).sqrt()
    advantage = (returns - mean) / (std + 1e-8)
    log_probs = torch.log_softmax(policy(episodes.observations), dim=-1)
    taken = log_probs.gather(-1, episodes.actions.unsqueeze(-1)).squeeze(-1)
    return -(taken * advantage * mask).sum() / count


@lrlab.trainable(
    objective="mean_return",
    direction="maximize",
    epochs=25,
    steps_per_epoch=4,
    lr_range=(1e-3, 1e-1),
    options={"hidden": 32, "gamma": 0.99, "episodes_per_step": 8},
)
def reinforce(trial: lrlab.Trial) -> None:
    """REINFORCE with a baseline: 25 epochs x 4 optimizer steps x 8 episodes = 800 episodes.

    Options (``--task-option key=value``): ``hidden`` (32) policy width, ``gamma`` (0.99)
    discount, ``episodes_per_step`` (8).
    """
    hidden, gamma = int(trial.options["hidden"]), float(trial.options["gamma"])
    per_step = int(trial.options["episodes_per_step"])
    torch.manual_seed(trial.seed)  # the initial weights
    generator = torch.Generator().manual_seed(trial.seed)  # the sampled actions
    envs = make_envs(per_step, trial.seed)
    policy = mlp(hidden, 2)
    optimizer = trial.optimizer(policy.parameters())
    scheduler = trial.scheduler(optimizer)
    recent: deque[float] = deque(maxlen=LAST_EPISODES)
    episodes, env_steps = 0, 0
    for epoch in range(1, trial.epochs + 1):
        for _ in range(trial.steps_per_epoch):
            batch = play_episodes(envs, policy, generator)
            recent.extend(batch.returns())
            episodes += per_step
            env_steps += int(batch.alive.sum())
            loss = reinforce_loss(policy, batch, gamma)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            trial.log(loss=loss.item())
        final = {"greedy_return": greedy_return(policy, trial.seed)} if epoch == trial.epochs else {}
        trial.report(
            epoch, mean_return=float(np.mean(recent)), episodes=episodes, env_steps=env_steps, **final
        )


# ---------------------------------------------------------------- actor-critic (A2C)


class ActorCritic(nn.Module):
    """Separate actor (logits of the two actions) and critic (state value) networks."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.actor = mlp(hidden, 2)
        self.critic = mlp(hidden, 1)

    def value(self, observations: torch.Tensor) -> torch.Tensor:
        return self.critic(observations).squeeze(-1)


@dataclass(frozen=True)
class Rollout:
    """``steps`` steps of every environment, time-major.

    ``valid`` is False on the step that only resets an environment after its episode ended
    (gymnasium's vector autoreset), ``ended`` marks the last step of an episode,
    ``terminated`` the ones that fell (not truncated at 500 steps: those are bootstrapped).
    ``next_observations`` is (T + 1, N, 4): the observation after each step.
    """

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    valid: torch.Tensor
    ended: torch.Tensor
    terminated: torch.Tensor
    next_observations: torch.Tensor


class Runner:
    """Environments that keep running across updates, with each episode's return tallied."""

    def __init__(self, envs: CartPoleVectorEnv, generator: torch.Generator) -> None:
        self.envs, self.generator = envs, generator
        self.observations = as_tensor(envs.reset()[0])
        self.resetting = np.zeros(envs.num_envs, dtype=bool)
        self.running_return = np.zeros(envs.num_envs)
        self.finished: list[float] = []

    def collect(self, policy: nn.Module, steps: int) -> Rollout:
        """Steps every environment ``steps`` times with ``policy``; returns what happened."""
        columns: list[tuple[torch.Tensor, ...]] = []
        for _ in range(steps):
            obs = self.observations
            actions = sample_actions(policy, obs, self.generator)
            next_obs, rewards, terminated, truncated, _ = self.envs.step(actions.numpy())
            valid = ~self.resetting
            ended = (terminated | truncated) & valid
            self._tally(rewards * valid, ended)
            self.resetting = ended
            self.observations = as_tensor(next_obs)
            row = (obs, actions, as_tensor(rewards), valid, ended, terminated & valid)
            columns.append(tuple(torch.as_tensor(value) for value in row))
        obs_t, actions_t, rewards_t, valid_t, ended_t, terminated_t = (
            torch.stack(column) for column in zip(*columns)
        )
        next_obs_t = torch.cat([obs_t[1:], self.observations.unsqueeze(0)])
        return Rollout(obs_t, actions_t, rewards_t, valid_t, ended_t, terminated_t, next_obs_t)

    def _tally(self, rewards: np.ndarray, ended: np.ndarray) -> None:
        self.running_return += rewards
        for index in np.flatnonzero(ended):
            self.finished.append(float(self.running_return[index]))
            self.running_return[index] = 0.0


def n_step_targets(rollout: Rollout, next_values: torch.Tensor, gamma: float) -> torch.Tensor:
    """The n-step return of every step, bootstrapped by the critic.

    A fallen pole's step is worth its reward alone; a step truncated at 500 or the rollout's
    last step is bootstrapped with the value of the observation after it.
    """
    targets = torch.zeros_like(rollout.rewards)
    running = next_values[-1]
    for t in range(rollout.rewards.shape[0] - 1, -1, -1):
        after_end = torch.where(rollout.terminated[t], torch.zeros_like(running), next_values[t])
        running = rollout.rewards[t] + gamma * torch.where(rollout.ended[t], after_end, running)
        running = torch.where(rollout.valid[t], running, next_values[t])
        targets[t] = running
    return targets


def actor_critic_loss(
    model: ActorCritic, rollout: Rollout, gamma: float, entropy_weight: float = 0.01
) -> torch.Tensor:
    """Policy gradient with the critic's advantage + half the value error - an entropy bonus."""
    mask = rollout.valid.float()
    count = mask.sum()
    with torch.no_grad():
        next_values = model.value(rollout.next_observations)
    targets = n_step_targets(rollout, next_values, gamma)
    values = model.value(rollout.observations)
    advantage = (targets - values).detach()
    log_probs = torch.log_softmax(model.actor(rollout.observations), dim=-1)
    taken = log_probs.gather(-1, rollout.actions.unsqueeze(-1)).squeeze(-1)
    entropy = -(log_probs.exp() * log_probs).sum(dim=-1)
    policy_loss = -(taken * advantage * mask).sum() / count
    value_loss = ((targets - values) ** 2 * mask).sum() / count
    return policy_loss + 0.5 * value_loss - entropy_weight * (entropy * mask).sum() / count


@lrlab.trainable(
    objective="mean_return",
    direction="maximize",
    epochs=40,
    steps_per_epoch=20,
    lr_range=(3e-4, 3e-2),
    options={"hidden": 64, "gamma": 0.99, "num_envs": 8, "rollout_steps": 16},
)
def actor_critic(trial: lrlab.Trial) -> None:
    """A2C: 40 epochs x 20 optimizer steps x 8 environments x 16 steps = 102,400 environment steps.

    Options: ``hidden`` (64), ``gamma`` (0.99), ``num_envs`` (8), ``rollout_steps`` (16).
    Gradients are clipped to norm 0.5, as in Stable-Baselines3's A2C.
    """
    hidden, gamma = int(trial.options["hidden"]), float(trial.options["gamma"])
    num_envs, rollout_steps = int(trial.options["num_envs"]), int(trial.options["rollout_steps"])
    torch.manual_seed(trial.seed)
    runner = Runner(make_envs(num_envs, trial.seed), torch.Generator().manual_seed(trial.seed))
    model = ActorCritic(hidden)
    optimizer = trial.optimizer(model.parameters())
    scheduler = trial.scheduler(optimizer)
    for epoch in range(1, trial.epochs + 1):
        for _ in range(trial.steps_per_epoch):
            loss = actor_critic_loss(model, runner.collect(model.actor, rollout_steps), gamma)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            optimizer.step()
            scheduler.step()
            trial.log(loss=loss.item())
        recent = runner.finished[-LAST_EPISODES:]
        env_steps = epoch * trial.steps_per_epoch * num_envs * rollout_steps
        mean_return = float(np.mean(recent)) if recent else 0.0
        final = {"greedy_return": greedy_return(model.actor, trial.seed)} if epoch == trial.epochs else {}
        trial.report(
            epoch, mean_return=mean_return, episodes=len(runner.finished), env_steps=env_steps, **final
        )
