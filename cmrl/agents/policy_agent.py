"""What every agent with one trained policy shares: the acting EMA of the policy, the actor's optimiser
and cosine schedule, the update skeleton (draw the noise, set the decays, run `train_step`, advance the
schedules), acting with a noise temperature, and exact checkpoints.

Subclasses (ConsistencyBC, DiffusionBC) supply the policy, `draw_noise`, `actor_loss`,
`select_actions` and `act_draws`; see docs/design.md for the fast path's rules they keep.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Optional, TypeVar

import torch
from torch import Tensor, nn

from cmrl.consistency import sampling_noise
from cmrl.data.store import Batch
from cmrl.nn import ema_update, frozen_copy

from .acceleration import CapturedStep, captures_updates, maybe_compile
from .base import Metrics, SavesModules
from .config import AgentConfig
from .optim import gradient_step, make_optimizer, make_scheduler, set_capturable

P = TypeVar("P", bound=nn.Module)


class PolicyAgent(SavesModules, Generic[P]):
    """The `Agent` skeleton around one policy network P trained by one optimiser."""

    def __init__(self, cfg: AgentConfig, policy: P, obs_dim: int, action_dim: int, total_steps: int,
                 device: torch.device | str = "cpu"):
        self.cfg = cfg
        self.device = torch.device(device)
        self.obs_dim, self.action_dim, self.total_steps = obs_dim, action_dim, total_steps
        self.step = 0
        self.policy: P = policy.to(self.device)
        self.ema_policy: Optional[P] = frozen_copy(self.policy) if cfg.ema_decay > 0 else None
        self._capture = captures_updates(cfg.compile, self.device)
        self.actor_optimizer = make_optimizer(self.policy.parameters(), cfg.actor_lr, cfg.weight_decay,
                                              self._capture)
        self.actor_scheduler = make_scheduler(self.actor_optimizer, total_steps, cfg.lr_warmup_steps,
                                              cfg.min_lr_ratio)
        # the acting EMA's decay of the current step, in a tensor updated in place (read by train_step)
        self._ema_decay = torch.zeros((), device=self.device)
        # The fast path: the same functions, compiled (and the train step captured on CUDA).
        self._actor_loss = maybe_compile(self.actor_loss, cfg.compile)
        self._select_actions = maybe_compile(self.select_actions, cfg.compile)
        self._train_step = self._train_step_runner()

    def _train_step_runner(self) -> Callable[[Batch, Any], Metrics]:
        """`train_step` itself, or on the CUDA fast path its graph capture (recorded on first use)."""
        return CapturedStep(self.train_step) if self._capture else self.train_step

    @property
    def acting_policy(self) -> P:
        """The EMA policy when enabled, else the student: used for acting and for target actions."""
        return self.ema_policy if self.ema_policy is not None else self.policy

    # --- what a subclass supplies --------------------------------------------------------------
    def draw_noise(self, batch_size: int) -> Any:
        """Every random draw of one update at the current step (from torch's global generator)."""
        raise NotImplementedError

    def actor_loss(self, batch: Batch, noise: Any = None) -> tuple[Tensor, Metrics]:
        """The policy's loss on `noise` (a fresh draw when None) and its metrics."""
        raise NotImplementedError

    def select_actions(self, obs: Tensor, noise: list[Tensor]) -> Tensor:
        """`act` given its `act_draws` noise tensors."""
        raise NotImplementedError

    @property
    def act_draws(self) -> int:
        """How many standard-normal tensors one call of the acting sampler consumes."""
        raise NotImplementedError

    # --- steps --------------------------------------------------------------------------------
    def train_step(self, batch: Batch, noise: Any) -> Metrics:
        """The tensor work of one update: the actor's gradient step, then the averages.

        Reads the current learning rates and decays from tensors and changes no Python state, so that
        the fast path can record it in a CUDA graph (see acceleration.py).
        """
        loss, metrics = self._actor_loss(batch, noise)
        metrics.update(self._actor_step(loss))
        self._update_averages()
        return metrics

    def _actor_step(self, loss: Tensor) -> Metrics:
        """Backpropagate the actor's loss and step its optimiser (an agent with more actor networks
        steps theirs too); returns the gradient norms."""
        return {"grad_norm/actor": gradient_step(loss, self.actor_optimizer, self.cfg.actor_grad_clip)}

    def _update_averages(self) -> None:
        """The acting EMA (a plain copy before ema_start_step)."""
        if self.ema_policy is not None:
            ema_update(self.ema_policy, self.policy, self._ema_decay)

    def _set_decays(self) -> None:
        """Write this step's decays into their tensors before `train_step` reads them."""
        self._ema_decay.fill_(self.cfg.ema_decay if self.step >= self.cfg.ema_start_step else 0.0)

    def _schedule_metrics(self) -> Metrics:
        """Metrics of the step's schedules (the consistency agents add N(k))."""
        return {}

    def _optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.actor_optimizer]

    def _schedulers(self) -> list[torch.optim.lr_scheduler.LRScheduler]:
        return [self.actor_scheduler]

    def diagnostics(self, batch: Batch) -> Metrics:
        """Costlier diagnostics, which the training loop computes at its logging steps only (none here)."""
        return {}

    def update(self, batch: Batch) -> Metrics:
        """One update: draw its noise, set this step's decays, run `train_step`, advance the schedules."""
        noise = self.draw_noise(batch.observations.shape[0])
        self._set_decays()
        metrics = self._train_step(batch, noise)
        metrics["lr/actor"] = torch.as_tensor(self.actor_scheduler.get_last_lr()[0])  # the rate this step used
        for scheduler in self._schedulers():
            scheduler.step()
        metrics.update(self._schedule_metrics())
        self.step += 1
        return metrics

    # --- acting -------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Normalised actions in [-1, 1] for a batch of (normalised) observations.

        Low-temperature sampling (as in Decision Diffuser, Ajay et al. 2023): every noise draw z of the
        sampler is used as alpha z with alpha = act_temperature. alpha < 1 trades the sample's
        diversity for actions nearer the policy's modes; alpha = 0 makes the policy deterministic.
        """
        rows = obs.shape[0] * self.cfg.act_candidates
        noise = sampling_noise((rows, self.action_dim), self.act_draws, obs.device, obs.dtype, generator)
        if self.cfg.act_temperature != 1.0:
            noise = [self.cfg.act_temperature * z for z in noise]
        return self._select_actions(obs, noise)

    # --- checkpointing ------------------------------------------------------------------------
    def _modules(self) -> dict[str, Optional[Any]]:
        return {"policy": self.policy, "ema_policy": self.ema_policy, "actor_optimizer": self.actor_optimizer,
                "actor_scheduler": self.actor_scheduler}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict()` (see `SavesModules`), then prepare the fast path anew."""
        super().load_state_dict(state)
        # the optimisers now hold the saved settings and new state tensors: prepare them, capture anew
        for optimizer in self._optimizers():
            set_capturable(optimizer, self._capture)
        self._train_step = self._train_step_runner()
