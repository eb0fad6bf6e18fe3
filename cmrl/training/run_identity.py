"""What makes a run the same run: the checks that a start, a resume or an init_from makes before any
file of the run directory changes.

- The data must fit the environment: observation and action sizes equal the environment's spaces.
- A run is identified by its algorithm, its network architecture, its dataset and its environment.
  The dataset's identity is the content fingerprint of its raw arrays (``fingerprint``) with the
  environment id; the path and file size are recorded beside it (a moved file with the same content
  is the same dataset). A resume that changes any of these, or any other setting that shapes the
  training (learning rates, seed, batch size, transforms, ...), is refused: it would silently become
  another run. Only the keys of ``RESUMABLE`` (more steps, evaluation, checkpointing, logging, device,
  threads and the acting settings) may change; the changes are returned so that the run records them.
- Checkpoints written before the identity was recorded are checked through their data transforms
  (the observation mean/std, the action bounds and the reward transform fitted on the data).
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

import gymnasium as gym
import numpy as np
import torch

from cmrl.data import TransitionData
from cmrl.data.transforms import DataTransforms
from cmrl.envs import make_env
from cmrl.errors import CheckpointError, ConfigError, DatasetError
from cmrl.training.checkpoint import CHECKPOINT_NAME, resolve_checkpoint

AUTO = "auto"  # resume=auto: this run directory's own checkpoint when it exists, else a fresh start
# the agent config fields that shape the networks: a checkpoint's weights fit only the same values
ARCHITECTURE = ("hidden_dims", "critic_hidden_dims", "critic_layer_norm", "time_embed_dim", "bounded_actions",
                "ensemble_size")
# keys (or key prefixes ending in ".") that a resumed run may change: they do not change what is learned
RESUMABLE = ("steps", "eval_every", "eval_episodes", "eval_envs", "eval_seed", "checkpoint_every", "device",
             "threads", "resume", "init_from", "init_normalizers", "logger.", "agent.compile", "agent.act_candidates",
             "agent.act_temperature", "agent.act_sampling_steps", "agent.act_sampling_sigmas",
             # the dataset's location: its identity is checked by content
             "dataset.source", "dataset.name", "dataset.path")


def check_env_spaces(env_id: str, data: TransitionData) -> None:
    """Raise DatasetError unless the environment ``env_id`` observes vectors of the data's observation
    size and takes actions of its action size (builds the environment once)."""
    env = make_env(env_id)
    obs_space, action_space = env.observation_space, env.action_space
    env.close()
    name = data.info.name
    fix = f"set dataset.env_id to the environment the data came from, or train on data recorded in {env_id}"
    if not isinstance(obs_space, gym.spaces.Box) or obs_space.shape != (data.obs_dim,):
        raise DatasetError(f"dataset {name!r} has {data.obs_dim}-dimensional observations but {env_id} observes "
                           f"{obs_space}: {fix}")
    if not isinstance(action_space, gym.spaces.Box) or action_space.shape != (data.action_dim,):
        raise DatasetError(f"dataset {name!r} has {data.action_dim}-dimensional actions but {env_id} has action "
                           f"space {action_space}: {fix}")


def fingerprint(data: TransitionData) -> str:
    """SHA-256 (first 16 hex digits) of the raw transition arrays, their shapes and dtypes, in field order."""
    digest = hashlib.sha256()
    for key, array in data.arrays().items():
        digest.update(f"{key}{array.shape}{array.dtype}".encode())
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()[:16]


def dataset_identity(data: TransitionData, path: Optional[str], env_id: str) -> dict[str, Any]:
    """What identifies the data a run trains on: content fingerprint and environment, with the source,
    name, resolved path and file size (bytes; None for a directory or no file) for the record."""
    size: Optional[int] = None
    resolved: Optional[str] = None
    if path is not None:
        file = Path(path).expanduser().resolve()
        resolved = str(file)
        size = file.stat().st_size if file.is_file() else None
    return {"source": data.info.source, "name": data.info.name, "path": resolved, "size": size,
            "rows": len(data), "obs_dim": data.obs_dim, "action_dim": data.action_dim,
            "fingerprint": fingerprint(data), "env_id": env_id}


def resolve_resume(resume: Optional[str], run_dir: str | os.PathLike) -> Optional[Path]:
    """The checkpoint a run continues from: None for a fresh start (``resume`` unset, or ``auto`` with
    no checkpoint.pt in ``run_dir``)."""
    if resume is None:
        return None
    if resume == AUTO:
        own = Path(run_dir) / CHECKPOINT_NAME
        return own if own.is_file() else None
    return resolve_checkpoint(resume)


def flat_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as {dotted.key: value} (lists stay values)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            out.update(flat_config(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = list(value) if isinstance(value, (list, tuple)) else value
    return out


def config_changes(saved: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{key: (saved value, current value)} for every key both configs hold with different values."""
    old, new = flat_config(saved), flat_config(current)
    return {key: (old[key], new[key]) for key in new if key in old and old[key] != new[key]}


def check_resume(payload: Mapping[str, Any], path: str | os.PathLike, config: Mapping[str, Any],
                 identity: Mapping[str, Any], transforms: DataTransforms) -> dict[str, tuple[Any, Any]]:
    """Refuse (ConfigError) a resume from checkpoint ``payload`` that would not continue the same run.

    ``config`` is the resumed run's config as a plain container, ``identity`` the ``dataset_identity`` of
    the data it loaded and ``transforms`` the transforms fitted on that data. Returns the changes of the
    ``RESUMABLE`` keys, {key: (saved, current)}, for the run's record.
    """
    init = f"to start a new run from these weights, use init_from={path} (and a new run directory)"
    dims = (payload["obs_dim"], payload["action_dim"])
    if dims != (identity["obs_dim"], identity["action_dim"]):
        raise ConfigError(f"checkpoint {path} was trained on observations/actions of dimension {dims[0]}/{dims[1]}, "
                          f"but the dataset has {identity['obs_dim']}/{identity['action_dim']}: resume with the same "
                          f"dataset, or {init}")
    if payload["env_id"] != identity["env_id"]:
        raise ConfigError(f"checkpoint {path} was trained for environment {payload['env_id']}, but this run would "
                          f"evaluate in {identity['env_id']}: resume in the same environment (dataset.env_id), "
                          f"or {init}")
    saved = payload["config"]
    algo = saved.get("agent", {}).get("algo")
    if algo != config["agent"]["algo"]:
        raise ConfigError(f"checkpoint {path} is a {algo} run; agent.algo={config['agent']['algo']} would turn it "
                          f"into another algorithm: resume with agent.algo={algo}, or {init}")
    changes = config_changes(saved, config)
    shape = {k: v for k, v in changes.items() if k.startswith("agent.") and k[len("agent."):] in ARCHITECTURE}
    if shape:
        raise ConfigError(f"checkpoint {path} holds networks of another architecture ({_describe(shape)}): a resumed "
                          "run keeps its networks; resume without changing them, or train a new run")
    saved_identity = payload.get("dataset_identity")
    if saved_identity is not None and saved_identity["fingerprint"] != identity["fingerprint"]:
        raise ConfigError(f"checkpoint {path} was trained on other data: {_dataset(saved_identity)}, but this run "
                          f"loads {_dataset(identity)}: resume with the same dataset, or {init}")
    if not _same_transforms(payload["transforms"], transforms.state_dict()):
        raise ConfigError(f"checkpoint {path} was trained on data with other statistics (observation mean/std, "
                          f"action bounds or reward transform) than {_dataset(identity)}: resume with the same "
                          f"dataset and dataset settings, or {init}")
    other = {k: v for k, v in changes.items() if not _resumable(k)}
    if other:
        raise ConfigError(f"resuming {path} with other training settings ({_describe(other)}) would make it another "
                          f"run; a resume may change only steps, eval_*, checkpoint_every, logger.*, device, threads "
                          f"and the acting settings agent.act_*: resume without them, or {init}")
    if config["steps"] < payload["step"]:
        raise ConfigError(f"checkpoint {path} is at step {payload['step']}, beyond steps={config['steps']}: "
                          f"resume with steps >= {payload['step']}")
    return {k: v for k, v in changes.items() if k not in ("resume",)}


def check_init(payload: Mapping[str, Any], path: str | os.PathLike, config: Mapping[str, Any],
               identity: Mapping[str, Any]) -> None:
    """Refuse (CheckpointError) init_from a checkpoint whose networks cannot take this run's sizes."""
    dims = (payload["obs_dim"], payload["action_dim"])
    if dims != (identity["obs_dim"], identity["action_dim"]):
        raise CheckpointError(f"init_from={path} holds networks for observations/actions of dimension "
                              f"{dims[0]}/{dims[1]}, but this run's dataset has {identity['obs_dim']}/"
                              f"{identity['action_dim']}: initialise from a checkpoint trained on data of these sizes")
    changes = config_changes(payload["config"], config)
    shape = {k: v for k, v in changes.items() if k.startswith("agent.") and k[len("agent."):] in ARCHITECTURE}
    if shape:
        raise CheckpointError(f"init_from={path} holds networks of another architecture ({_describe(shape)}): "
                              "set these agent keys as in that run")


def _resumable(key: str) -> bool:
    return any(key == k or (k.endswith(".") and key.startswith(k)) for k in RESUMABLE)


def _describe(changes: Mapping[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{key} {old} -> {new}" for key, (old, new) in changes.items())


def _dataset(identity: Mapping[str, Any]) -> str:
    where = identity.get("path") or identity.get("name")
    size = f", {identity['size']} bytes" if identity.get("size") is not None else ""
    return f"{where} ({identity['rows']} rows{size}, fingerprint {identity['fingerprint']})"


def _same_transforms(saved: Mapping[str, Any], fitted: Mapping[str, Any]) -> bool:
    """Whether two DataTransforms state dicts hold the same constants."""
    if saved.keys() != fitted.keys():
        return False
    for key, value in saved.items():
        other = fitted[key]
        if isinstance(value, torch.Tensor) or isinstance(other, torch.Tensor):
            a, b = torch.as_tensor(value).cpu(), torch.as_tensor(other).cpu()
            if a.shape != b.shape or not torch.equal(a, b):
                return False
        elif value != other:
            return False
    return True
