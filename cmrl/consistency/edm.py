"""The EDM diffusion maths (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based
Generative Models"): preconditioning, loss weight, noise-level sampling, the probability-flow ODE's
solver steps and the deterministic Heun sampler.

A denoiser D(x, sigma) estimates the clean sample from x = y + sigma n, n ~ N(0, I). Its network F
is preconditioned as (Table 1)

    D(x, sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, c_noise(sigma))

and the probability-flow ODE of the variance-exploding process sigma(t) = t is

    dx/dsigma = (x - D(x, sigma)) / sigma.

The consistency scalings of `karras.py` are these with the boundary shifted to sigma_min: at
sigma_min = 0 they coincide (c_in and c_noise are shared as they are).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .config import SOLVERS
from .karras import karras_sigmas
from .metrics import squared_l2

Denoiser = Callable[[Tensor, Tensor], Tensor]
"""D(x, sigma) -> estimate of the clean sample; x: (B, D), sigma: (B, 1)."""


def edm_c_skip(sigma: Tensor, sigma_data: float) -> Tensor:
    """c_skip(sigma) = sigma_data^2 / (sigma^2 + sigma_data^2)."""
    return sigma_data ** 2 / (sigma ** 2 + sigma_data ** 2)


def edm_c_out(sigma: Tensor, sigma_data: float) -> Tensor:
    """c_out(sigma) = sigma sigma_data / sqrt(sigma^2 + sigma_data^2)."""
    return sigma * sigma_data * (sigma ** 2 + sigma_data ** 2).rsqrt()


def edm_weight(sigma: Tensor, sigma_data: float) -> Tensor:
    """lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2 = 1 / c_out(sigma)^2: the
    denoising loss then weighs every noise level alike at initialisation."""
    return (sigma ** 2 + sigma_data ** 2) / (sigma * sigma_data) ** 2


def lognormal_sigmas(batch_size: int, p_mean: float = -1.2, p_std: float = 1.2,
                     generator: torch.Generator | None = None,
                     device: torch.device | str | None = None) -> Tensor:
    """ln(sigma) ~ N(P_mean, P_std^2), shaped (B, 1): the training noise levels of EDM."""
    return (p_mean + p_std * torch.randn(batch_size, 1, generator=generator, device=device)).exp()


def denoising_loss(denoised: Tensor, clean: Tensor, sigma: Tensor, sigma_data: float) -> Tensor:
    """lambda(sigma) ||D(y + sigma n, sigma) - y||^2, one value per sample (summed over the last dim)."""
    return edm_weight(sigma, sigma_data).squeeze(-1) * squared_l2(denoised, clean)


def pf_ode_derivative(x: Tensor, sigma: Tensor | float, denoised: Tensor) -> Tensor:
    """dx/dsigma = (x - D(x, sigma)) / sigma."""
    return (x - denoised) / sigma


def euler_step(denoiser: Denoiser, x: Tensor, sigma: Tensor | float, sigma_next: Tensor | float) -> Tensor:
    """One Euler step of the PF-ODE from sigma to sigma_next (either way):

        x' = x + (sigma_next - sigma) d,   d = (x - D(x, sigma)) / sigma
    """
    level = _level(sigma, x)
    return x + (sigma_next - sigma) * pf_ode_derivative(x, level, denoiser(x, level))


def heun_step(denoiser: Denoiser, x: Tensor, sigma: Tensor | float, sigma_next: Tensor | float) -> Tensor:
    """One Heun step (EDM Algorithm 1, lines 5-8): the Euler estimate x_e, then the trapezoidal rule

        x' = x + (sigma_next - sigma) (d + d') / 2,   d' = (x_e - D(x_e, sigma_next)) / sigma_next

    sigma_next must be > 0 (the sampler's last step to sigma = 0 is an Euler step).
    """
    level, level_next = _level(sigma, x), _level(sigma_next, x)
    d = pf_ode_derivative(x, level, denoiser(x, level))
    x_euler = x + (sigma_next - sigma) * d
    d_next = pf_ode_derivative(x_euler, level_next, denoiser(x_euler, level_next))
    return x + (sigma_next - sigma) * 0.5 * (d + d_next)


def ode_step(denoiser: Denoiser, x: Tensor, sigma: Tensor | float, sigma_next: Tensor | float,
             solver: str) -> Tensor:
    """One `solver` step (euler | heun) of the PF-ODE from sigma to sigma_next."""
    if solver == "euler":
        return euler_step(denoiser, x, sigma, sigma_next)
    if solver == "heun":
        return heun_step(denoiser, x, sigma, sigma_next)
    raise ValueError(f"the ODE solver must be one of {', '.join(SOLVERS)}, got {solver!r}")


def edm_sampling_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float) -> list[float]:
    """t_0 = sigma_max > ... > t_{N-1} = sigma_min, then t_N = 0: the N-step Karras grid of EDM Eq. 5."""
    if steps < 1:
        raise ValueError(f"the number of sampling steps must be >= 1, got {steps}")
    if steps == 1:
        return [sigma_max, 0.0]
    return [*karras_sigmas(steps, sigma_min, sigma_max, rho).flip(0).tolist(), 0.0]


def heun_sample(denoiser: Denoiser, x_max: Tensor, sigmas: Sequence[float]) -> Tensor:
    """EDM Algorithm 1 (deterministic): from x_0 = x_max (sigma_max z), Heun steps from t_i to t_{i+1},
    an Euler step where t_{i+1} = 0. With `edm_sampling_sigmas(N, ...)`: N steps, 2N - 1 evaluations of D."""
    x = x_max
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        step = heun_step if sigma_next > 0 else euler_step
        x = step(denoiser, x, sigma, sigma_next)
    return x


def _level(sigma: Tensor | float, x: Tensor) -> Tensor:
    """sigma as a (B, 1) tensor for the denoiser (a tensor is passed through)."""
    if isinstance(sigma, Tensor):
        return sigma
    return torch.full((x.shape[0], 1), sigma, device=x.device, dtype=x.dtype)
