"""Small configurations shared by the training tests."""
from __future__ import annotations

import copy
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
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


def load_script(name: str) -> ModuleType:
    """scripts/<name>.py imported as a module (the scripts are not a package)."""
    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"cmrl_{name}_script", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


def assert_resume_is_exact(cfg: AgentConfig, batches: list[Batch], obs: torch.Tensor) -> dict[str, torch.Tensor]:
    """len(batches) // 2 updates, a state_dict round trip into a fresh agent (another seed), the other
    half on both: every tensor, every metric and the actions on `obs` must be equal bit for bit. Returns
    the resumed agent's tensors (for checks of what the state holds)."""
    half = len(batches) // 2
    obs_dim, action_dim = batches[0].observations.shape[1], batches[0].actions.shape[1]
    torch.manual_seed(0)
    straight = make_agent(cfg, obs_dim, action_dim, len(batches))
    for b in batches[:half]:
        straight.update(b)
    state, rng = copy.deepcopy(straight.state_dict()), torch.get_rng_state()
    straight_metrics = [straight.update(b) for b in batches[half:]]
    torch.manual_seed(123)
    resumed = make_agent(cfg, obs_dim, action_dim, len(batches))
    resumed.load_state_dict(state)
    torch.set_rng_state(rng)
    resumed_metrics = [resumed.update(b) for b in batches[half:]]
    a, b = flat_tensors(straight.state_dict()), flat_tensors(resumed.state_dict())
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(ma[k].item() == mb[k].item() for ma, mb in zip(straight_metrics, resumed_metrics) for k in ma)
    assert torch.equal(straight.act(obs, torch.Generator().manual_seed(3)),
                       resumed.act(obs, torch.Generator().manual_seed(3)))
    assert straight.state_dict().keys() == resumed.state_dict().keys()
    return b


def toy_batch(n: int = 64, obs_dim: int = 3, action_dim: int = 2, seed: int = 0) -> Batch:
    """A random batch: observations N(0, I), actions U[-1, 1], rewards N(0, 1), 10 % terminals."""
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.randn(n, obs_dim, generator=g), torch.rand(n, action_dim, generator=g) * 2 - 1,
                 torch.randn(n, generator=g), torch.randn(n, obs_dim, generator=g),
                 (torch.rand(n, generator=g) < 0.1).float())
