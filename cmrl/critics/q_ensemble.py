"""An ensemble of K Q-functions Q_k(s, a), evaluated in one batched pass."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call

from cmrl.nn import ensemble_mlp


class QEnsemble(nn.Module):
    """Q_1..Q_K(s, a) -> (K, B). K = 2 with a min over members is clipped double Q (Fujimoto et al. 2018).

    With `layer_norm`, a LayerNorm precedes each hidden activation (as in ReBRAC and Ball et al.
    2023), which bounds how far Q can extrapolate on actions far from the data.
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden_dims: Sequence[int], ensemble_size: int = 2,
                 layer_norm: bool = False, activation: str = "mish"):
        super().__init__()
        if ensemble_size < 1:
            raise ValueError(f"the critic ensemble needs at least one member, got {ensemble_size}")
        self.ensemble_size = ensemble_size
        self.net = ensemble_mlp(obs_dim + action_dim, hidden_dims, 1, ensemble_size, layer_norm, activation)

    def forward(self, obs: Tensor, action: Tensor) -> Tensor:
        x = torch.cat([obs, action], dim=-1)
        return self.net(x.expand(self.ensemble_size, *x.shape)).squeeze(-1)

    def frozen(self, obs: Tensor, action: Tensor) -> Tensor:
        """Q(s, a) with the parameters detached: gradients reach `action` only.

        Used in the actor loss, so that backpropagation computes no critic weight gradients.
        """
        params = {name: p.detach() for name, p in self.named_parameters()}
        return functional_call(self, params, (obs, action))
