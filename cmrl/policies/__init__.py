"""Policy families."""
from .consistency_policy import ConsistencyPolicy

__all__ = ["ConsistencyPolicy"]
