"""Algorithms as small objects: update(batch) -> metrics, act(obs), state_dict() (the `Agent` protocol)."""
from __future__ import annotations

import torch

from .base import Agent, Metrics
from .config import AgentConfig, FQLConfig, IQLConfig, ReBRACConfig, TD3BCConfig
from .consistency_ac import ConsistencyAC
from .consistency_bc import ConsistencyBC
from .consistency_fql import ConsistencyFQL
from .diffusion_bc import DiffusionBC
from .diffusion_ql import DiffusionQL
from .iql import IQL
from .rebrac import ReBRAC
from .td3_bc import TD3BC

AGENTS: dict[str, type[Agent]] = {"consistency_ac": ConsistencyAC, "consistency_bc": ConsistencyBC,
                                  "consistency_fql": ConsistencyFQL,
                                  "diffusion_bc": DiffusionBC, "diffusion_ql": DiffusionQL,
                                  "td3_bc": TD3BC, "iql": IQL, "rebrac": ReBRAC}
"""The agent class of every `AgentConfig.algo`."""


def make_agent(cfg: AgentConfig, obs_dim: int, action_dim: int, total_steps: int,
               device: torch.device | str = "cpu") -> Agent:
    """Build the agent named by cfg.algo, after validating cfg (ConfigError names a bad key)."""
    cfg.validate()
    return AGENTS[cfg.algo](cfg, obs_dim, action_dim, total_steps, device)  # type: ignore[call-arg]


__all__ = ["AGENTS", "IQL", "TD3BC", "Agent", "AgentConfig", "ConsistencyAC", "ConsistencyBC", "ConsistencyFQL",
           "DiffusionBC", "DiffusionQL", "FQLConfig", "IQLConfig", "Metrics", "ReBRAC", "ReBRACConfig", "TD3BCConfig",
           "make_agent"]
