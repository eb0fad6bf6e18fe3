"""An ensemble of K Q-functions Q_k(s, a), evaluated in one batched pass."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call

from cmrl.nn import ensemble_mlp


class QEnsemble(nn.Module):
    """Q_1..Q_K(s, a) -> (K, B). K = 2 with a min over members is clipped double Q (Fujimoto et al. 2018).

    Q_k(s, a) = mu + s * g_k(s, a) for MLPs g_k: the output offset mu and scale s are fixed buffers
    (0 and 1 unless `set_value_scale` sets them, e.g. to the mean and std of the data's returns, so
    that the networks fit O(1) values from the first update instead of growing their output to the
    return's scale). They are part of the state dict; a state dict saved before they existed loads
    with mu = 0, s = 1, the model it was.
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden_dims: Sequence[int], ensemble_size: int = 2,
                 layer_norm: bool = False):
        super().__init__()
        if ensemble_size < 1:
            raise ValueError(f"the critic ensemble needs at least one member, got {ensemble_size}")
        self.ensemble_size = ensemble_size
        self.net = ensemble_mlp(obs_dim + action_dim, hidden_dims, 1, ensemble_size, layer_norm)
        self.register_buffer("value_offset", torch.zeros(()))
        self.register_buffer("value_scale", torch.ones(()))

    def set_value_scale(self, offset: float, scale: float) -> None:
        """Fix mu and s of Q = mu + s * g (s > 0)."""
        if not scale > 0:
            raise ValueError(f"the critic's value scale must be > 0, got {scale}")
        self.value_offset.fill_(offset)
        self.value_scale.fill_(scale)

    def forward(self, obs: Tensor, action: Tensor) -> Tensor:
        x = torch.cat([obs, action], dim=-1)
        return self.value_offset + self.value_scale * self.net(x.expand(self.ensemble_size, *x.shape)).squeeze(-1)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object, **kwargs: object) -> None:
        """Fill in mu = 0 and s = 1 for a state dict saved before the buffers existed."""
        for name, default in (("value_offset", 0.0), ("value_scale", 1.0)):
            state_dict.setdefault(prefix + name, torch.full((), default))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def frozen(self, obs: Tensor, action: Tensor) -> Tensor:
        """Q(s, a) with the parameters detached: gradients reach `action` only.

        Used in the actor loss, so that backpropagation computes no critic weight gradients.
        """
        params = {name: p.detach() for name, p in self.named_parameters()}
        return functional_call(self, params, (obs, action))
