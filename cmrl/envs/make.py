"""Environment construction: one gymnasium environment, or a synchronous vector of them.

D4RL's gym-MuJoCo v2 datasets were collected in the mujoco-py ``-v3`` tasks, which gymnasium 1.x no
longer ships; ``-v4`` tasks use the same models with maintained bindings, ``-v5`` changed some models.
Use the environment id recorded with a dataset, and record it next to every score.
"""
from __future__ import annotations

import os
from collections.abc import Callable

import gymnasium as gym
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from cmrl.errors import ConfigError, MissingDependencyError

_RENDER_MODES_WITH_IMAGES = ("rgb_array", "depth_array")
VIDEO_NAME = "eval-episode-0.mp4"  # what RecordVideo names episode 0 with name_prefix="eval"


def make_env(env_id: str, seed: int | None = None, render_mode: str | None = None) -> gym.Env:
    """Build the gymnasium environment ``env_id`` (with gymnasium's default wrappers, e.g. TimeLimit).

    Args:
        env_id: a registered gymnasium id such as ``"Hopper-v5"`` or ``"Pendulum-v1"``.
        seed: when given, the environment is reset once with it and its action space is seeded, so its
            random streams are fixed; call ``reset()`` to start an episode as usual.
        render_mode: passed to ``gym.make``. For image modes MUJOCO_GL is set to ``egl`` when unset,
            which is what headless MuJoCo rendering needs.

    Raises:
        ConfigError: ``env_id`` is not a registered environment (a ValueError).
        ImportError: the environment needs a package that is not installed.
    """
    if render_mode in _RENDER_MODES_WITH_IMAGES:
        os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        env = gym.make(env_id, render_mode=render_mode)
    except gym.error.UnregisteredEnv as err:
        raise ConfigError(
            f"unknown environment id {env_id!r} ({err}). Use a registered gymnasium id such as "
            "'Hopper-v5' or 'Pendulum-v1'; MuJoCo tasks need `pip install \"gymnasium[mujoco]\"`. "
            "A dataset name such as 'hopper-medium-v2' is not an environment id: use the env id "
            "recorded with the dataset."
        ) from err
    except (ImportError, gym.error.DependencyNotInstalled) as err:
        raise ImportError(
            f"environment {env_id!r} needs a package that is not installed: {err}. MuJoCo tasks need "
            "`pip install \"gymnasium[mujoco]\"`; the mujoco-py -v2/-v3 tasks are not supported, use -v4 "
            "(same models) or -v5."
        ) from err
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def make_vector_env(
    env_id: str,
    num_envs: int,
    autoreset_mode: AutoresetMode = AutoresetMode.DISABLED,
    video_dir: str | None = None,
) -> gym.vector.VectorEnv:
    """``num_envs`` copies of ``env_id`` stepped in this process (a ``SyncVectorEnv``).

    Autoreset: gymnasium 1.x vector envs default to ``NEXT_STEP``, where the step after an episode ends
    returns the first observation of a new, unseeded episode with reward 0 instead of a transition.
    Here the default is ``DISABLED``: nothing resets behind the caller's back; reset finished
    sub-environments yourself with ``reset(seed=[...], options={"reset_mask": done})``, which lets each
    episode get its own seed. Stepping a finished sub-environment without resetting it fails.

    Args:
        env_id: a registered gymnasium id (see :func:`make_env`).
        num_envs: how many copies, at least 1.
        autoreset_mode: gymnasium's autoreset behaviour (see above).
        video_dir: when given, sub-environment 0 renders ``rgb_array`` frames and its first episode is
            written to ``video_dir`` as an mp4 by gymnasium's RecordVideo, which needs moviepy.

    Raises:
        ValueError: ``num_envs < 1``, or an unknown ``env_id`` (ConfigError).
        ImportError: a missing package (the environment's, or moviepy for ``video_dir``).
    """
    if num_envs < 1:
        raise ValueError(f"num_envs must be at least 1, got {num_envs}")
    env_fns: list[Callable[[], gym.Env]] = [lambda: make_env(env_id) for _ in range(num_envs)]
    if video_dir is not None:
        env_fns[0] = lambda: _record_first_episode(make_env(env_id, render_mode="rgb_array"), video_dir)
    return SyncVectorEnv(env_fns, autoreset_mode=autoreset_mode)


def _record_first_episode(env: gym.Env, video_dir: str) -> gym.Env:
    """Wrap ``env`` so that its first episode is saved as ``video_dir/VIDEO_NAME``."""
    try:
        import moviepy  # noqa: F401  (RecordVideo needs it but names the wrong fix: gymnasium[other])
    except ImportError as err:
        env.close()
        raise MissingDependencyError(
            "recording a video needs moviepy, which is not installed: run `pip install moviepy`, "
            "or evaluate without video_dir"
        ) from err
    return gym.wrappers.RecordVideo(
        env, video_folder=video_dir, episode_trigger=lambda episode: episode == 0, name_prefix="eval"
    )
