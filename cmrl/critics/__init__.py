"""Q-critics and state values."""
from .q_ensemble import QEnsemble
from .value import ValueFunction

__all__ = ["QEnsemble", "ValueFunction"]
