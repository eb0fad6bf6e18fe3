"""The agent interface: what the training loop, evaluation and checkpoints need of an algorithm."""
from __future__ import annotations

from typing import Any, Optional, Protocol, runtime_checkable

import torch
from torch import Tensor

from cmrl.data.store import Batch

Metrics = dict[str, Tensor]
"""Detached 0-dim tensors; the training loop reads them (one device sync) only when it logs."""


@runtime_checkable
class Agent(Protocol):
    """An offline RL algorithm as a small object.

    `update` takes one gradient step on a batch of (transformed) transitions and returns its metrics;
    `act` maps normalised observations to actions in [-1, 1]; `state_dict` / `load_state_dict`
    hold everything needed to resume exactly (networks, averages, optimisers, schedules, the step).
    """

    step: int  # gradient steps taken so far
    device: torch.device

    def update(self, batch: Batch) -> Metrics:
        """One gradient step; returns the step's metrics."""
        ...

    def diagnostics(self, batch: Batch) -> Metrics:
        """Costlier metrics, computed by the loop at its logging steps only (may be empty)."""
        ...

    def act(self, obs: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        """Actions in [-1, 1] for a batch of normalised observations; noise from `generator`."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict()`; raises CheckpointError naming a missing or mismatched part."""
        ...
