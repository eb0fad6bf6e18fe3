"""Exponential moving averages of parameters (EMA teachers, acting policies, target critics)."""
from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def ema_update(target: nn.Module, source: nn.Module, decay: float) -> None:
    """theta_target <- decay * theta_target + (1 - decay) * theta_source, for every parameter.

    decay = 1 - tau gives the Polyak update of target critics. One fused foreach op over all tensors.
    """
    t = [p for p in target.parameters()]
    s = [p.detach() for p in source.parameters()]
    torch._foreach_lerp_(t, s, 1.0 - decay)
