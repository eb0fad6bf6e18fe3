"""Discretisation curricula N(k) and the CT teacher's EMA rate mu(k), keyed to the global step k.

K is the total number of training steps of the run, s0 the initial and s1 the final number of
discretisation steps. Both curricula take the *global* step: a run resumed from a checkpoint, or a
loop called in chunks, continues the schedule instead of restarting it.
"""
from __future__ import annotations

import math


def ct_num_scales(step: int, total_steps: int, s0: int = 2, s1: int = 150) -> int:
    """Original CT (Song et al. 2023, App. C):

        N(k) = ceil( sqrt( k/K ((s1 + 1)^2 - s0^2) + s0^2 ) - 1 ) + 1
    """
    _check(step, total_steps, s0, s1)
    k = min(step, total_steps)
    return math.ceil(math.sqrt(k / total_steps * ((s1 + 1) ** 2 - s0 ** 2) + s0 ** 2) - 1) + 1


def ict_num_scales(step: int, total_steps: int, s0: int = 10, s1: int = 1280) -> int:
    """Improved CT (Song & Dhariwal 2023, Eq. 6): exponential doubling,

        N(k) = min(s0 * 2^floor(k / K'), s1) + 1,   K' = floor( K / (log2 floor(s1/s0) + 1) )
    """
    _check(step, total_steps, s0, s1)
    k_prime = math.floor(total_steps / (math.log2(math.floor(s1 / s0)) + 1))
    doublings = step // max(k_prime, 1)
    return min(s0 * 2 ** min(doublings, 62), s1) + 1


def ct_teacher_ema(num_scales: int, s0: int = 2, mu0: float = 0.9) -> float:
    """CT teacher decay mu(k) = exp(s0 ln(mu0) / N(k)) (Song et al. 2023, App. C)."""
    return math.exp(s0 * math.log(mu0) / num_scales)


def _check(step: int, total_steps: int, s0: int, s1: int) -> None:
    if step < 0:
        raise ValueError(f"the training step must be >= 0, got {step}")
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if not 1 <= s0 <= s1:
        raise ValueError(f"need 1 <= s0 <= s1, got s0={s0}, s1={s1}")
