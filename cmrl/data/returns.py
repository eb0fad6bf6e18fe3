"""Discounted sums of the data's rewards, episode by episode: returns-to-go and n-step returns."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .dataset import TransitionData


def episode_ends(data: TransitionData) -> np.ndarray:
    """(N,) bool: True where an episode ends after this transition.

    An episode ends at a terminal, at a time-limit cut, at the last row, and wherever the next row
    does not continue it (its observation differs from this row's next observation): files that
    concatenate episodes without marking every cut still split correctly.
    """
    ends = (data.terminals > 0) | (data.timeouts > 0)
    ends[-1] = True
    discontinuous = np.any(data.next_observations[:-1] != data.observations[1:], axis=1)
    ends[:-1] |= discontinuous
    return ends


def _check_discount(discount: float) -> None:
    if not 0.0 <= discount <= 1.0:
        raise ValueError(f"discount must be in [0, 1], got {discount}")


def returns_to_go(data: TransitionData, discount: float) -> np.ndarray:
    """G_t = sum_{k >= 0} gamma^k r_{t+k} within t's episode, float32 of shape (N,).

    G_t = r_t + gamma G_{t+1}, restarted at every episode end (see `episode_ends`). For an episode
    cut by a time limit the sum stops at the cut, so G_t is the return the data actually observed.
    """
    _check_discount(discount)
    ends = episode_ends(data).tolist()
    rewards = data.rewards.astype(np.float64).tolist()
    out = [0.0] * len(rewards)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):  # plain floats: about 0.3 s per million rows
        running = rewards[t] + (0.0 if ends[t] else discount * running)
        out[t] = running
    return np.asarray(out, dtype=np.float32)


class NStepTransitions(NamedTuple):
    """Row t of the data as an n-step transition (float32, (N,) or (N, obs_dim))."""

    rewards: np.ndarray  # R_t^(n) = sum_{k < m_t} gamma^k r_{t+k}
    next_observations: np.ndarray  # s_{t+m_t}: the next observation of row t + m_t - 1
    terminals: np.ndarray  # 1.0 where row t + m_t - 1 is a true terminal (no bootstrap)
    discounts: np.ndarray  # gamma^{m_t}: the discount of the bootstrap from s_{t+m_t}


def n_step_transitions(data: TransitionData, discount: float, n: int) -> NStepTransitions:
    """The n-step targets' ingredients: y_t = R_t^(n) + gamma^{m_t} (1 - d_{t+m_t-1}) V(s_{t+m_t}).

    m_t = min(n, rows left in t's episode) (see `episode_ends`): the sum never crosses an episode's
    end, a terminal inside the window stops it without bootstrap, and a time-limit cut stops it with
    one. n = 1 gives the data's own one-step rows and gamma everywhere.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    _check_discount(discount)
    ends = episode_ends(data)
    rewards = data.rewards.astype(np.float64)
    last = np.arange(len(rewards))  # the window's last row, per t
    total = rewards.copy()
    extends = ~ends  # the episode goes on after row last[t]; ends[-1] keeps last[t] + 1 in range
    for k in range(1, n):
        last = np.where(extends, last + 1, last)
        total += np.where(extends, discount ** k * rewards[last], 0.0)
        extends = extends & ~ends[last]
    steps = last - np.arange(len(rewards)) + 1
    return NStepTransitions(
        rewards=total.astype(np.float32),
        next_observations=data.next_observations[last],
        terminals=data.terminals[last],
        discounts=(discount ** steps.astype(np.float64)).astype(np.float32),
    )
