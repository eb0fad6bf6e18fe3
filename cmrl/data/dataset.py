"""The in-memory form of an offline dataset: flat transition arrays plus what is known about them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from cmrl.errors import DatasetError


@dataclass
class DatasetInfo:
    """What a dataset says about itself, beyond its transitions."""

    name: str  # Minari id, D4RL dataset name or file, or embedded dataset id
    source: str  # embedded | minari | d4rl
    env_id: str  # gymnasium environment id to evaluate in
    ref_min_score: Optional[float]  # return mapped to normalised score 0 (random policy); None if unknown
    ref_max_score: Optional[float]  # return mapped to normalised score 100 (expert policy); None if unknown
    action_low: np.ndarray  # (act_dim,) float32 lower action bounds of the environment
    action_high: np.ndarray  # (act_dim,) float32 upper action bounds of the environment
    # undiscounted returns of the dataset's complete episodes (ended by termination or by the time
    # limit): the behaviour policy's own score
    behaviour_returns: np.ndarray

    def as_dict(self) -> dict[str, Any]:
        """The info as plain Python values (lists, floats, str), for checkpoints and JSON."""
        return {
            "name": self.name,
            "source": self.source,
            "env_id": self.env_id,
            "ref_min_score": self.ref_min_score,
            "ref_max_score": self.ref_max_score,
            "action_low": [float(v) for v in self.action_low],
            "action_high": [float(v) for v in self.action_high],
            "behaviour_returns": [float(v) for v in self.behaviour_returns],
        }


@dataclass
class TransitionData:
    """One row per transition, float32, raw (untransformed) values as the dataset stores them.

    `terminals` marks true ends (absorbing: no bootstrap from `next_observations`); `timeouts` marks
    transitions after which the episode was cut by a time limit, which are still bootstrapped.
    """

    observations: np.ndarray  # (N, obs_dim)
    actions: np.ndarray  # (N, act_dim)
    rewards: np.ndarray  # (N,)
    next_observations: np.ndarray  # (N, obs_dim)
    terminals: np.ndarray  # (N,) 1.0 = true terminal
    timeouts: np.ndarray  # (N,) 1.0 = episode cut by the time limit after this transition
    info: DatasetInfo

    def __len__(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def obs_dim(self) -> int:
        """Size of one observation vector."""
        return int(self.observations.shape[1])

    @property
    def action_dim(self) -> int:
        """Size of one action vector."""
        return int(self.actions.shape[1])

    def arrays(self) -> dict[str, np.ndarray]:
        """The per-transition arrays by field name."""
        return {
            "observations": self.observations,
            "actions": self.actions,
            "rewards": self.rewards,
            "next_observations": self.next_observations,
            "terminals": self.terminals,
            "timeouts": self.timeouts,
        }

    def check(self) -> None:
        """Raise DatasetError if the data is empty, mis-shaped, not float32 or not finite."""
        name = f"dataset {self.info.name!r}"
        arrays = self.arrays()
        for field, array in arrays.items():
            if not isinstance(array, np.ndarray) or array.dtype != np.float32:
                kind = array.dtype if isinstance(array, np.ndarray) else type(array).__name__
                raise DatasetError(f"{name}: {field} must be a float32 numpy array; got {kind}")
        if self.rewards.ndim != 1:
            raise DatasetError(f"{name}: rewards has shape {self.rewards.shape}, expected (N,)")
        n = len(self.rewards)
        for field in arrays:
            ndim = 2 if field in ("observations", "actions", "next_observations") else 1
            array = arrays[field]
            if array.ndim != ndim or array.shape[0] != n:
                want = "(N, dim)" if ndim == 2 else "(N,)"
                raise DatasetError(
                    f"{name}: {field} has shape {array.shape}, expected {want} with N = {n} "
                    f"(the length of rewards)"
                )
        if n == 0:
            raise DatasetError(f"{name} holds no transitions")
        if self.next_observations.shape != self.observations.shape:
            raise DatasetError(
                f"{name}: next_observations has shape {self.next_observations.shape} but observations "
                f"has {self.observations.shape}"
            )
        for field, array in arrays.items():
            bad = ~np.isfinite(array.reshape(n, -1)).all(axis=1)
            if bad.any():
                raise DatasetError(
                    f"{name}: {int(bad.sum())} of {n} rows of {field} hold NaN or inf "
                    f"(first at row {int(np.argmax(bad))}); clean the dataset before training"
                )
        for field in ("terminals", "timeouts"):
            if not np.isin(arrays[field], (0.0, 1.0)).all():
                raise DatasetError(f"{name}: {field} must hold only 0.0 and 1.0")
        for field in ("action_low", "action_high"):
            bound = getattr(self.info, field)
            if np.shape(bound) != (self.action_dim,):
                raise DatasetError(
                    f"{name}: info.{field} has shape {np.shape(bound)}, expected ({self.action_dim},) "
                    f"to match the actions"
                )
