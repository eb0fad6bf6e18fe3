"""Configuration of the offline dataset: where it comes from and how it is transformed."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from cmrl.errors import ConfigError

SOURCES = ("embedded", "minari", "d4rl")
REWARD_TRANSFORMS = ("none", "affine", "return_range")


@dataclass
class DatasetConfig:
    """Which dataset to train on and the transforms applied to it before training."""

    source: str = "embedded"  # embedded (built-in, offline) | minari (Minari store or directory) | d4rl (HDF5 file)
    name: str = "cmrl/pendulum-mixed-v0"  # Minari id, D4RL dataset name (hopper-medium-v2) or embedded dataset id
    path: Optional[str] = None  # local D4RL-layout HDF5 file (d4rl) or local Minari dataset directory (minari)
    env_id: Optional[str] = None  # gymnasium id to evaluate in; None = the one the dataset names
    normalize_observations: bool = True  # standardise observations with the dataset's mean and std
    reward_transform: str = "none"  # none | affine (r * reward_scale + reward_shift) | return_range (IQL)
    reward_scale: float = 1.0  # multiplier of the affine reward transform
    reward_shift: float = 0.0  # offset of the affine reward transform, added after scaling

    def validate(self, prefix: str = "dataset") -> None:
        """Raise ConfigError (a ValueError) naming the offending config key for any value outside its domain."""
        if self.source not in SOURCES:
            raise ConfigError(f"{prefix}.source must be one of {', '.join(SOURCES)}; got {self.source!r}")
        if self.reward_transform not in REWARD_TRANSFORMS:
            raise ConfigError(
                f"{prefix}.reward_transform must be one of {', '.join(REWARD_TRANSFORMS)}; "
                f"got {self.reward_transform!r}"
            )
        if not self.name and self.path is None:
            raise ConfigError(f"{prefix}.name is empty and {prefix}.path is not set: name a dataset or give a path")
        if self.source == "embedded" and self.path is not None:
            raise ConfigError(
                f"{prefix}.path is not used with {prefix}.source=embedded (got {self.path!r}); "
                f"use source=minari or source=d4rl to load a local file"
            )
        if self.env_id is not None and not self.env_id:
            raise ConfigError(f"{prefix}.env_id must be a gymnasium environment id or null; got an empty string")
        if not math.isfinite(self.reward_scale) or self.reward_scale == 0.0:
            raise ConfigError(f"{prefix}.reward_scale must be finite and non-zero; got {self.reward_scale}")
        if not math.isfinite(self.reward_shift):
            raise ConfigError(f"{prefix}.reward_shift must be finite; got {self.reward_shift}")
