"""The teacher of consistency distillation (agent.consistency.objective=cd): a diffusion_bc checkpoint,
loaded, checked against the current run and handed to the agent as a frozen `DiffusionPolicy`.

The agents read no files; the Trainer calls `attach_distillation_teacher` after building the agent,
on a fresh run and on resume alike (the teacher is not part of the student's checkpoint: it is
reloaded from agent.consistency.teacher_checkpoint, so that file must stay in place).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cmrl.agents import Agent, ConsistencyBC
from cmrl.data.transforms import ARRAY_FIELDS, DataTransforms
from cmrl.errors import CheckpointError, ConfigError
from cmrl.policies import DiffusionPolicy
from cmrl.training.checkpoint import load_checkpoint, resolve_checkpoint
from cmrl.training.config import TrainConfig, to_train_config

KEY = "agent.consistency.teacher_checkpoint"
TRANSFORM_RTOL = 1e-5  # relative tolerance of the teacher's and the run's observation/action statistics


def load_distillation_teacher(path: str | Path, obs_dim: int, action_dim: int, transforms: DataTransforms,
                              dataset: str, device: torch.device | str = "cpu") -> DiffusionPolicy:
    """The frozen acting policy (the EMA when it has one) of the diffusion_bc checkpoint at `path`.

    Raises ConfigError when the checkpoint is not a diffusion_bc one, or was trained on other data:
    other observation/action dimensions, or other observation normalisation or action bounds than the
    run's `transforms` (both datasets named in the message). CheckpointError when it cannot be read.
    """
    checkpoint = resolve_checkpoint(path)
    payload = load_checkpoint(checkpoint, required_keys=("config", "agent", "transforms", "obs_dim", "action_dim"))
    cfg: TrainConfig = to_train_config(payload["config"])
    teacher_data = payload.get("dataset_info", {}).get("name", "an unnamed dataset")
    if cfg.agent.algo != "diffusion_bc":
        raise ConfigError(f"{KEY}={path}: {checkpoint} holds a {cfg.agent.algo} agent, but the teacher of consistency "
                          "distillation must be a diffusion_bc checkpoint (train one with agent=diffusion_bc)")
    if (payload["obs_dim"], payload["action_dim"]) != (obs_dim, action_dim):
        raise ConfigError(f"{KEY}={path}: the teacher was trained on {teacher_data!r} with observations/actions of "
                          f"dimension {payload['obs_dim']}/{payload['action_dim']}, but this run's dataset {dataset!r} "
                          f"has {obs_dim}/{action_dim}: distil a teacher trained on the same dataset")
    _check_transforms(payload["transforms"], transforms, path, teacher_data, dataset)
    policy = DiffusionPolicy(obs_dim, action_dim, cfg.agent.hidden_dims, cfg.agent.time_embed_dim, cfg.agent.diffusion)
    agent_state: dict[str, Any] = payload["agent"]
    name = "ema_policy" if "ema_policy" in agent_state else "policy"
    try:
        policy.load_state_dict(agent_state[name])
    except (RuntimeError, KeyError) as err:
        raise CheckpointError(f"{KEY}={path}: cannot load the teacher's {name!r}: {err}") from err
    return policy.to(device).requires_grad_(False).eval()


def _check_transforms(saved: dict[str, Any], transforms: DataTransforms, path: str | Path, teacher_data: str,
                      dataset: str) -> None:
    """The teacher's observation normalisation and action bounds must be the run's."""
    current = transforms.state_dict()
    for name in ARRAY_FIELDS:
        theirs, ours = torch.as_tensor(saved[name]), current[name]
        if theirs.shape != ours.shape or not torch.allclose(theirs, ours, rtol=TRANSFORM_RTOL, atol=1e-6):
            raise ConfigError(f"{KEY}={path}: the teacher was trained on {teacher_data!r}, this run on {dataset!r}, "
                              f"and their data transforms differ ({name}: {theirs.tolist()} vs {ours.tolist()}): "
                              "distil a teacher trained on the same dataset with the same dataset settings")


def attach_distillation_teacher(agent: Agent, cfg: TrainConfig, obs_dim: int, action_dim: int,
                                transforms: DataTransforms, dataset: str) -> None:
    """Load and hand over the teacher when the run distils (objective=cd); otherwise do nothing."""
    consistency = cfg.agent.consistency
    if consistency.objective != "cd" or not isinstance(agent, ConsistencyBC):
        return
    assert consistency.teacher_checkpoint is not None  # validate() requires it for objective=cd
    agent.set_distillation_teacher(load_distillation_teacher(consistency.teacher_checkpoint, obs_dim, action_dim,
                                                             transforms, dataset, agent.device))
