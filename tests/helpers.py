"""Small configurations shared by the training tests."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from cmrl.agents import AgentConfig, make_agent
from cmrl.data import Batch
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


def known_q_toy_means(config_for_eta: Callable[[float], AgentConfig], steps: int,
                      q_tolerance: float) -> dict[float, float]:
    """The toy with known Q of the actor-critics: states N(0, I_2), actions uniform on [-1, 1], reward
    r = a, gamma = 0 (the configs' discount), so Q(s, a) = a. Trains an agent of `config_for_eta(eta)` for
    `steps` updates of batch 128 for eta = 0 and 1, checks that its critic has learned Q(s, a) = a within
    `q_tolerance`, and returns the mean action it takes on fresh states for each eta."""
    n = 1024
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(n, 2, generator=g)
    act = torch.rand(n, 1, generator=g) * 2 - 1
    test_obs = torch.randn(512, 2, generator=g)
    means = {}
    for eta in (0.0, 1.0):
        torch.manual_seed(0)
        agent = make_agent(config_for_eta(eta), 2, 1, steps)
        batches = torch.Generator().manual_seed(0)
        for _ in range(steps):
            i = torch.randint(0, n, (128,), generator=batches)
            agent.update(Batch(obs[i], act[i], act[i, 0].clone(), obs[i], torch.zeros(128)))
        grid = torch.linspace(-1, 1, 11).view(-1, 1)
        with torch.no_grad():
            q = agent.critic(torch.zeros(11, 2), grid)  # type: ignore[attr-defined]
        assert (q - grid.view(1, -1)).abs().max().item() < q_tolerance
        means[eta] = agent.act(test_obs, torch.Generator().manual_seed(2)).mean().item()
    return means
