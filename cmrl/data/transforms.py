"""Transforms fitted on a dataset: observation standardisation, reward transform, action scaling.

Policies work in [-1, 1]^act_dim; `scale_action` maps environment actions into that box and
`unscale_action` maps policy outputs back to the environment's bounds. Every method takes a numpy
array or a torch tensor and returns the same kind.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import numpy as np
import torch

from cmrl.errors import DatasetError

from .config import DatasetConfig
from .dataset import TransitionData

OBS_STD_MIN = 1e-3  # floor of the observation std, so constant features do not blow up
RETURN_RANGE_SCALE = 1000.0  # IQL: rewards * 1000 / (max episode return - min episode return)

ARRAY_FIELDS = ("obs_mean", "obs_std", "action_low", "action_high")

Array = TypeVar("Array", np.ndarray, torch.Tensor)


@dataclass
class DataTransforms:
    """The fitted constants; rewards map as r * reward_scale + reward_shift."""

    obs_mean: np.ndarray  # (obs_dim,) float32; zeros when observations are not normalised
    obs_std: np.ndarray  # (obs_dim,) float32, >= OBS_STD_MIN; ones when observations are not normalised
    action_low: np.ndarray  # (act_dim,) float32 environment lower bounds, mapped to -1
    action_high: np.ndarray  # (act_dim,) float32 environment upper bounds, mapped to +1
    reward_scale: float  # rewards are multiplied by this ...
    reward_shift: float  # ... and then shifted by this
    # the constants as tensors, per (name, device, dtype), so that acting on a GPU copies them once
    _tensors: dict[tuple[str, torch.device, torch.dtype], torch.Tensor] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        for name in ARRAY_FIELDS:
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float32).copy())
        self.reward_scale, self.reward_shift = float(self.reward_scale), float(self.reward_shift)
        low, high = self.action_low, self.action_high
        if low.shape != high.shape or not (np.isfinite(low).all() and np.isfinite(high).all() and (high > low).all()):
            raise DatasetError(
                f"action bounds must be finite with high > low in every dimension to scale actions into "
                f"[-1, 1]; got low {low}, high {high}"
            )
        if self.obs_mean.shape != self.obs_std.shape or not (self.obs_std > 0).all():
            raise DatasetError(
                f"observation mean {self.obs_mean.shape} and std {self.obs_std.shape} must have the same "
                f"shape and a positive std"
            )

    @classmethod
    def fit(cls, data: TransitionData, cfg: DatasetConfig) -> DataTransforms:
        """Fit the transforms `cfg` asks for on raw transitions `data`."""
        cfg.validate()
        if cfg.normalize_observations:
            observations = data.observations.astype(np.float64)
            mean, std = observations.mean(axis=0), np.maximum(observations.std(axis=0), OBS_STD_MIN)
        else:
            mean, std = np.zeros(data.obs_dim), np.ones(data.obs_dim)
        scale, shift = 1.0, 0.0
        if cfg.reward_transform == "affine":
            scale, shift = cfg.reward_scale, cfg.reward_shift
        elif cfg.reward_transform == "return_range":
            returns = data.info.behaviour_returns
            spread = float(returns.max() - returns.min()) if len(returns) else 0.0
            if spread <= 0.0:
                raise DatasetError(
                    f"dataset.reward_transform=return_range needs complete episodes with different returns; "
                    f"dataset {data.info.name!r} has {len(returns)} complete episode(s) with a return spread "
                    f"of {spread}. Use reward_transform=affine or none"
                )
            scale = RETURN_RANGE_SCALE / spread
        return cls(mean, std, data.info.action_low, data.info.action_high, scale, shift)

    def normalize_obs(self, obs: Array) -> Array:
        """(obs - mean) / std."""
        return (obs - self._like("obs_mean", obs)) / self._like("obs_std", obs)

    def scale_action(self, action: Array) -> Array:
        """Environment action -> [-1, 1], clipping into the environment's bounds first."""
        low, high = self._like("action_low", action), self._like("action_high", action)
        clipped = _clip(action, low, high)
        return 2.0 * (clipped - low) / (high - low) - 1.0

    def unscale_action(self, action: Array) -> Array:
        """Policy action in [-1, 1] (clipped into it) -> environment action within the bounds."""
        low, high = self._like("action_low", action), self._like("action_high", action)
        unit = _clip(action, -1.0, 1.0)
        return low + 0.5 * (unit + 1.0) * (high - low)

    def transform_reward(self, reward: Array) -> Array:
        """r * reward_scale + reward_shift."""
        return reward * self.reward_scale + self.reward_shift

    def apply(self, data: TransitionData) -> TransitionData:
        """Transformed copy of raw `data` (terminals, timeouts and info unchanged)."""
        return replace(
            data,
            observations=self.normalize_obs(data.observations).astype(np.float32),
            actions=self.scale_action(data.actions).astype(np.float32),
            rewards=self.transform_reward(data.rewards).astype(np.float32),
            next_observations=self.normalize_obs(data.next_observations).astype(np.float32),
        )

    def state_dict(self) -> dict[str, Any]:
        """Plain tensors and floats, for a torch checkpoint."""
        state: dict[str, Any] = {name: torch.from_numpy(getattr(self, name).copy()) for name in ARRAY_FIELDS}
        state.update(reward_scale=self.reward_scale, reward_shift=self.reward_shift)
        return state

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> DataTransforms:
        """Transforms rebuilt from `state_dict()` output."""
        missing = [k for k in ARRAY_FIELDS + ("reward_scale", "reward_shift") if k not in state]
        if missing:
            raise KeyError(f"data transforms state is missing {', '.join(missing)}")
        arrays = {k: torch.as_tensor(state[k]).cpu().numpy() for k in ARRAY_FIELDS}
        return cls(**arrays, reward_scale=float(state["reward_scale"]), reward_shift=float(state["reward_shift"]))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Replace the fitted constants by those in `state` (as written by `state_dict()`)."""
        loaded = DataTransforms.from_state_dict(state)
        for name in ARRAY_FIELDS + ("reward_scale", "reward_shift"):
            setattr(self, name, getattr(loaded, name))
        self._tensors.clear()

    def _like(self, name: str, x: Array) -> Array:
        """Constant `name` as the kind of `x`: the numpy array, or a tensor on x's device and dtype."""
        value = getattr(self, name)
        if not isinstance(x, torch.Tensor):
            return value
        key = (name, x.device, x.dtype)
        if key not in self._tensors:
            self._tensors[key] = torch.as_tensor(value, dtype=x.dtype, device=x.device)
        return self._tensors[key]


def _clip(x: Array, low: Array | float, high: Array | float) -> Array:
    if isinstance(x, torch.Tensor):
        return torch.clamp(x, low, high)  # type: ignore[arg-type]  # the stub lacks float bounds
    return np.clip(x, low, high)
