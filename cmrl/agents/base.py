"""The agent interface: what the training loop, evaluation and checkpoints need of an algorithm."""
from __future__ import annotations

from typing import Any, Optional, Protocol, runtime_checkable

import torch
from torch import Tensor

from cmrl.data.store import Batch
from cmrl.errors import CheckpointError

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


class SavesModules:
    """`state_dict` / `load_state_dict` over the named parts that `_modules()` lists (networks, averages,
    optimisers, schedulers; None for a part this configuration lacks), plus the step counter."""

    step: int

    def _modules(self) -> dict[str, Optional[Any]]:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: every part's state and the step."""
        state: dict[str, Any] = {name: m.state_dict() for name, m in self._modules().items() if m is not None}
        state["step"] = self.step
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict()`; a missing or mismatched part raises CheckpointError naming it."""
        for name, module in self._modules().items():
            if module is None:
                continue
            if name not in state:
                raise CheckpointError(f"the agent state has no {name!r}: it was saved by a differently configured "
                                      "agent")
            try:
                module.load_state_dict(state[name])
            except (RuntimeError, KeyError, ValueError) as err:
                raise CheckpointError(f"cannot load {name!r} into this agent (different architecture or "
                                      f"configuration?): {err}") from err
        self.step = int(state["step"])
