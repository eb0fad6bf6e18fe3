"""Neural-network building blocks (no RL here)."""
from .ema import ema_update, frozen_copy
from .layers import ACTIVATIONS, EnsembleLayerNorm, EnsembleLinear, Mish, SinusoidalEmbedding, ensemble_mlp, mish, mlp

__all__ = ["ACTIVATIONS", "EnsembleLayerNorm", "EnsembleLinear", "Mish", "SinusoidalEmbedding", "ema_update",
           "ensemble_mlp", "frozen_copy", "mish", "mlp"]
