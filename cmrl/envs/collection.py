"""Collecting offline data: behaviour policies, exploration noise, seeded rollouts into episodes, and
the reference scores a new dataset records (scripts/collect.py writes them as a Minari dataset)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

import gymnasium as gym
import numpy as np

from cmrl.errors import ConfigError

from .evaluation import evaluate_policy
from .make import make_vector_env
from .scores import check_reference_scores, reference_scores

ActFn = Callable[[np.ndarray], np.ndarray]
"""(batch, obs_dim) raw observations -> (batch, act_dim) environment actions."""


@dataclass
class Behaviour:
    """The collecting policy: a batched act function plus a description for the dataset's metadata."""

    act: ActFn
    name: str  # e.g. "uniform random actions" or "consistency_ac checkpoint runs/x/checkpoint.pt (step 10000)"
    env_id: Optional[str]  # the environment the checkpoint was trained for (None for random)
    ref_scores: Optional[tuple[float, float]]  # the checkpoint's dataset references, if any
    checkpoint: Optional[str] = None
    step: Optional[int] = None


def random_behaviour(space: gym.spaces.Box, rng: np.random.Generator) -> Behaviour:
    """Uniformly random actions within the space's bounds."""
    low, high = space.low.astype(np.float64), space.high.astype(np.float64)

    def act(obs: np.ndarray) -> np.ndarray:
        return rng.uniform(low, high, size=(len(obs), *space.shape)).astype(space.dtype)

    return Behaviour(act, "uniform random actions", None, None)


def with_exploration(act: ActFn, space: gym.spaces.Box, noise: float, epsilon: float,
                     rng: np.random.Generator) -> ActFn:
    """act, plus Gaussian noise (std noise * half range) and epsilon-random actions; always clipped to the
    action bounds, so the dataset never holds an action the environment would not accept as is."""
    low, high = space.low.astype(np.float64), space.high.astype(np.float64)
    half_range = (high - low) / 2.0

    def noisy(obs: np.ndarray) -> np.ndarray:
        actions = np.asarray(act(obs), dtype=np.float64)
        if noise:
            actions = actions + noise * half_range * rng.standard_normal(actions.shape)
        if epsilon:
            pick = rng.random(len(actions)) < epsilon
            actions[pick] = rng.uniform(low, high, size=(int(pick.sum()), *space.shape))
        return np.clip(actions, low, high).astype(space.dtype)

    return noisy


@dataclass
class Episode:
    """One collected episode: N + 1 observations for N actions (Minari's layout)."""

    seed: int
    observations: list[np.ndarray]
    actions: list[np.ndarray] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    terminations: list[bool] = field(default_factory=list)
    truncations: list[bool] = field(default_factory=list)
    cut: bool = False  # ended by the transition budget rather than by the task

    def to_buffer(self, obs_dtype: np.dtype, act_dtype: np.dtype) -> Any:
        """The episode as a Minari EpisodeBuffer."""
        from minari.data_collector import EpisodeBuffer

        return EpisodeBuffer(
            seed=self.seed,
            observations=np.asarray(self.observations, dtype=obs_dtype),
            actions=np.asarray(self.actions, dtype=act_dtype),
            rewards=[float(r) for r in self.rewards],
            terminations=[bool(t) for t in self.terminations],
            truncations=[bool(t) for t in self.truncations],
        )


def rollout(env_id: str, act: ActFn, seed: int, episodes: Optional[int], steps: Optional[int],
            num_envs: int) -> list[Episode]:
    """Collect ``episodes`` complete episodes, or exactly ``steps`` transitions, of ``act`` in ``env_id``.

    Episode i is reset with seed + i (in order of starting). With ``steps``, the episodes still running
    when the budget is reached end there, their last transition marked truncated (never terminal), so
    no false absorbing state is recorded.
    """
    n = min(num_envs, episodes) if episodes is not None else num_envs
    env = make_vector_env(env_id, n)  # autoreset disabled: every reset below is explicit and seeded
    space = env.single_action_space
    shape = space.shape or ()
    finished_episodes: list[Episode] = []
    try:
        obs, _ = env.reset(seed=[seed + i for i in range(n)])  # type: ignore[arg-type]  # vector envs take a list
        running: list[Optional[Episode]] = [Episode(seed + i, [obs[i]]) for i in range(n)]
        started, transitions = n, 0
        actions = np.zeros((n, *shape), dtype=space.dtype)
        while any(e is not None for e in running):
            live = np.array([e is not None for e in running])
            actions[live] = np.asarray(act(obs[live]), dtype=space.dtype).reshape(int(live.sum()), *shape)
            obs, rewards, terminated, truncated, _ = env.step(actions)
            ended = np.zeros(n, dtype=bool)
            for i in np.flatnonzero(live):
                if steps is not None and transitions >= steps:
                    break  # budget spent: this sub-environment's step is not recorded
                episode = running[i]
                assert episode is not None
                episode.observations.append(obs[i])
                episode.actions.append(actions[i].copy())
                episode.rewards.append(float(rewards[i]))
                episode.terminations.append(bool(terminated[i]))
                episode.truncations.append(bool(truncated[i]))
                transitions += 1
                ended[i] = terminated[i] or truncated[i]
            if steps is not None and transitions >= steps:  # cut every running episode here
                for episode in running:
                    if episode is not None and episode.rewards:
                        if not (episode.terminations[-1] or episode.truncations[-1]):
                            episode.truncations[-1] = episode.cut = True
                        finished_episodes.append(episode)
                break
            reset_seeds: list[Optional[int]] = [None] * n
            for i in np.flatnonzero(ended):
                done = running[i]
                assert done is not None
                finished_episodes.append(done)
                if episodes is None or started < episodes:
                    reset_seeds[i] = seed + started
                    started += 1
            if ended.any():
                obs, _ = env.reset(seed=reset_seeds, options={"reset_mask": ended})  # type: ignore[arg-type]
                for i in np.flatnonzero(ended):
                    new_seed = reset_seeds[i]
                    running[i] = None if new_seed is None else Episode(new_seed, [obs[i]])
    finally:
        env.close()
    return sorted(finished_episodes, key=lambda e: e.seed)


def mean_return(env_id: str, act: ActFn, episodes: int, seed: int, num_envs: int) -> float:
    """Mean undiscounted return of ``act`` over ``episodes`` episodes (`evaluate_policy`)."""
    return evaluate_policy(act, env_id, episodes, seed, num_envs=min(num_envs, episodes)).mean_return


def resolve_reference_scores(env_id: str, ref_min: Optional[str], ref_max: Optional[str], behaviour: Behaviour,
                             measure: Callable[[str], float]) -> tuple[float, float, str]:
    """(ref_min, ref_max, where they came from) of a dataset collected in ``env_id``.

    ``ref_min`` / ``ref_max`` as given by the user: a number, ``random`` (the mean return of the
    uniform random policy) or, for ref_max, ``policy`` (of the collecting policy without noise), or
    None. ``measure(which)`` measures ``random`` or ``policy``. Where one is None: the checkpoint's
    own dataset references when it was trained in ``env_id``, else D4RL's for that task. ConfigError
    when none apply or the pair is unusable.
    """
    def resolve(value: Optional[str], which: str) -> Optional[float]:
        if value is None:
            return None
        if value == "random" or (value == "policy" and which == "max"):
            return measure(value)
        try:
            return float(value)
        except ValueError:
            allowed = "a number, `random`" + (" or `policy`" if which == "max" else "")
            raise ConfigError(f"--ref-{which} must be {allowed}; got {value!r}") from None

    explicit = (resolve(ref_min, "min"), resolve(ref_max, "max"))
    fallback: Optional[tuple[float, float]] = None
    source = ""
    d4rl = reference_scores(env_id)
    if behaviour.ref_scores is not None and behaviour.env_id == env_id:
        fallback, source = behaviour.ref_scores, f"the checkpoint's dataset references ({env_id})"
    elif d4rl is not None:
        fallback, source = (float(d4rl[0]), float(d4rl[1])), f"D4RL's reference returns for {env_id}"
    if fallback is None and None in explicit:
        raise ConfigError(
            f"no reference scores known for {env_id}: pass --ref-min and --ref-max (returns of normalised "
            "score 0 and 100; `--ref-min random` measures the random policy, `--ref-max policy` the "
            "collecting policy without noise)")
    low = explicit[0] if explicit[0] is not None else fallback[0]  # type: ignore[index]
    high = explicit[1] if explicit[1] is not None else fallback[1]  # type: ignore[index]
    if explicit == (None, None):
        where = source
    elif None not in explicit:
        where = f"command line (--ref-min {ref_min}, --ref-max {ref_max})"
    else:
        where = f"command line and {source}"
    try:
        check_reference_scores(low, high)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return float(low), float(high), where
