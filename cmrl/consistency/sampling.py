"""One-step and multistep consistency sampling (Song et al. 2023, Algorithm 1)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Optional

import torch
from torch import Tensor

from .karras import karras_sigmas

ConsistencyFn = Callable[[Tensor, Tensor], Tensor]
"""f(x, sigma) -> estimate of the clean sample; sigma has shape (batch, 1)."""


def default_sampling_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float) -> list[float]:
    """tau_1 = sigma_max > tau_2 > ... > tau_steps: the Karras grid of steps + 1 points, without sigma_min."""
    if steps < 1:
        raise ValueError(f"the number of sampling steps must be >= 1, got {steps}")
    return karras_sigmas(steps + 1, sigma_min, sigma_max, rho).flip(0)[:-1].tolist()


def sampling_noise(shape: tuple[int, ...], steps: int, device: torch.device | str | None = None,
                   dtype: torch.dtype = torch.float32, generator: torch.Generator | None = None) -> list[Tensor]:
    """z_1 .. z_steps ~ N(0, I), the draws Algorithm 1 consumes, in the order it consumes them."""
    return [torch.randn(shape, device=device, dtype=dtype, generator=generator) for _ in range(steps)]


def multistep_sample(f: ConsistencyFn, shape: tuple[int, ...], sigmas: Sequence[float], sigma_min: float,
                     device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
                     generator: torch.Generator | None = None,
                     noise: Optional[Sequence[Tensor]] = None) -> Tensor:
    """Algorithm 1: x <- f(tau_1 z_1, tau_1); then for each further tau_n,
    x_hat = x + sqrt(tau_n^2 - sigma_min^2) z_n and x <- f(x_hat, tau_n).

    One step when `sigmas` has one element. The z_n are drawn from `generator`, or taken from `noise`
    (drawn beforehand by `sampling_noise`, so that a compiled caller draws no random numbers inside
    the compiled region and consumes exactly the eager path's). Gradients flow through every step
    (the actor loss of Consistency-AC differentiates through the sampler).
    """
    if not sigmas:
        raise ValueError("multistep_sample needs at least one sigma")
    if any(tau <= sigma_min for tau in sigmas[1:]):
        raise ValueError(f"sampling sigmas after the first must exceed sigma_min, got {list(sigmas)}")
    if noise is None:
        noise = sampling_noise(shape, len(sigmas), device, dtype, generator)
    elif len(noise) != len(sigmas):
        raise ValueError(f"multistep_sample got {len(noise)} noise tensors for {len(sigmas)} sigmas")
    x = f(sigmas[0] * noise[0], _noise_level(sigmas[0], noise[0]))
    for tau, z in zip(sigmas[1:], noise[1:]):
        x = f(x + (tau ** 2 - sigma_min ** 2) ** 0.5 * z, _noise_level(tau, z))
    return x


def _noise_level(tau: float, z: Tensor) -> Tensor:
    """sigma = tau for every row of z, shaped (batch, 1)."""
    return torch.full((z.shape[0], 1), tau, device=z.device, dtype=z.dtype)
