"""From raw environment observations to environment actions: transforms around an agent."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from cmrl.agents import Agent, make_agent
from cmrl.data.transforms import DataTransforms
from cmrl.envs.collection import Behaviour
from cmrl.training.checkpoint import load_checkpoint, resolve_checkpoint
from cmrl.training.config import TrainConfig, to_train_config
from cmrl.training.runtime import resolve_device

ActFn = Callable[[np.ndarray], np.ndarray]


def make_act_fn(agent: Agent, transforms: DataTransforms, seed: int) -> ActFn:
    """obs (B, S) raw -> normalise -> agent.act -> unscale to the env's bounds -> (B, A) float32.

    Sampling noise comes from a generator of its own, seeded here, so acting never draws from (and
    never perturbs) the training random streams: evaluations are reproducible and resume stays exact.
    """
    generator = torch.Generator(device=agent.device).manual_seed(seed)

    def act(obs: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=agent.device)
        actions = agent.act(transforms.normalize_obs(x), generator=generator)
        return transforms.unscale_action(actions).cpu().numpy().astype(np.float32)

    return act


@dataclass
class LoadedPolicy:
    """A trained agent restored from a checkpoint, with what acting in its environment needs."""

    agent: Agent
    transforms: DataTransforms
    env_id: str
    ref_min: Optional[float]
    ref_max: Optional[float]
    config: TrainConfig
    step: int


def load_policy(checkpoint: str | Path, device: str = "auto", act_candidates: Optional[int] = None,
                act_temperature: Optional[float] = None, act_sampling_steps: Optional[int] = None) -> LoadedPolicy:
    """Restore the agent and data transforms of a checkpoint written by scripts/train.py.

    `act_candidates`, `act_temperature` and `act_sampling_steps` replace the acting settings the agent
    was trained with (None keeps them); they change how it acts, not what it learned. A new number of
    sampling steps acts on the Karras sigmas for that number (explicit `act_sampling_sigmas` are dropped);
    for diffusion_bc it sets the Heun steps `agent.diffusion.sampling_steps`.
    """
    payload = load_checkpoint(resolve_checkpoint(checkpoint))
    cfg = to_train_config(payload["config"])
    if act_candidates is not None:
        cfg.agent.act_candidates = act_candidates
    if act_temperature is not None:
        cfg.agent.act_temperature = act_temperature
    if act_sampling_steps is not None and act_sampling_steps != cfg.agent.act_sampling_steps:
        cfg.agent.act_sampling_steps = act_sampling_steps
        cfg.agent.act_sampling_sigmas = None
    if act_sampling_steps is not None:
        cfg.agent.diffusion.sampling_steps = act_sampling_steps
    agent = make_agent(cfg.agent, payload["obs_dim"], payload["action_dim"], cfg.steps, resolve_device(device))
    agent.load_state_dict(payload["agent"])
    info = payload["dataset_info"]
    return LoadedPolicy(agent=agent, transforms=DataTransforms.from_state_dict(payload["transforms"]),
                        env_id=payload["env_id"], ref_min=info.get("ref_min_score"),
                        ref_max=info.get("ref_max_score"), config=cfg, step=payload["step"])


def checkpoint_behaviour(path: str, device: str, seed: int) -> Behaviour:
    """A checkpoint's policy as the behaviour that collects a dataset (scripts/collect.py); its acting
    noise comes from a generator seeded with `seed`."""
    loaded = load_policy(path, device)
    refs = None
    if loaded.ref_min is not None and loaded.ref_max is not None:
        refs = (float(loaded.ref_min), float(loaded.ref_max))
    name = f"{loaded.config.agent.algo} checkpoint {path} (step {loaded.step})"
    return Behaviour(make_act_fn(loaded.agent, loaded.transforms, seed), name, loaded.env_id, refs, str(path),
                     int(loaded.step))
