"""Load D4RL-layout HDF5 files: D4RL's gym-MuJoCo v2 datasets, or files written the same way.

A D4RL-layout file holds one row per transition under the keys observations, actions, rewards,
terminals and timeouts, and optionally next_observations. Root attributes may name the environment
(`env_id`) and the reference returns (`ref_min_score`, `ref_max_score`), as the files written by the
shared benchmarks' `make_dataset.py` do.

D4RL's own v2 datasets were collected in mujoco-py's `-v3` tasks; without mujoco-py, gymnasium's
`-v4` tasks are the closest (same models, maintained bindings), so a D4RL name maps to `-v4`.
D4RL's ant datasets hold 111-dimensional observations (with contact forces); evaluate them in an
Ant-v4 made with `use_contact_forces=True`.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any, Optional

import gymnasium as gym
import h5py
import numpy as np

from cmrl.errors import DatasetError

from .dataset import DatasetInfo, TransitionData

D4RL_URL = "http://rail.eecs.berkeley.edu/datasets/offline_rl/gym_mujoco_v2"
D4RL_LEVELS = ("random", "medium", "expert", "medium-replay", "medium-expert", "full-replay")
# D4RL task -> the gymnasium task closest to the mujoco-py -v3 task its data came from
D4RL_ENV_IDS = {"hopper": "Hopper-v4", "halfcheetah": "HalfCheetah-v4", "walker2d": "Walker2d-v4", "ant": "Ant-v4"}
# D4RL's reference returns (d4rl/infos.py): normalised score = 100 * (R - min) / (max - min)
D4RL_REF_SCORES = {
    "hopper": (-20.272305, 3234.3),
    "halfcheetah": (-280.178953, 12135.0),
    "walker2d": (1.629008, 4592.3),
    "ant": (-325.6, 3879.7),
}
# dataset name (hopper-medium-replay-v2) -> download URL (.../hopper_medium_replay-v2.hdf5)
D4RL_DATASET_URLS = {
    f"{task}-{level}-v2": f"{D4RL_URL}/{task}_{level.replace('-', '_')}-v2.hdf5"
    for task in D4RL_ENV_IDS
    for level in D4RL_LEVELS
}
REQUIRED_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts")
OPTIONAL_KEYS = ("next_observations",)


def d4rl_dataset_dir() -> Path:
    """D4RL's download folder: `$D4RL_DATASET_DIR`, else `~/.d4rl/datasets`."""
    return Path(os.environ.get("D4RL_DATASET_DIR", "~/.d4rl/datasets")).expanduser()


def locate_d4rl_file(name: str) -> Path:
    """Path of D4RL dataset `name` in D4RL's download folder, downloading it via `d4rl` if installed.

    Raises DatasetError with the download command when the file is absent.
    """
    url = D4RL_DATASET_URLS.get(name)
    if url is None:
        raise DatasetError(
            f"unknown D4RL dataset name {name!r}; known names are {{hopper,halfcheetah,walker2d,ant}}-"
            f"{{{','.join(D4RL_LEVELS)}}}-v2. For any other D4RL-layout file (e.g. one written by the "
            f"shared benchmarks' make_dataset.py) set dataset.path to the file"
        )
    folder = d4rl_dataset_dir()
    path = folder / url.rsplit("/", 1)[1]
    if path.is_file():
        return path
    downloaded = _download_with_d4rl(url)
    if downloaded is not None:
        return downloaded
    raise DatasetError(
        f"D4RL dataset {name!r} is not at {path}. Download it (needs internet) with\n"
        f"    wget {url} -P {folder}\n"
        f"or set D4RL_DATASET_DIR to the folder that holds {path.name}, or set dataset.path to the file"
    )


def _download_with_d4rl(url: str) -> Optional[Path]:
    """Download `url` with the optional `d4rl` package; None when d4rl cannot be imported."""
    try:
        offline_env = importlib.import_module("d4rl.offline_env")
    except Exception:  # d4rl is optional; its import fails without mujoco-py's MuJoCo binaries
        return None
    try:
        return Path(offline_env.download_dataset_from_url(url))
    except OSError as error:
        raise DatasetError(
            f"d4rl could not download {url}: {error}. Download it by hand (needs internet) with\n"
            f"    wget {url} -P {d4rl_dataset_dir()}"
        ) from error


def load_d4rl(name: str, path: Optional[str] = None, env_id: Optional[str] = None) -> TransitionData:
    """Load a D4RL-layout HDF5 file as transitions.

    Args:
        name: D4RL dataset name (hopper-medium-v2), used to find the file when `path` is None and
            to supply the environment and reference scores the file itself does not record.
        path: a D4RL-layout HDF5 file; None = look `name` up in D4RL's download folder.
        env_id: gymnasium environment to evaluate in; None = the file's `env_id` attribute, else
            the `-v4` task of a D4RL name.

    With `next_observations` in the file every row is kept, timeouts included (bootstrapped).
    Without it the next observation is the following row, so rows cut by a timeout (whose next row
    starts a new episode) and a final row that is not terminal are dropped, like
    `d4rl.qlearning_dataset`; a terminal row keeps its own observation as an unused next observation.
    """
    if path is None:
        file = locate_d4rl_file(name)
        label = name
    else:
        file = Path(path).expanduser()
        label = name if name in D4RL_DATASET_URLS else str(file)
        if not file.is_file():
            how = (
                f"download it (needs internet) with\n    wget {D4RL_DATASET_URLS[name]} -O {file}"
                if name in D4RL_DATASET_URLS
                else f"write a shared benchmark dataset there with `python make_dataset.py ENV LEVEL {file}` "
                f"(in the shared benchmarks folder)"
            )
            raise DatasetError(f"dataset.path {str(file)!r} is not a file: {how}")
    arrays, attrs = _read_d4rl_file(file)
    task = name.split("-")[0] if name in D4RL_DATASET_URLS else None

    env_id = env_id or _text(attrs.get("env_id")) or (D4RL_ENV_IDS[task] if task else None)
    if env_id is None:
        raise DatasetError(
            f"{file} names no environment (no `env_id` attribute) and {name!r} is not a D4RL dataset "
            f"name: set dataset.env_id to the gymnasium environment the data came from"
        )
    ref_min, ref_max = D4RL_REF_SCORES[task] if task else (None, None)
    if "ref_min_score" in attrs and "ref_max_score" in attrs:
        ref_min, ref_max = float(attrs["ref_min_score"]), float(attrs["ref_max_score"])
    low, high, max_episode_steps = _environment_facts(env_id, arrays["actions"].shape[1], file)

    terminals = arrays["terminals"].astype(bool)
    timeouts = arrays["timeouts"].astype(bool)
    observations = arrays["observations"]
    if "next_observations" in arrays:
        next_observations = arrays["next_observations"]
        keep = np.ones(len(terminals), dtype=bool)
    else:
        next_observations = np.concatenate([observations[1:], observations[-1:]])
        keep = terminals | ~timeouts
        keep[-1] = terminals[-1]

    info = DatasetInfo(
        name=label,
        source="d4rl",
        env_id=env_id,
        ref_min_score=ref_min,
        ref_max_score=ref_max,
        action_low=low,
        action_high=high,
        behaviour_returns=episode_returns(arrays["rewards"], terminals, timeouts, max_episode_steps),
    )
    data = TransitionData(
        observations=_f32(observations[keep]),
        actions=_f32(arrays["actions"][keep]),
        rewards=_f32(arrays["rewards"][keep]),
        next_observations=_f32(next_observations[keep]),
        terminals=_f32(terminals[keep]),
        timeouts=_f32(timeouts[keep]),
        info=info,
    )
    data.check()
    return data


def episode_returns(
    rewards: np.ndarray, terminals: np.ndarray, timeouts: np.ndarray, max_episode_steps: Optional[int]
) -> np.ndarray:
    """Undiscounted returns of the complete episodes in flat per-row arrays.

    An episode ends at a row marked terminal or timeout. It is complete if it ended by a terminal,
    or by a timeout after `max_episode_steps` steps (the time limit); a timeout that cuts a shorter
    episode marks a transition budget running out, as files written by make_dataset.py do at the
    end of each rollout, and such a fragment is left out, like a trailing run of rows with no end.
    `max_episode_steps` None: every timeout completes its episode.
    """
    ends = np.flatnonzero(terminals | timeouts)
    if len(ends) == 0:
        return np.zeros(0, dtype=np.float64)
    returns = np.diff(np.cumsum(rewards[: ends[-1] + 1], dtype=np.float64)[ends], prepend=0.0)
    lengths = np.diff(ends, prepend=-1)
    complete = terminals[ends] | (True if max_episode_steps is None else lengths >= max_episode_steps)
    return returns[complete]


def _read_d4rl_file(file: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The transition arrays (per-row vectors flattened to (N,)) and root attributes of a file."""
    try:
        with h5py.File(file, "r") as h5:
            missing = [key for key in REQUIRED_KEYS if not isinstance(h5.get(key), h5py.Dataset)]
            if missing:
                raise DatasetError(
                    f"{file} is missing the key(s) {', '.join(missing)}; a D4RL-layout file holds "
                    f"{', '.join(REQUIRED_KEYS)} (and optionally next_observations) as datasets at its root"
                )
            keys = REQUIRED_KEYS + tuple(k for k in OPTIONAL_KEYS if isinstance(h5.get(k), h5py.Dataset))
            arrays = {key: np.asarray(h5[key][()]) for key in keys}
            attrs = dict(h5.attrs)
    except OSError as error:
        raise DatasetError(
            f"cannot read {file} as HDF5 ({error}): it is truncated or not an HDF5 file; "
            f"delete it and download or generate it again"
        ) from error
    for key in ("rewards", "terminals", "timeouts"):
        if arrays[key].ndim == 2 and arrays[key].shape[1] == 1:
            arrays[key] = arrays[key][:, 0]
    for key in keys:
        want = 1 if key in ("rewards", "terminals", "timeouts") else 2
        if arrays[key].ndim != want:
            raise DatasetError(f"{file}: {key} has shape {arrays[key].shape}; expected {want} dimension(s)")
    n = len(arrays["observations"])
    for key in keys:
        if len(arrays[key]) != n:
            raise DatasetError(
                f"{file}: {key} has {len(arrays[key])} rows but observations has {n}; "
                f"every key must hold one row per transition"
            )
    if n == 0:
        raise DatasetError(f"{file} holds no transitions")
    if "next_observations" in arrays and arrays["next_observations"].shape != arrays["observations"].shape:
        raise DatasetError(
            f"{file}: next_observations has shape {arrays['next_observations'].shape} but observations "
            f"has {arrays['observations'].shape}"
        )
    return arrays, attrs


def _environment_facts(env_id: str, action_dim: int, file: Path) -> tuple[np.ndarray, np.ndarray, Optional[int]]:
    """Action bounds (checked against the data's action size) and time limit of environment `env_id`."""
    try:
        env = gym.make(env_id)
    except Exception as error:  # unknown id, missing extra (mujoco, box2d), bad kwargs
        raise DatasetError(
            f"cannot create environment {env_id!r} to read its action bounds ({error}); "
            f"set dataset.env_id to an installed gymnasium environment"
        ) from error
    space, max_episode_steps = env.action_space, env.spec.max_episode_steps if env.spec else None
    env.close()
    if not isinstance(space, gym.spaces.Box) or space.shape != (action_dim,):
        raise DatasetError(
            f"{file} holds {action_dim}-dimensional actions but {env_id} has action space {space}; "
            f"set dataset.env_id to the environment the data came from"
        )
    return space.low.astype(np.float32), space.high.astype(np.float32), max_episode_steps


def _text(value: Any) -> Optional[str]:
    """An HDF5 string attribute as str (h5py may return bytes); None stays None."""
    return value.decode() if isinstance(value, bytes) else (None if value is None else str(value))


def _f32(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.float32)
