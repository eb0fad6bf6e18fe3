"""Offline datasets: loaders (embedded, Minari, D4RL), transforms, and the on-device transition store."""
from cmrl.errors import DatasetError

from .config import DatasetConfig
from .d4rl import load_d4rl
from .dataset import DatasetInfo, TransitionData
from .embedded import EMBEDDED_DATASET_ID, ensure_embedded_dataset, scripted_pendulum_action
from .minari import load_minari
from .returns import episode_ends, returns_to_go
from .store import Batch, TransitionStore
from .transforms import DataTransforms


def load_dataset(cfg: DatasetConfig) -> TransitionData:
    """Load the raw (untransformed) transitions `cfg` names, checked for shape and finiteness."""
    cfg.validate()
    if cfg.source == "d4rl":
        return load_d4rl(cfg.name, cfg.path, cfg.env_id)
    if cfg.source == "minari":
        return load_minari(cfg.name, cfg.path, cfg.env_id)
    return load_minari(ensure_embedded_dataset(cfg.name), env_id=cfg.env_id, source="embedded")


__all__ = [
    "Batch", "DataTransforms", "DatasetConfig", "DatasetError", "DatasetInfo", "EMBEDDED_DATASET_ID",
    "TransitionData", "TransitionStore", "ensure_embedded_dataset", "episode_ends",
    "load_d4rl", "load_dataset", "load_minari", "returns_to_go",
    "scripted_pendulum_action",
]
