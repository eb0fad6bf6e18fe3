"""A state-conditioned consistency policy pi(a | s) over normalised actions in [-1, 1]."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
from torch import Tensor

from cmrl.consistency import ConsistencyConfig, consistency_output, multistep_sample

from .conditioned import NoiseConditionedNet


class ConsistencyPolicy(NoiseConditionedNet):
    """f_theta(x, sigma | s): the consistency function of actions given the state.

    The network F sees [c_in(sigma) x, emb(c_noise(sigma)), s]; the output is combined with x by
    `cmrl.consistency.consistency_output`, bounded (tanh) by default so that actions stay in [-1, 1]
    while f(x, sigma_min | s) = x holds exactly. Acting draws z ~ N(0, sigma_max^2 I) and applies
    Algorithm 1 over the given sigmas.
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden_dims: Sequence[int], time_embed_dim: int,
                 consistency: ConsistencyConfig, bounded: bool = True, activation: str = "mish"):
        super().__init__(obs_dim, action_dim, hidden_dims, time_embed_dim, consistency.sigma_data, activation)
        self.sigma_min = consistency.sigma_min
        self.bounded = bounded

    def forward(self, x: Tensor, sigma: Tensor, obs: Tensor) -> Tensor:
        """f_theta(x, sigma | s) for x: (B, A), sigma: (B, 1), obs: (B, S) -> (B, A)."""
        return consistency_output(x, sigma, self.network(x, sigma, obs), self.sigma_min, self.sigma_data,
                                  self.bounded)

    def sample(self, obs: Tensor, sigmas: Sequence[float], generator: torch.Generator | None = None,
               noise: Optional[Sequence[Tensor]] = None) -> Tensor:
        """Actions (B, A) by one- or multistep consistency sampling; differentiable w.r.t. theta.

        The noise z_1..z_n is drawn from `generator`, or given as `noise` (see `sampling_noise`).
        Bounded policies clamp the result to [-1, 1]: after the first step the input x_hat is noisy,
        and c_skip(tau_n) x_hat (0.038 x_hat at tau = 2.5) can carry f past the bounds. Clamping keeps
        target actions and the actor's Q-loss actions inside the action box the critic was trained on.
        """
        actions = multistep_sample(lambda x, s: self(x, s, obs), (obs.shape[0], self.action_dim), sigmas,
                                   self.sigma_min, device=obs.device, dtype=obs.dtype, generator=generator,
                                   noise=noise)
        return actions.clamp(-1.0, 1.0) if self.bounded else actions
