"""Vectorised policy evaluation with reproducible, per-episode seeds.

Protocol: exactly ``episodes`` episodes; episode ``i`` starts from ``reset(seed=seed + i)`` whichever
sub-environment runs it, so with a deterministic policy the returns do not depend on ``num_envs``.
Sub-environments are reset explicitly (autoreset is disabled), so no reset step is ever counted as a
transition. An episode ends on termination or truncation (the task's time limit).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from cmrl.envs.make import VIDEO_NAME, make_vector_env
from cmrl.envs.scores import check_reference_scores, normalized_score

_IDLE = -1  # marks a sub-environment with no episode left to run


@dataclass
class EvalResult:
    """Per-episode outcomes of one evaluation and their summary (population std, ddof=0)."""

    returns: np.ndarray  # (episodes,) undiscounted return of episode i (seeded seed + i)
    lengths: np.ndarray  # (episodes,) number of steps of episode i
    mean_return: float
    std_return: float
    normalized_mean: float | None  # D4RL-normalised mean; None when no reference scores were given
    normalized_std: float | None
    video_path: str | None = None  # the mp4 of episode 0 when a video was requested

    @classmethod
    def from_episodes(cls, returns: np.ndarray, lengths: np.ndarray, ref_min: float | None = None,
                      ref_max: float | None = None, video_path: str | None = None) -> EvalResult:
        """Summarise per-episode returns and lengths, normalising when both references are given."""
        normalized = None if ref_min is None or ref_max is None else normalized_score(returns, ref_min, ref_max)
        return cls(
            returns=returns,
            lengths=lengths,
            mean_return=float(returns.mean()),
            std_return=float(returns.std()),
            normalized_mean=None if normalized is None else float(normalized.mean()),
            normalized_std=None if normalized is None else float(normalized.std()),
            video_path=video_path,
        )

    def as_metrics(self, prefix: str = "eval/") -> dict[str, float]:
        """Scalar metrics for a logger: return and length statistics, normalised score when known."""
        metrics = {
            f"{prefix}return_mean": self.mean_return,
            f"{prefix}return_std": self.std_return,
            f"{prefix}length_mean": float(self.lengths.mean()),
            f"{prefix}episodes": float(len(self.returns)),
        }
        if self.normalized_mean is not None and self.normalized_std is not None:
            metrics[f"{prefix}normalized_mean"] = self.normalized_mean
            metrics[f"{prefix}normalized_std"] = self.normalized_std
        return metrics


def evaluate_policy(
    act: Callable[[np.ndarray], np.ndarray],
    env_id: str,
    episodes: int,
    seed: int,
    num_envs: int = 8,
    ref_min: float | None = None,
    ref_max: float | None = None,
    video_dir: str | None = None,
) -> EvalResult:
    """Run ``act`` for exactly ``episodes`` episodes of ``env_id`` and summarise the returns.

    Args:
        act: maps a batch of raw observations, float32 of shape (batch, obs_dim), to env-scale actions
            of shape (batch, act_dim). Only the sub-environments still running an episode are passed,
            so ``batch`` shrinks towards the end. Returns are independent of ``num_envs`` when ``act``
            treats rows independently and deterministically.
        env_id: a registered gymnasium id, e.g. the one recorded with the dataset.
        episodes: how many episodes to run, at least 1.
        seed: episode ``i`` is reset with ``seed + i``.
        num_envs: at most this many episodes run side by side (a SyncVectorEnv in this process).
        ref_min, ref_max: reference returns for the normalised score; give both or neither.
        video_dir: when given, episode 0 is recorded to ``video_dir/eval-episode-0.mp4`` (needs moviepy;
            headless MuJoCo renders through EGL, and is slow: a few frames per second on a CPU).

    Raises:
        ValueError: bad arguments, or ``act`` returned actions of the wrong shape or non-finite values.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    if num_envs < 1:
        raise ValueError(f"num_envs must be at least 1, got {num_envs}")
    if (ref_min is None) != (ref_max is None):
        raise ValueError(f"give both ref_min and ref_max or neither, got ref_min={ref_min}, ref_max={ref_max}")
    if ref_min is not None and ref_max is not None:
        check_reference_scores(ref_min, ref_max)

    n = min(num_envs, episodes)
    env = make_vector_env(env_id, n, video_dir=video_dir)
    try:
        returns, lengths = _run_episodes(env, act, episodes, seed)
    finally:
        env.close()  # also writes the video of episode 0 if it is still being recorded
    video_path = None if video_dir is None else os.path.join(video_dir, VIDEO_NAME)
    if video_path is not None and not os.path.isfile(video_path):
        video_path = None  # nothing was rendered
    return EvalResult.from_episodes(returns, lengths, ref_min, ref_max, video_path)


def _run_episodes(env: gym.vector.VectorEnv, act: Callable[[np.ndarray], np.ndarray], episodes: int,
                  seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Step the vector env until every episode has ended; return per-episode returns and lengths."""
    n = env.num_envs
    action_space = env.single_action_space
    returns = np.zeros(episodes, dtype=np.float64)
    lengths = np.zeros(episodes, dtype=np.int64)
    episode_of = np.arange(n)  # which episode each sub-environment runs, or _IDLE
    next_episode = n
    obs, _ = env.reset(seed=[seed + i for i in range(n)])  # type: ignore[arg-type]  # vector envs take a list
    if not isinstance(obs, np.ndarray):
        raise ValueError(f"evaluate_policy needs array observations, got {env.single_observation_space}")
    # Every sub-environment starts with an episode, so each row is filled before any goes idle; an idle
    # one keeps repeating its last (valid) action until the remaining episodes end.
    actions = np.zeros((n, *(action_space.shape or ())), dtype=action_space.dtype)
    while (episode_of != _IDLE).any():
        running = episode_of != _IDLE
        actions[running] = _checked_actions(act(obs[running].astype(np.float32)), running.sum(), action_space)
        obs, rewards, terminated, truncated, _ = env.step(actions)
        ids = episode_of[running]
        returns[ids] += rewards[running]
        lengths[ids] += 1
        done = terminated | truncated
        if done.any():
            reset_seeds: list[int | None] = [None] * n
            for i in np.flatnonzero(done):
                if episode_of[i] != _IDLE and next_episode < episodes:
                    episode_of[i] = next_episode
                    reset_seeds[i] = seed + next_episode
                    next_episode += 1
                else:
                    episode_of[i] = _IDLE
            obs, _ = env.reset(seed=reset_seeds, options={"reset_mask": done})  # type: ignore[arg-type]
    return returns, lengths


def _checked_actions(actions: np.ndarray, batch: int, action_space: gym.Space) -> np.ndarray:
    """``actions`` as an array of the action space's shape, or a ValueError that says what is wrong."""
    actions = np.asarray(actions)
    expected = (int(batch), *(action_space.shape or ()))
    if actions.shape != expected:
        raise ValueError(f"act returned actions of shape {actions.shape}, expected {expected} "
                         "(one env-scale action per observation row)")
    if not np.all(np.isfinite(actions)):
        raise ValueError("act returned non-finite actions (NaN or inf)")
    return actions
