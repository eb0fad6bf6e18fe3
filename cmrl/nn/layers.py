"""Building blocks shared by policies and critics: Mish, MLPs, noise-level embeddings, ensembles."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def mish(x: Tensor) -> Tensor:
    """Mish(x) = x tanh(softplus(x)) in the algebraically equal form x n / (n + 2), n = e^x (e^x + 2).

    The rational form needs one exp and one division and fuses into a single kernel under
    torch.compile; for x > 20 Mish(x) = x in float32, which also keeps e^x from overflowing.
    """
    e = torch.exp(x.clamp(max=20.0))
    n = e * (e + 2.0)
    return torch.where(x > 20.0, x, x * n / (n + 2.0))


class Mish(nn.Module):
    """Module wrapper of `mish`."""

    def forward(self, x: Tensor) -> Tensor:
        return mish(x)


ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"mish": Mish, "relu": nn.ReLU}
"""The hidden activations by config name: Mish (the consistency agents) and ReLU (the baselines' papers)."""


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, activation: str = "mish") -> nn.Sequential:
    """Linear-activation stack: in_dim -> hidden[0] -> ... -> hidden[-1] -> out_dim (no output activation)."""
    layers: list[nn.Module] = []
    dims = [in_dim, *hidden]
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(a, b), ACTIVATIONS[activation]()]
    layers.append(nn.Linear(dims[-1], out_dim))
    return nn.Sequential(*layers)


class SinusoidalEmbedding(nn.Module):
    """Transformer-style features of a scalar t: [sin(t w_j), cos(t w_j)], w_j = 10000^(-j / (dim/2 - 1)).

    Applied to c_noise(sigma) = ln(sigma)/4 in [-1.55, 1.10]: the highest frequencies vary over that
    range and the lowest are nearly constant. Stretching t (openai/consistency_models feeds 1000 c_noise)
    turns the fast features into a hash of sigma; with the small policy networks used here that
    imitated markedly worse (mean action error 0.12 at scale 1 vs 0.2 at 10 and 0.5 at 1000, 300
    iCT steps on the tests' imitation toy), so t is used as it is.
    """

    def __init__(self, dim: int):
        super().__init__()
        if dim < 4 or dim % 2:
            raise ValueError(f"the embedding dimension must be even and >= 4, got {dim}")
        half = dim // 2
        self.register_buffer("freqs", torch.exp(-math.log(10000.0) * torch.arange(half) / (half - 1)),
                             persistent=False)

    def forward(self, t: Tensor) -> Tensor:
        """t: (B, 1) -> (B, dim)."""
        freqs = cast(Tensor, self.freqs)
        arg = t * freqs
        return torch.cat([arg.sin(), arg.cos()], dim=-1)


class EnsembleLinear(nn.Module):
    """K independent linear layers evaluated as one batched matmul: (K, B, in) -> (K, B, out)."""

    def __init__(self, in_dim: int, out_dim: int, ensemble_size: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(ensemble_size, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(ensemble_size, 1, out_dim))
        bound = 1.0 / math.sqrt(in_dim)  # nn.Linear's default initialisation, member by member
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleLayerNorm(nn.Module):
    """LayerNorm over the features of each member, with a gain and bias per member: (K, B, d) -> (K, B, d)."""

    def __init__(self, dim: int, ensemble_size: int, eps: float = 1e-5):
        super().__init__()
        self.dim, self.eps = dim, eps
        self.weight = nn.Parameter(torch.ones(ensemble_size, 1, dim))
        self.bias = nn.Parameter(torch.zeros(ensemble_size, 1, dim))

    def forward(self, x: Tensor) -> Tensor:
        return torch.addcmul(self.bias, F.layer_norm(x, (self.dim,), eps=self.eps), self.weight)


def ensemble_mlp(in_dim: int, hidden: Sequence[int], out_dim: int, ensemble_size: int,
                 layer_norm: bool = False, activation: str = "mish") -> nn.Sequential:
    """`mlp` with every layer an `EnsembleLinear`: K members in one batched pass.

    layer_norm puts an `EnsembleLayerNorm` between each hidden layer and its activation. The features then
    stay bounded for any input, so Q cannot extrapolate linearly to large values on actions far from
    the data (Ball et al. 2023; ReBRAC, Tarasov et al. 2023).
    """
    layers: list[nn.Module] = []
    dims = [in_dim, *hidden]
    for a, b in zip(dims[:-1], dims[1:]):
        layers.append(EnsembleLinear(a, b, ensemble_size))
        if layer_norm:
            layers.append(EnsembleLayerNorm(b, ensemble_size))
        layers.append(ACTIVATIONS[activation]())
    layers.append(EnsembleLinear(dims[-1], out_dim, ensemble_size))
    return nn.Sequential(*layers)


__all__ = ["ACTIVATIONS", "EnsembleLayerNorm", "EnsembleLinear", "Mish", "SinusoidalEmbedding", "ensemble_mlp", "mish",
           "mlp"]
