"""Load Minari datasets, from the local Minari store by id or from a dataset directory.

A Minari episode of N steps holds N + 1 observations and N actions, rewards, terminations and
truncations. Transitions are built episode by episode (obs[:-1] -> obs[1:]); concatenating the
observations of all episodes first would shift every episode after the first by one row per episode.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import gymnasium as gym
import minari
import numpy as np
from minari.storage import get_dataset_path

from cmrl.errors import DatasetError

from .dataset import DatasetInfo, TransitionData


def open_minari_dataset(name: str, path: Optional[str] = None) -> minari.MinariDataset:
    """Open Minari dataset `name` from the local store, or the dataset directory `path` if given.

    `path` may be a dataset's folder (holding `data/`) or its `data/` folder itself.
    """
    if path is not None:
        folder = Path(path).expanduser()
        data = folder / "data" if (folder / "data" / "metadata.json").is_file() else folder
        if not (data / "metadata.json").is_file():
            raise DatasetError(
                f"dataset.path {str(folder)!r} is not a Minari dataset directory: expected metadata.json "
                f"in it or in its data/ folder"
            )
        try:
            return minari.MinariDataset(str(data))
        except (ValueError, OSError, KeyError) as error:
            raise DatasetError(f"cannot open the Minari dataset in {data}: {error}") from error
    try:
        return minari.load_dataset(name)
    except FileNotFoundError as error:
        raise DatasetError(
            f"Minari dataset {name!r} is not in the local Minari store ({get_dataset_path()}). "
            f"Download it with `minari download {name}` (the machine needs internet), or point "
            f"MINARI_DATASETS_PATH at the store that holds it, or set dataset.path to its directory"
        ) from error
    except (ValueError, OSError, KeyError) as error:
        raise DatasetError(f"cannot open Minari dataset {name!r}: {error}") from error


def load_minari(
    name: str, path: Optional[str] = None, env_id: Optional[str] = None, source: str = "minari"
) -> TransitionData:
    """Load a Minari dataset as transitions, aligned episode by episode.

    Args:
        name: Minari dataset id (namespace/name-v0), looked up in the store when `path` is None.
        path: a local Minari dataset directory to load instead of the store's copy of `name`.
        env_id: gymnasium environment to evaluate in; None = the dataset's evaluation environment,
            else the environment it was collected in.
        source: the source recorded in the returned info (the embedded dataset is a Minari dataset).

    Terminals are Minari's terminations and timeouts its truncations. Reference scores come from the
    metadata's `ref_min_score` / `ref_max_score`, action bounds from the dataset's action space.
    """
    dataset = open_minari_dataset(name, path)
    label = dataset.id if path is not None else name
    obs_space, act_space = dataset.observation_space, dataset.action_space
    for kind, space in (("observation", obs_space), ("action", act_space)):
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise DatasetError(
                f"Minari dataset {label!r} has {kind} space {space}; cmrl needs a flat Box "
                f"(1-D vector) {kind} space and does not flatten Dict, Tuple or image spaces"
            )

    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "act", "rew", "next", "term", "trunc")}
    returns = []
    for episode in dataset.iterate_episodes():
        observations = np.asarray(episode.observations)
        steps = len(episode.rewards)
        if observations.shape[0] != steps + 1 or np.shape(episode.actions)[0] != steps:
            raise DatasetError(
                f"Minari dataset {label!r}, episode {episode.id}: {observations.shape[0]} observations, "
                f"{np.shape(episode.actions)[0]} actions and {steps} rewards; an episode of N steps holds "
                f"N + 1 observations and N actions"
            )
        if steps == 0:
            continue
        for key, value in zip(
            parts,
            (observations[:-1], episode.actions, episode.rewards, observations[1:],
             episode.terminations, episode.truncations),
        ):
            parts[key].append(np.asarray(value, dtype=np.float32))
        if episode.terminations[-1] or episode.truncations[-1]:
            returns.append(float(np.sum(episode.rewards, dtype=np.float64)))
    if not parts["rew"]:
        raise DatasetError(f"Minari dataset {label!r} holds no transitions")

    metadata = dataset.storage.metadata
    env_id = env_id or _env_id(metadata)
    if env_id is None:
        raise DatasetError(
            f"Minari dataset {label!r} names no environment (no env_spec or eval_env_spec in its "
            f"metadata): set dataset.env_id to the gymnasium environment to evaluate in"
        )
    ref_min, ref_max = metadata.get("ref_min_score"), metadata.get("ref_max_score")
    info = DatasetInfo(
        name=label,
        source=source,
        env_id=env_id,
        ref_min_score=None if ref_min is None else float(ref_min),
        ref_max_score=None if ref_max is None else float(ref_max),
        action_low=act_space.low.astype(np.float32),
        action_high=act_space.high.astype(np.float32),
        behaviour_returns=np.asarray(returns, dtype=np.float64),
    )
    data = TransitionData(
        observations=np.concatenate(parts["obs"]),
        actions=np.concatenate(parts["act"]).reshape(-1, act_space.shape[0]),
        rewards=np.concatenate(parts["rew"]),
        next_observations=np.concatenate(parts["next"]),
        terminals=np.concatenate(parts["term"]),
        timeouts=np.concatenate(parts["trunc"]),
        info=info,
    )
    data.check()
    return data


def _env_id(metadata: dict) -> Optional[str]:
    """Id of the evaluation environment in Minari metadata, else of the collecting environment."""
    for key in ("eval_env_spec", "env_spec"):
        spec = metadata.get(key)
        if spec:
            return str(json.loads(spec)["id"])
    return None
