"""Q-critics."""
from .q_ensemble import QEnsemble

__all__ = ["QEnsemble"]
