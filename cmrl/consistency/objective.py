"""The consistency-training objective (Song et al. 2023, Eq. 10; Song & Dhariwal 2023):

    L^N(theta, theta^-) = E_n[ lambda(sigma_n) d( f_theta(x + sigma_{n+1} z, sigma_{n+1}),
                                                  f_theta^-(x + sigma_n z, sigma_n) ) ]

with z ~ N(0, I) shared by both terms, n drawn by the configured index sampling over the N(k)-point
Karras grid, and theta^- the EMA teacher (CT) or sg(theta) (iCT).

Consistency distillation (Song et al. 2023, Alg. 2 and Eq. 7) replaces the teacher's input
x + sigma_n z by x_hat_{sigma_n}, one step of a numerical solver (Euler or Heun) of the PF-ODE of a
pretrained denoiser D_phi from x_{sigma_{n+1}} = x + sigma_{n+1} z down to sigma_n:

    L_CD^N(theta, theta^-) = E_n[ lambda(sigma_n) d( f_theta(x + sigma_{n+1} z, sigma_{n+1}),
                                                     f_theta^-(x_hat_{sigma_n}, sigma_n) ) ]

The step is deterministic, so CD draws exactly CT's random numbers (n, z).
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor

from .config import ConsistencyConfig
from .curriculum import ct_num_scales, ct_teacher_ema, ict_num_scales
from .edm import Denoiser, ode_step
from .karras import karras_sigmas
from .metrics import default_huber_c, inverse_delta_weight, pseudo_huber, squared_l2
from .noise import lognormal_index_probs, uniform_indices


class NoisePairs(NamedTuple):
    """One CT training example per row: the shared noise z and the adjacent levels sigma_n < sigma_{n+1}.

    A NamedTuple, so that it is a pytree of tensors (copied into static buffers by a captured update).
    """

    z: Tensor  # (B, D) standard normal
    sigma: Tensor  # (B, 1) sigma_n, the teacher's level
    sigma_next: Tensor  # (B, 1) sigma_{n+1}, the student's level
    index: Tensor  # type: ignore[assignment]  # (B,) n, 0-based on the current grid (shadows tuple.index)

    def student_input(self, x0: Tensor) -> Tensor:
        """x + sigma_{n+1} z."""
        return x0 + self.sigma_next * self.z

    def teacher_input(self, x0: Tensor) -> Tensor:
        """x + sigma_n z."""
        return x0 + self.sigma * self.z


class ConsistencyTraining:
    """The schedule-dependent parts of CT/iCT: N(k), the grid, noise pairs, the weighted distance."""

    def __init__(self, cfg: ConsistencyConfig, total_steps: int, data_dim: int):
        cfg.validate()
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        self.cfg = cfg
        self.total_steps = total_steps
        self.huber_c = cfg.huber_c if cfg.huber_c is not None else default_huber_c(data_dim)
        self._grids: dict[tuple[int, str], tuple[Tensor, Optional[Tensor]]] = {}

    def num_scales(self, step: int) -> int:
        """N(k) at global step k."""
        c = self.cfg
        if c.curriculum == "ct":
            return ct_num_scales(step, self.total_steps, c.s0, c.s1)
        if c.curriculum == "ict":
            return ict_num_scales(step, self.total_steps, c.s0, c.s1)
        return c.s1 + 1

    def teacher_decay(self, step: int) -> Optional[float]:
        """mu(k) for the EMA teacher (the fixed teacher_mu when set), or None when the teacher is sg(theta)."""
        if self.cfg.teacher != "ema":
            return None
        if self.cfg.teacher_mu is not None:
            return self.cfg.teacher_mu
        return ct_teacher_ema(self.num_scales(step), self.cfg.s0, self.cfg.teacher_mu0)

    def grid(self, num_scales: int, device: torch.device) -> tuple[Tensor, Optional[Tensor]]:
        """The float32 grid on `device` and, for lognormal sampling, the index probabilities (cached)."""
        key = (num_scales, str(device))
        if key not in self._grids:
            c = self.cfg
            sigmas = karras_sigmas(num_scales, c.sigma_min, c.sigma_max, c.rho)
            probs = (lognormal_index_probs(sigmas, c.p_mean, c.p_std).float().to(device)
                     if c.index_sampling == "lognormal" else None)
            self._grids[key] = (sigmas.float().to(device), probs)
        return self._grids[key]

    def sample_pairs(self, batch_size: int, data_dim: int, step: int, device: torch.device,
                     generator: torch.Generator | None = None) -> NoisePairs:
        """Draw n, z for one batch at global step k."""
        sigmas, probs = self.grid(self.num_scales(step), device)
        if probs is None:
            index = uniform_indices(batch_size, sigmas.numel(), generator, device)
        else:
            index = torch.multinomial(probs, batch_size, replacement=True, generator=generator)
        z = torch.randn(batch_size, data_dim, device=device, generator=generator)
        return NoisePairs(z=z, sigma=sigmas[index].unsqueeze(-1), sigma_next=sigmas[index + 1].unsqueeze(-1),
                          index=index)

    def loss(self, student: Tensor, teacher: Tensor, pairs: NoisePairs) -> Tensor:
        """lambda(sigma_n) d(student, teacher), one value per row (the teacher is detached here)."""
        teacher = teacher.detach()
        if self.cfg.metric == "l2":
            dist = squared_l2(student, teacher)
        else:
            dist = pseudo_huber(student, teacher, self.huber_c)
        if self.cfg.weighting == "inverse_delta":
            dist = dist * inverse_delta_weight(pairs.sigma, pairs.sigma_next).squeeze(-1)
        return dist

    def teacher_input(self, pairs: NoisePairs, x0: Tensor, denoiser: Optional[Denoiser] = None) -> Tensor:
        """The input of f_theta^- at sigma_n: x + sigma_n z (CT; `denoiser` is not used)."""
        return pairs.teacher_input(x0)


class ConsistencyDistillation(ConsistencyTraining):
    """CT's schedule, pairs, metric and weights, with the teacher input from one PF-ODE step of D_phi."""

    def teacher_input(self, pairs: NoisePairs, x0: Tensor, denoiser: Optional[Denoiser] = None) -> Tensor:
        """x_hat_{sigma_n}: one `cfg.solver` step of dx/dsigma = (x - D_phi(x, sigma)) / sigma from
        x + sigma_{n+1} z at sigma_{n+1} to sigma_n."""
        if denoiser is None:
            raise ValueError("consistency distillation needs the teacher denoiser D_phi")
        return ode_step(denoiser, pairs.student_input(x0), pairs.sigma_next, pairs.sigma, self.cfg.solver)


def make_objective(cfg: ConsistencyConfig, total_steps: int, data_dim: int) -> ConsistencyTraining:
    """The objective `cfg.objective` names: ConsistencyTraining (ct) or ConsistencyDistillation (cd)."""
    cls = ConsistencyDistillation if cfg.objective == "cd" else ConsistencyTraining
    return cls(cfg, total_steps, data_dim)
