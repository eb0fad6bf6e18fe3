"""A state-conditioned diffusion policy over normalised actions in [-1, 1]: the EDM denoiser
(Karras et al. 2022) trained by denoising score matching and sampled with the Heun sampler."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
from torch import Tensor

from cmrl.consistency import DiffusionConfig
from cmrl.consistency.edm import denoising_loss, edm_c_out, edm_c_skip, heun_sample

from .conditioned import NoiseConditionedNet


class DiffusionPolicy(NoiseConditionedNet):
    """D_phi(x, sigma | s) = c_skip(sigma) x + c_out(sigma) F_phi(c_in(sigma) x, c_noise(sigma) | s).

    Trained by `loss`: E[lambda(sigma) ||D_phi(a + sigma z, sigma | s) - a||^2] with ln(sigma) ~
    N(P_mean, P_std^2). Acting (`sample`) integrates the probability-flow ODE with EDM's deterministic
    Heun sampler from x = sigma_max z down to sigma = 0 and clamps the result into [-1, 1]. The
    denoiser itself is unbounded: a consistency-distillation student needs its exact ODE.
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden_dims: Sequence[int], time_embed_dim: int,
                 diffusion: DiffusionConfig):
        super().__init__(obs_dim, action_dim, hidden_dims, time_embed_dim, diffusion.sigma_data)
        self.sigma_max = diffusion.sigma_max

    def forward(self, x: Tensor, sigma: Tensor, obs: Tensor) -> Tensor:
        """D_phi(x, sigma | s) for x: (B, A), sigma: (B, 1), obs: (B, S) -> (B, A)."""
        return edm_c_skip(sigma, self.sigma_data) * x + edm_c_out(sigma, self.sigma_data) * self.network(x, sigma, obs)

    def loss(self, obs: Tensor, actions: Tensor, sigma: Tensor, z: Tensor) -> Tensor:
        """lambda(sigma) ||D_phi(a + sigma z, sigma | s) - a||^2, one value per row."""
        return denoising_loss(self(actions + sigma * z, sigma, obs), actions, sigma, self.sigma_data)

    def sample(self, obs: Tensor, sigmas: Sequence[float], generator: torch.Generator | None = None,
               noise: Optional[Tensor] = None) -> Tensor:
        """Actions (B, A) in [-1, 1] by the Heun sampler over `sigmas` (t_0 = sigma_max > ... > 0, see
        `edm_sampling_sigmas`) from x = t_0 z; z ~ N(0, I) from `generator`, or given as `noise`."""
        if noise is None:
            noise = torch.randn(obs.shape[0], self.action_dim, device=obs.device, dtype=obs.dtype,
                                generator=generator)
        actions = heun_sample(lambda x, s: self(x, s, obs), sigmas[0] * noise, sigmas)
        return actions.clamp(-1.0, 1.0)
