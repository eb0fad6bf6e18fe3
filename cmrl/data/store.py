"""The transition store: transformed transitions as tensors on the training device, and its sampler."""
from __future__ import annotations

from typing import Any, NamedTuple, Optional, Union

import torch

from .dataset import TransitionData
from .returns import next_actions, returns_to_go


class Batch(NamedTuple):
    """A minibatch of transitions; B rows, float32."""

    observations: torch.Tensor  # (B, obs_dim)
    actions: torch.Tensor  # (B, act_dim)
    rewards: torch.Tensor  # (B,)
    next_observations: torch.Tensor  # (B, obs_dim)
    terminals: torch.Tensor  # (B,) 1.0 = true terminal: no bootstrap
    returns: Optional[torch.Tensor] = None  # (B,) discounted return-to-go G_t of the data from this transition
    next_actions: Optional[torch.Tensor] = None  # (B, act_dim) the data's action a_{t+1} (a_t at an episode end)


class TransitionStore:
    """Holds (already transformed) transitions on `device` and samples uniform minibatches there.

    Sampling draws indices with the store's own generator (on the same device), so runs are
    reproducible from `seed()` and resumable exactly from `state_dict()`. Each row also carries the
    data's discounted return-to-go G_t (`returns_to_go` with `discount`: pass the agent's gamma) and
    the data's next action a_{t+1} (`next_actions`).
    """

    def __init__(self, data: TransitionData, device: Union[torch.device, str], discount: float) -> None:
        data.check()
        self.device = torch.device(device)
        arrays = {**data.arrays(), "returns": returns_to_go(data, discount), "next_actions": next_actions(data)}
        self._tensors = [torch.as_tensor(arrays[name]).to(self.device) for name in Batch._fields]
        self._size = len(data)
        self.generator = torch.Generator(device=self.device)
        self.seed(0)

    def __len__(self) -> int:
        return self._size

    @property
    def returns(self) -> torch.Tensor:
        """The discounted return-to-go G_t of every transition (on the store's device)."""
        return self._tensors[Batch._fields.index("returns")]

    def seed(self, seed: int) -> None:
        """Reset the sampling generator to `seed`."""
        self.generator.manual_seed(seed)

    def sample(self, batch_size: int) -> Batch:
        """`batch_size` transitions drawn uniformly with replacement."""
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive; got {batch_size}")
        index = torch.randint(self._size, (batch_size,), device=self.device, generator=self.generator)
        return Batch(*(tensor.index_select(0, index) for tensor in self._tensors))

    def state_dict(self) -> dict[str, Any]:
        """The sampler's generator state (the data itself is rebuilt from the dataset)."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the generator state saved by `state_dict()`; the next batches match exactly."""
        self.generator.set_state(state["generator"].cpu())
