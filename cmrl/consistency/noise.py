"""Sampling of the noise index n of the pair (sigma_n, sigma_{n+1}) used by one CT loss term."""
from __future__ import annotations

import torch
from torch import Tensor


def uniform_indices(batch_size: int, num_scales: int, generator: torch.Generator | None = None,
                    device: torch.device | str | None = None) -> Tensor:
    """n ~ U{0, ..., N-2} (0-based), so that both sigma_n and sigma_{n+1} lie on the N-point grid."""
    return torch.randint(0, num_scales - 1, (batch_size,), generator=generator, device=device)


def lognormal_index_probs(sigmas: Tensor, p_mean: float = -1.1, p_std: float = 2.0) -> Tensor:
    """iCT (Song & Dhariwal 2023, Eq. 7): p(n) proportional to

        erf((ln sigma_{n+1} - P_mean) / (sqrt(2) P_std)) - erf((ln sigma_n - P_mean) / (sqrt(2) P_std))

    over the N-1 adjacent pairs of the ascending grid `sigmas`. Returns probabilities summing to 1.
    """
    cdf = torch.erf((sigmas.double().log() - p_mean) / (2 ** 0.5 * p_std))
    mass = cdf[1:] - cdf[:-1]
    return mass / mass.sum()

