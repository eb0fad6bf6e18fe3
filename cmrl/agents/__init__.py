"""Algorithms as small objects: update(batch) -> metrics, act(obs), state_dict() (the `Agent` protocol)."""
from __future__ import annotations

import torch

from .base import Agent, Metrics
from .config import AgentConfig
from .consistency_ac import ConsistencyAC
from .consistency_bc import ConsistencyBC
from .diffusion_bc import DiffusionBC


def make_agent(cfg: AgentConfig, obs_dim: int, action_dim: int, total_steps: int,
               device: torch.device | str = "cpu") -> Agent:
    """Build the agent named by cfg.algo, after validating cfg (ConfigError names a bad key)."""
    cfg.validate()
    classes: dict[str, type[ConsistencyBC] | type[DiffusionBC]] = {
        "consistency_ac": ConsistencyAC, "consistency_bc": ConsistencyBC, "diffusion_bc": DiffusionBC}
    return classes[cfg.algo](cfg, obs_dim, action_dim, total_steps, device)


__all__ = ["Agent", "AgentConfig", "ConsistencyAC", "ConsistencyBC", "DiffusionBC", "Metrics", "make_agent"]
