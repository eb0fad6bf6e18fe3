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


@dataclass
class ConsistencyConfig:
    """Every design choice that separates original CT from iCT, as an independent switch.

    The defaults are original consistency training (Song et al. 2023); `ICT` below holds Song &
    Dhariwal (2023). Both share sigma_min, sigma_max, rho and sigma_data.
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

    def validate(self, prefix: str = "consistency") -> None:
        """Raise ValueError naming the offending key for any value outside its domain."""
        _choice(prefix, "curriculum", self.curriculum, CURRICULA)
        _choice(prefix, "index_sampling", self.index_sampling, INDEX_SAMPLINGS)
        _choice(prefix, "metric", self.metric, METRICS)
        _choice(prefix, "weighting", self.weighting, WEIGHTINGS)
        _choice(prefix, "teacher", self.teacher, TEACHERS)
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


CT = ConsistencyConfig()
"""Original consistency training: EMA teacher, squared L2, uniform weights and indices, s0 2, s1 150."""

ICT = ConsistencyConfig(curriculum="ict", s0=10, s1=1280, index_sampling="lognormal", metric="pseudo_huber",
                        weighting="inverse_delta", teacher="stopgrad")
"""Improved consistency training (Song & Dhariwal 2023)."""

PRESETS = {"ct": CT, "ict": ICT}


def _choice(prefix: str, key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{prefix}.{key} must be one of {', '.join(allowed)}; got {value!r}")
