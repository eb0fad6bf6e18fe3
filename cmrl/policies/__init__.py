"""Policy families: consistency policies and EDM diffusion policies over actions in [-1, 1]."""
from .conditioned import NoiseConditionedNet
from .consistency_policy import ConsistencyPolicy
from .deterministic import DeterministicPolicy, GaussianPolicy
from .diffusion_policy import DiffusionPolicy

__all__ = ["ConsistencyPolicy", "DeterministicPolicy", "DiffusionPolicy", "GaussianPolicy", "NoiseConditionedNet"]
