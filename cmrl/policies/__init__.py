"""Policy families."""
from .consistency_policy import ConsistencyPolicy
from .deterministic import DeterministicPolicy, GaussianPolicy

__all__ = ["ConsistencyPolicy", "DeterministicPolicy", "GaussianPolicy"]
