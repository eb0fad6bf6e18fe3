"""The network F(c_in(sigma) x, c_noise(sigma) | s) that both policy families precondition."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from cmrl.consistency import network_inputs
from cmrl.nn import SinusoidalEmbedding, mlp


class NoiseConditionedNet(nn.Module):
    """An MLP over [c_in(sigma) x, emb(c_noise(sigma)), s] (Mish unless `activation` says otherwise): the
    free network F of a consistency function or of a denoiser, which the subclasses combine with x by
    their own scalings."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_dims: Sequence[int], time_embed_dim: int,
                 sigma_data: float, activation: str = "mish"):
        super().__init__()
        self.obs_dim, self.action_dim, self.sigma_data = obs_dim, action_dim, sigma_data
        self.embed = SinusoidalEmbedding(time_embed_dim)
        self.net = mlp(action_dim + time_embed_dim + obs_dim, hidden_dims, action_dim, activation)

    def network(self, x: Tensor, sigma: Tensor, obs: Tensor) -> Tensor:
        """F(c_in(sigma) x, c_noise(sigma) | s) for x: (B, A), sigma: (B, 1), obs: (B, S) -> (B, A)."""
        x_in, t = network_inputs(x, sigma, self.sigma_data)
        return self.net(torch.cat([x_in, self.embed(t), obs], dim=-1))
