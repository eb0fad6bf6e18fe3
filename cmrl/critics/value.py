"""A state-value function V(s) (IQL's expectile value)."""
from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from cmrl.nn import ensemble_mlp


class ValueFunction(nn.Module):
    """V(s) -> (B,): the critics' MLP with one member, so that LayerNorm and the activation match them."""

    def __init__(self, obs_dim: int, hidden_dims: Sequence[int], layer_norm: bool = False, activation: str = "mish"):
        super().__init__()
        self.net = ensemble_mlp(obs_dim, hidden_dims, 1, 1, layer_norm, activation)

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(obs.unsqueeze(0)).reshape(-1)
