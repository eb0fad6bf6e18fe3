"""Configuration of the consistency objective, with the two papers' settings as named presets."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from cmrl.errors import ConfigError

CURRICULA = ("ct", "ict", "fixed")
INDEX_SAMPLINGS = ("uniform", "lognormal")
METRICS = ("l2", "pseudo_huber")
WEIGHTINGS = ("uniform", "inverse_delta")
TEACHERS = ("ema", "stopgrad")
OBJECTIVES = ("ct", "cd")
SOLVERS = ("euler", "heun")


@dataclass
class ConsistencyConfig:
    """Every design choice that separates original CT from iCT, and CT from CD, as an independent switch.

    The defaults are original consistency training (Song et al. 2023); `ICT` below holds Song &
    Dhariwal (2023), `CD` consistency distillation (Song et al. 2023, Alg. 2). All share sigma_min,
    sigma_max, rho and sigma_data.
    """

    sigma_min: float = 0.002  # epsilon: the boundary noise level where f(x, sigma_min) = x exactly
    sigma_max: float = 80.0  # T: the largest noise level; one-step sampling starts from N(0, T^2)
    sigma_data: float = 0.5  # standard deviation of the data (normalised actions in [-1, 1])
    rho: float = 7.0  # curvature of the Karras grid
    curriculum: str = "ct"  # N(k): ct (square-root growth) | ict (doubling) | fixed (N = s1 + 1 throughout)
    s0: int = 2  # initial number of discretisation steps
    s1: int = 150  # final number of discretisation steps
    index_sampling: str = "uniform"  # how n is drawn: uniform | lognormal (iCT)
    p_mean: float = -1.1  # lognormal index sampling: mean of ln(sigma)
    p_std: float = 2.0  # lognormal index sampling: std of ln(sigma)
    metric: str = "l2"  # d(x, y): l2 (squared) | pseudo_huber (iCT)
    huber_c: Optional[float] = None  # pseudo-Huber c; None = 0.00054 sqrt(action_dim)
    weighting: str = "uniform"  # lambda(sigma_n): uniform (1) | inverse_delta (1 / (sigma_{n+1} - sigma_n), iCT)
    teacher: str = "ema"  # theta^-: ema (CT, decay mu(k)) | stopgrad (iCT, theta^- = sg(theta))
    teacher_mu0: float = 0.9  # CT teacher: mu(k) = exp(s0 ln(mu0) / N(k))
    teacher_mu: Optional[float] = None  # a fixed EMA decay mu of theta^- instead of mu(k) (CD: 0.95); null = mu(k)
    # ct: consistency training (CT and iCT; the teacher input is x + sigma_n z) | cd: consistency
    # distillation (Song et al. 2023, Alg. 2): the teacher input is one PF-ODE step of a pretrained
    # diffusion denoiser D_phi from x + sigma_{n+1} z down to sigma_n
    objective: str = "ct"
    solver: str = "heun"  # cd: the PF-ODE solver of that step: euler | heun
    # cd: the diffusion_bc checkpoint.pt (or its run directory) of the teacher D_phi, trained on the same
    # dataset. Not to be confused with `teacher`, the target network theta^- of the consistency loss
    teacher_checkpoint: Optional[str] = None

    def validate(self, prefix: str = "consistency") -> None:
        """Raise ValueError naming the offending key for any value outside its domain."""
        _choice(prefix, "curriculum", self.curriculum, CURRICULA)
        _choice(prefix, "index_sampling", self.index_sampling, INDEX_SAMPLINGS)
        _choice(prefix, "metric", self.metric, METRICS)
        _choice(prefix, "weighting", self.weighting, WEIGHTINGS)
        _choice(prefix, "teacher", self.teacher, TEACHERS)
        _choice(prefix, "objective", self.objective, OBJECTIVES)
        _choice(prefix, "solver", self.solver, SOLVERS)
        if self.objective == "cd" and not self.teacher_checkpoint:
            raise ConfigError(f"{prefix}.objective=cd distils a diffusion_bc policy: set {prefix}.teacher_checkpoint "
                              "to its checkpoint.pt (or run directory)")
        if not 0 < self.sigma_min < self.sigma_max:
            raise ConfigError(f"{prefix}: need 0 < sigma_min < sigma_max, got sigma_min={self.sigma_min}, "
                             f"sigma_max={self.sigma_max}")
        if self.sigma_data <= 0 or self.rho <= 0:
            raise ConfigError(f"{prefix}: sigma_data and rho must be > 0, got {self.sigma_data}, {self.rho}")
        if not 1 <= self.s0 <= self.s1:
            raise ConfigError(f"{prefix}: need 1 <= s0 <= s1, got s0={self.s0}, s1={self.s1}")
        if self.p_std <= 0:
            raise ConfigError(f"{prefix}.p_std must be > 0, got {self.p_std}")
        if self.huber_c is not None and self.huber_c <= 0:
            raise ConfigError(f"{prefix}.huber_c must be > 0 or null, got {self.huber_c}")
        if not 0 < self.teacher_mu0 < 1:
            raise ConfigError(f"{prefix}.teacher_mu0 must be in (0, 1), got {self.teacher_mu0}")
        if self.teacher_mu is not None and not 0 <= self.teacher_mu < 1:
            raise ConfigError(f"{prefix}.teacher_mu must be in [0, 1) or null, got {self.teacher_mu}")


CT = ConsistencyConfig()
"""Original consistency training: EMA teacher, squared L2, uniform weights and indices, s0 2, s1 150."""

ICT = ConsistencyConfig(curriculum="ict", s0=10, s1=1280, index_sampling="lognormal", metric="pseudo_huber",
                        weighting="inverse_delta", teacher="stopgrad")
"""Improved consistency training (Song & Dhariwal 2023)."""

CD = ConsistencyConfig(curriculum="fixed", s1=17, teacher_mu=0.95, objective="cd", solver="heun")
"""Consistency distillation (Song et al. 2023, Alg. 2) as the paper's CD runs: a fixed grid of N = 18
points (CIFAR-10; openai/consistency_models uses 40 on ImageNet 64), Heun steps, squared L2, uniform n
and weights, an EMA target theta^- with a fixed mu = 0.95. It needs `teacher_checkpoint`. (CT's
curriculum would start at N = 2: one ODE step from sigma_max to sigma_min, far outside any solver's
accuracy.)"""

PRESETS = {"ct": CT, "ict": ICT, "cd": CD}


@dataclass
class DiffusionConfig:
    """The EDM diffusion policy (Karras et al. 2022): preconditioning, training noise, sampler grid."""

    sigma_data: float = 0.5  # standard deviation of the data in c_skip, c_out, c_in and lambda(sigma)
    p_mean: float = -1.2  # training noise levels: ln(sigma) ~ N(p_mean, p_std^2)
    p_std: float = 1.2
    sigma_min: float = 0.002  # the Heun sampler's grid: sigma_max > ... > sigma_min, then 0
    sigma_max: float = 80.0
    rho: float = 7.0  # curvature of that Karras grid
    # Heun steps N of the sampler when acting: 2N - 1 evaluations of D. EDM's 18 (35 evaluations): on a
    # two-mode action law (+-0.5, width 0.05) the exact denoiser puts 99 % of samples within 0.15 of a
    # mode with N = 18, 95 % with 10, 3 % with 5 (the samples overshoot the modes)
    sampling_steps: int = 18

    def validate(self, prefix: str = "diffusion") -> None:
        """Raise ConfigError naming the offending key for any value outside its domain."""
        if self.sampling_steps < 1:
            raise ConfigError(f"{prefix}.sampling_steps must be >= 1, got {self.sampling_steps}")
        for key in ("sigma_data", "p_std", "rho"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{prefix}.{key} must be > 0, got {getattr(self, key)}")
        if not 0 < self.sigma_min < self.sigma_max:
            raise ConfigError(f"{prefix}: need 0 < sigma_min < sigma_max, got sigma_min={self.sigma_min}, "
                              f"sigma_max={self.sigma_max}")


def _choice(prefix: str, key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{prefix}.{key} must be one of {', '.join(allowed)}; got {value!r}")
