"""Quantities read along each episode of the data: the returns-to-go and the next actions."""
from __future__ import annotations

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


def next_actions(data: TransitionData) -> np.ndarray:
    """a_{t+1}, the action the data took in s_{t+1}, float32 of shape (N, act_dim) (ReBRAC's critic penalty).

    Where the episode ends after t (see `episode_ends`) the data holds no a_{t+1}, and a_t stands in:
    at a terminal the target does not bootstrap, so the value is unused; at a time-limit cut (one row
    per episode) the previous action is the nearest the data offers.
    """
    out = data.actions.copy()
    continues = ~episode_ends(data)
    out[:-1][continues[:-1]] = data.actions[1:][continues[:-1]]
    return out
