"""Small configurations shared by the training tests."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cmrl.training.config import TrainConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

TINY_OVERRIDES = [
    "steps=40", "batch_size=32", "eval_every=0", "eval_episodes=2", "eval_envs=2", "checkpoint_every=20",
    "device=cpu", "agent.hidden_dims=[32,32]", "agent.critic_hidden_dims=[32,32]", "agent.ema_start_step=5",
    "logger.progress_bar=false", "logger.console=false", "logger.log_every=10",
]
"""Command-line overrides of a run that takes about a second on the embedded Pendulum dataset."""


def tiny_config(**fields: object) -> TrainConfig:
    """TrainConfig equal to TINY_OVERRIDES, with `fields` set on top."""
    cfg = TrainConfig(steps=40, batch_size=32, eval_every=0, eval_episodes=2, eval_envs=2, checkpoint_every=20,
                      device="cpu")
    cfg.agent.hidden_dims = [32, 32]
    cfg.agent.critic_hidden_dims = [32, 32]
    cfg.agent.ema_start_step = 5
    cfg.logger.progress_bar = False
    cfg.logger.console = False
    cfg.logger.log_every = 10
    for key, value in fields.items():
        setattr(cfg, key, value)
    return cfg


def flat_tensors(state: object, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor of a nested state dict, keyed by its path."""
    out: dict[str, torch.Tensor] = {}
    if isinstance(state, dict):
        for key, value in state.items():
            out.update(flat_tensors(value, f"{prefix}/{key}"))
    elif isinstance(state, (list, tuple)):
        for i, value in enumerate(state):
            out.update(flat_tensors(value, f"{prefix}/{i}"))
    elif isinstance(state, torch.Tensor):
        out[prefix] = state
    return out


def compose(overrides: list[str]) -> Any:
    """configs/config.yaml composed by Hydra with `overrides`, the hydra node included."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from cmrl.training.config import register_schema

    register_schema()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return hydra_compose("config", overrides=overrides, return_hydra_config=True)
