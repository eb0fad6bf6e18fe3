"""Policy families over actions in [-1, 1]: consistency and EDM diffusion policies, MLP policies."""
from .conditioned import NoiseConditionedNet
from .consistency_policy import ConsistencyPolicy
from .deterministic import DeterministicPolicy, GaussianPolicy, OneStepPolicy
from .diffusion_policy import DiffusionPolicy

__all__ = ["ConsistencyPolicy", "DeterministicPolicy", "DiffusionPolicy", "GaussianPolicy", "NoiseConditionedNet",
           "OneStepPolicy"]
