"""Distance metrics d(x, y) and loss weights lambda(sigma_n) of the consistency objective."""
from __future__ import annotations

import math

from torch import Tensor


def squared_l2(x: Tensor, y: Tensor) -> Tensor:
    """d(x, y) = ||x - y||_2^2, summed over the last dimension (one value per sample)."""
    return (x - y).square().sum(-1)


def pseudo_huber(x: Tensor, y: Tensor, c: float) -> Tensor:
    """iCT's d(x, y) = sqrt(||x - y||_2^2 + c^2) - c, one value per sample."""
    return ((x - y).square().sum(-1) + c * c).sqrt() - c


def default_huber_c(dim: int) -> float:
    """c = 0.00054 sqrt(d), iCT's choice for data of dimensionality d."""
    return 0.00054 * math.sqrt(dim)


def inverse_delta_weight(sigma_n: Tensor, sigma_next: Tensor) -> Tensor:
    """iCT's lambda(sigma_n) = 1 / (sigma_{n+1} - sigma_n)."""
    return 1.0 / (sigma_next - sigma_n)
