"""The noise-level grid and the consistency-model scalings (Song et al. 2023, Karras et al. 2022).

Symbols follow the papers: sigma_min = epsilon (the boundary), sigma_max = T, sigma_data the data
standard deviation, rho the grid's curvature.
"""
from __future__ import annotations

import torch
from torch import Tensor


def karras_sigmas(num_scales: int, sigma_min: float, sigma_max: float, rho: float,
                  device: torch.device | str | None = None) -> Tensor:
    """The Karras grid sigma_1 = sigma_min < ... < sigma_N = sigma_max, ascending (float64).

        sigma_i = (sigma_min^(1/rho) + (i-1)/(N-1) * (sigma_max^(1/rho) - sigma_min^(1/rho)))^rho

    The end points are set exactly so that the boundary index gives sigma_min to the bit.
    """
    if num_scales < 2:
        raise ValueError(f"a sigma grid needs at least 2 points, got {num_scales}")
    ramp = torch.linspace(0.0, 1.0, num_scales, dtype=torch.float64, device=device)
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    sigmas = (lo + ramp * (hi - lo)) ** rho
    sigmas[0], sigmas[-1] = sigma_min, sigma_max
    return sigmas


def c_skip(sigma: Tensor, sigma_min: float, sigma_data: float) -> Tensor:
    """c_skip(sigma) = sigma_data^2 / ((sigma - sigma_min)^2 + sigma_data^2); exactly 1 at sigma_min."""
    return sigma_data ** 2 / ((sigma - sigma_min) ** 2 + sigma_data ** 2)


def c_out(sigma: Tensor, sigma_min: float, sigma_data: float) -> Tensor:
    """c_out(sigma) = sigma_data (sigma - sigma_min) / sqrt(sigma_data^2 + sigma^2); exactly 0 at sigma_min."""
    return sigma_data * (sigma - sigma_min) / (sigma_data ** 2 + sigma ** 2).sqrt()


def c_in(sigma: Tensor, sigma_data: float) -> Tensor:
    """c_in(sigma) = 1 / sqrt(sigma^2 + sigma_data^2): scales the noisy input to unit variance."""
    return (sigma ** 2 + sigma_data ** 2).rsqrt()


def c_noise(sigma: Tensor) -> Tensor:
    """c_noise(sigma) = ln(sigma) / 4, the EDM conditioning of the network on the noise level."""
    return 0.25 * sigma.log()
