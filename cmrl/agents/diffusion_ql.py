"""Diffusion-QL (Wang, Hunt & Zhou 2023, "Diffusion Policies as an Expressive Policy Class for Offline
RL") on the EDM diffusion policy of Diffusion-BC, with the Q-critic of Consistency-AC (q_critic.py).

Per gradient step, with (s, a, r, s', d) from the dataset:

    critic:  y = r + gamma (1 - d) min_k Q'_k(s', a'),  a' = S_N(pi_ema, s', z')  (max over M samples of
             a' with max_q_backup; max(y, G_t) with critic_target=td_return_bound)
             L_Q = sum_k E[(Q_k(s, a) - y)^2]
    actor:   L_pi = L_DSM(phi) + eta * ( -E[Q(s, a_pi)] / E|Q(s, a_pi)| ),  a_pi = S_N(pi_phi, s, z)

L_DSM is Diffusion-BC's denoising loss E[lambda(sigma) ||D_phi(a + sigma z, sigma | s) - a||^2] (the
paper's DDPM noise-prediction loss in EDM form); Q is the mean of the K critics with their parameters
frozen and the denominator detached (the paper's normalisation, independent of the reward scale).
S_N is EDM's deterministic Heun sampler on the N-point Karras grid, N = agent.train_sampling_steps,
from x = sigma_max z: a_pi backpropagates through all of its 2N - 1 denoiser evaluations, as the paper
backpropagates through its 5-step DDPM chain. Acting runs the same sampler with
agent.diffusion.sampling_steps steps on act_candidates samples per state and takes the one of the
highest min_k Q_k (the paper samples 50 and draws one by softmax of Q'; cmrl's candidates take the
argmax). The acting EMA phi_ema (decay ema_decay, a copy before ema_start_step) gives the target
actions a' and the actions at evaluation, as in the paper.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from cmrl.consistency.edm import edm_sampling_sigmas
from cmrl.data.store import Batch
from cmrl.policies import DiffusionPolicy

from .base import Metrics
from .config import AgentConfig
from .diffusion_bc import DiffusionBC
from .q_critic import QCriticAgent


class DiffusionQLNoise(NamedTuple):
    """Every random draw of one update, in the order drawn (a pytree of tensors, for the fast path)."""

    target: list[Tensor]  # [z'] of the target actions a' (B * backup_samples rows with max_q_backup)
    sigma: Tensor  # (B, 1) noise levels of L_DSM, ln(sigma) ~ N(P_mean, P_std^2)
    z: Tensor  # (B, A) standard normal of L_DSM
    actor: list[Tensor]  # [z] of a_pi in the Q loss (empty when eta = 0)


class DiffusionQL(QCriticAgent[DiffusionPolicy], DiffusionBC):
    """Diffusion-BC plus a Q-ensemble, its targets, and the eta-weighted Q loss through the sampler."""

    behaviour_name = "denoising"

    def __init__(self, cfg: AgentConfig, obs_dim: int, action_dim: int, total_steps: int,
                 device: torch.device | str = "cpu"):
        super().__init__(cfg, obs_dim, action_dim, total_steps, device)
        d = cfg.diffusion
        self.train_sigmas = edm_sampling_sigmas(cfg.train_sampling_steps, d.sigma_min, d.sigma_max, d.rho)

    def draw_noise(self, batch_size: int) -> DiffusionQLNoise:  # type: ignore[override]
        """Target-action noise, then L_DSM's sigma and z, then the noise of a_pi when eta > 0."""
        target = self._sampling_noise(batch_size * self._backup_samples)
        denoising = super().draw_noise(batch_size)
        actor = self._sampling_noise(batch_size) if self.cfg.eta > 0 else []
        return DiffusionQLNoise(target=target, sigma=denoising.sigma, z=denoising.z, actor=actor)

    def behaviour_loss(self, batch: Batch, noise: DiffusionQLNoise) -> tuple[Tensor, Metrics]:
        """L_DSM on the noise's sigma and z."""
        loss, metrics = self.denoising_loss(batch, noise.sigma, noise.z)
        metrics["loss/denoising"] = loss.detach()
        return loss, metrics

    def train_sample(self, policy: DiffusionPolicy, obs: Tensor, noise: list[Tensor]) -> Tensor:
        """The Heun sampler on train_sigmas from sigma_max z (z = noise[0]), clamped into [-1, 1];
        differentiable through every step."""
        return policy.sample(obs, self.train_sigmas, noise=noise[0])

    @property
    def train_draws(self) -> int:
        """The Heun sampler is deterministic given x = sigma_max z: one draw."""
        return 1
