"""MLP policies over normalised actions in [-1, 1]: deterministic and Gaussian (the baselines' actors) and
the noise-conditioned one-step policy of Consistency-FQL."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from cmrl.nn import mlp

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # the clip of the Gaussian policy's log sigma (CORL's IQL)


class DeterministicPolicy(nn.Module):
    """pi(s) = tanh(MLP(s)): TD3+BC's and ReBRAC's actor (and IQL's deterministic variant)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_dims: Sequence[int], activation: str = "relu"):
        super().__init__()
        self.net = mlp(obs_dim, hidden_dims, action_dim, activation)

    def forward(self, obs: Tensor) -> Tensor:
        """(B, S) -> actions (B, A) in [-1, 1]."""
        return torch.tanh(self.net(obs))


class GaussianPolicy(DeterministicPolicy):
    """pi(a | s) = N(mu(s), diag sigma^2) with mu(s) = tanh(MLP(s)) and a state-independent log sigma
    clipped to [LOG_STD_MIN, LOG_STD_MAX] (IQL as CORL implements it). `forward` is the mean, with
    which the agent acts."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_dims: Sequence[int], activation: str = "relu"):
        super().__init__(obs_dim, action_dim, hidden_dims, activation)
        self.log_std = nn.Parameter(torch.zeros(action_dim))

    def log_prob(self, obs: Tensor, actions: Tensor) -> Tensor:
        """log pi(a | s) = sum_j [ -(a_j - mu_j)^2 / (2 sigma_j^2) - log sigma_j - log(2 pi) / 2 ], shape (B,)."""
        log_std = self.log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        z = (actions - self(obs)) * torch.exp(-log_std)
        return (-0.5 * z.square() - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


class OneStepPolicy(nn.Module):
    """mu_omega(s, z) = tanh(MLP([s, z])), z ~ N(0, I) of the action's size: a stochastic policy that draws
    an action in one network pass (flow Q-learning's one-step policy; FQL clips where this squashes)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_dims: Sequence[int], activation: str = "mish"):
        super().__init__()
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.net = mlp(obs_dim + action_dim, hidden_dims, action_dim, activation)

    def forward(self, obs: Tensor, z: Tensor) -> Tensor:
        """(B, S), (B, A) -> actions (B, A) in [-1, 1]."""
        return torch.tanh(self.net(torch.cat([obs, z], dim=-1)))
