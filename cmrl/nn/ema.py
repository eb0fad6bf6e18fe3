"""Exponential moving averages of parameters (EMA teachers, acting policies, target critics)."""
from __future__ import annotations

import copy
from typing import TypeVar

import torch
from torch import Tensor, nn

M = TypeVar("M", bound=nn.Module)


def frozen_copy(module: M) -> M:
    """A copy of `module` that takes no gradients: an EMA average or a target network."""
    return copy.deepcopy(module).requires_grad_(False)


@torch.no_grad()
def ema_update(target: nn.Module, source: nn.Module, decay: float | Tensor) -> None:
    """theta_target <- decay * theta_target + (1 - decay) * theta_source, for every parameter.

    decay = 1 - tau gives the Polyak update of target critics: one fused foreach lerp over all tensors.
    `decay` may also be a 0-dim tensor on the parameters' device, for a decay that changes from step
    to step in a CUDA-graph-captured update; then the same average is formed with foreach mul/add
    (a lerp with a tensor weight would launch one kernel per parameter), equal up to rounding.
    """
    t: list[Tensor] = list(target.parameters())
    s = [p.detach() for p in source.parameters()]
    if isinstance(decay, Tensor):
        torch._foreach_mul_(t, decay)
        torch._foreach_add_(t, torch._foreach_mul(s, 1.0 - decay))
    else:
        torch._foreach_lerp_(t, s, 1.0 - decay)
