"""Diffusion-BC: behaviour cloning with an EDM diffusion policy (Karras et al. 2022), a baseline of its
own and the teacher of consistency distillation (agent.consistency.objective=cd).

Per gradient step, with (s, a) from the dataset, ln(sigma) ~ N(P_mean, P_std^2) and z ~ N(0, I):

    L_DSM(phi) = E[ lambda(sigma) || D_phi(a + sigma z, sigma | s) - a ||^2 ],
    lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2

then the acting policy phi_ema <- decay phi_ema + (1 - decay) phi. Acting runs EDM's deterministic Heun
sampler on the Karras grid of N = agent.diffusion.sampling_steps points (sigma_max ... sigma_min, then 0):
2N - 1 evaluations of D per action (default N = 18, EDM's: 35 evaluations).
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor

from cmrl.consistency.edm import edm_sampling_sigmas, lognormal_sigmas
from cmrl.data.store import Batch
from cmrl.policies import DiffusionPolicy

from .base import Metrics
from .config import AgentConfig
from .policy_agent import PolicyAgent


class DiffusionNoise(NamedTuple):
    """The random draws of one update (a pytree of tensors, for the fast path)."""

    sigma: Tensor  # (B, 1) noise levels, ln(sigma) ~ N(P_mean, P_std^2)
    z: Tensor  # (B, A) standard normal


class DiffusionBC(PolicyAgent[DiffusionPolicy]):
    """The `Agent` of behaviour cloning with a diffusion policy."""

    def __init__(self, cfg: AgentConfig, obs_dim: int, action_dim: int, total_steps: int,
                 device: torch.device | str = "cpu"):
        d = cfg.diffusion
        policy = DiffusionPolicy(obs_dim, action_dim, cfg.hidden_dims, cfg.time_embed_dim, d)
        super().__init__(cfg, policy, obs_dim, action_dim, total_steps, device)
        self.act_sigmas = edm_sampling_sigmas(d.sampling_steps, d.sigma_min, d.sigma_max, d.rho)

    def draw_noise(self, batch_size: int) -> DiffusionNoise:
        """sigma, then z, from torch's global generator."""
        d = self.cfg.diffusion
        sigma = lognormal_sigmas(batch_size, d.p_mean, d.p_std, device=self.device)
        return DiffusionNoise(sigma=sigma, z=torch.randn(batch_size, self.action_dim, device=self.device))

    def denoising_loss(self, batch: Batch, sigma: Tensor, z: Tensor) -> tuple[Tensor, Metrics]:
        """L_DSM on the batch's (s, a) at noise levels `sigma` and draws `z`, with its parts below and
        above sigma = 1."""
        per_sample = self.policy.loss(batch.observations, batch.actions, sigma, z)
        low = (sigma.squeeze(-1) < 1.0).float()
        loss = per_sample.mean()
        return loss, {
            "loss/denoising_sigma_lt_1": (per_sample.detach() * low).sum() / low.sum().clamp(min=1.0),
            "loss/denoising_sigma_ge_1": (per_sample.detach() * (1 - low)).sum() / (1 - low).sum().clamp(min=1.0),
        }

    def actor_loss(self, batch: Batch, noise: Optional[DiffusionNoise] = None) -> tuple[Tensor, Metrics]:
        """L_DSM (Diffusion-QL adds its Q term); `noise` defaults to a fresh draw."""
        if noise is None:
            noise = self.draw_noise(batch.observations.shape[0])
        loss, metrics = self.denoising_loss(batch, noise.sigma, noise.z)
        metrics["loss/actor"] = loss.detach()
        return loss, metrics

    @property
    def act_draws(self) -> int:
        """The Heun sampler is deterministic given x = sigma_max z: one draw."""
        return 1

    def select_actions(self, obs: Tensor, noise: list[Tensor]) -> Tensor:
        """`act` given z of shape (B, A): the Heun sampler's actions, clamped into [-1, 1]."""
        return self.acting_policy.sample(obs, self.act_sigmas, noise=noise[0])
