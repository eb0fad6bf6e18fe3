"""Optimisers, learning-rate schedules and gradient clipping shared by the agents."""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import nn


def make_optimizer(params: Iterable[nn.Parameter], lr: float, weight_decay: float,
                   capturable: bool = False) -> torch.optim.Optimizer:
    """AdamW (Adam when weight_decay = 0), fused implementation: one kernel per step, on CPU and GPU."""
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    set_capturable(optimizer, capturable)
    return optimizer


def set_capturable(optimizer: torch.optim.Optimizer, capturable: bool) -> None:
    """Prepare the optimiser for steps recorded in a CUDA graph, or for plain steps.

    Capturable: the learning rate lives in a tensor on the parameters' device, which the schedule
    updates in place, so that every replay reads its current value (a Python number would be frozen
    into the graph). Re-apply after `load_state_dict`, which brings the saved run's settings.
    """
    for group in optimizer.param_groups:
        lr = float(group["lr"])
        group["lr"] = torch.tensor(lr, device=group["params"][0].device) if capturable else lr
        group["capturable"] = capturable


def lr_factor(step: int, total_steps: int, warmup_steps: int, min_ratio: float) -> float:
    """Multiplier of the base learning rate after `step` optimiser steps.

    Linear warm-up over `warmup_steps`, then cosine from 1 to `min_ratio` at `total_steps`:
    factor = min_ratio + (1 - min_ratio) (1 + cos(pi p)) / 2 with p the fraction of the decay done.
    The schedule advances once per gradient step, so it really decays over the run.
    """
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    p = min(max(step - warmup_steps, 0) / max(total_steps - warmup_steps, 1), 1.0)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * p))


def make_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int,
                   min_ratio: float) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR over `lr_factor`, to be stepped after every optimiser step."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, warmup_steps, min_ratio))


def clip_gradients(params: list[nn.Parameter], max_norm: float) -> torch.Tensor:
    """Clip the global gradient norm to max_norm (<= 0: no clipping) and return the norm before clipping."""
    if max_norm > 0:
        return torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)
    return global_norm([p.grad for p in params if p.grad is not None])


def global_norm(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """The L2 norm of all the tensors' entries together (the norm gradient clipping measures)."""
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in tensors]))


def gradient_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, max_norm: float) -> torch.Tensor:
    """Backpropagate `loss`, clip the gradients and step the optimiser; return the gradient norm.

    No host synchronisation, so that a CUDA graph can record it. The schedule is stepped by the caller.
    """
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    return clip_and_step(optimizer, max_norm)


def clip_and_step(optimizer: torch.optim.Optimizer, max_norm: float) -> torch.Tensor:
    """Clip the gradients of the optimiser's parameters (filled by an earlier backward) and step it;
    return the gradient norm before clipping."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    norm = clip_gradients(params, max_norm).detach()
    optimizer.step()
    return norm
