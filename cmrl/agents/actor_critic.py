"""What the actor-critics share: the critic regression and the Q-scale floor (every one of them); for
the baselines (TD3+BC, IQL, ReBRAC) also: optimisers, the actor's schedule, the step counter,
deterministic acting and checkpoints. Each baseline adds its networks, its losses and `update`."""
from __future__ import annotations

import warnings
from typing import Optional

import torch
from torch import Tensor, nn

from cmrl.data.store import Batch

from .base import Metrics, SavesModules
from .config import AgentConfig
from .optim import make_optimizer, make_scheduler

Q_SCALE_FLOOR = 1e-6
"""The floor of a detached mean |Q| that scales an actor's Q term (TD3+BC's lambda, Diffusion-QL's
normaliser): a critic flat in the action must not divide by zero."""


def critic_regression(critic: nn.Module, batch: Batch, target: Tensor) -> tuple[Tensor, Metrics]:
    """L_Q = sum_k E[(Q_k(s, a) - y)^2] over the ensemble's members, with its metrics."""
    q = critic(batch.observations, batch.actions)
    loss = (q - target).square().mean(1).sum()
    return loss, {"loss/critic": loss.detach(), "q/data_mean": q.detach().mean(), "q/target_mean": target.mean()}


class ActorCriticAgent(SavesModules):
    """The bookkeeping of an `Agent` whose policy is a network `actor` with a deterministic action.

    Learning rates: Adam(W) on every network; the actor follows the shared schedule (lr_warmup_steps,
    cosine to min_lr_ratio; the baselines' yamls set min_lr_ratio = 1, a constant rate, except IQL's
    cosine), the critics keep their rates, as in the papers and CORL.
    """

    actor: nn.Module
    actor_optimizer: torch.optim.Optimizer
    actor_scheduler: torch.optim.lr_scheduler.LambdaLR

    def __init__(self, cfg: AgentConfig, total_steps: int, device: torch.device | str):
        self.cfg = cfg
        self.device = torch.device(device)
        self.total_steps = total_steps
        self.step = 0

    def make_optimizer(self, module: nn.Module, lr: float) -> torch.optim.Optimizer:
        """Adam (AdamW with cfg.weight_decay > 0) over the module's parameters."""
        return make_optimizer(module.parameters(), lr, self.cfg.weight_decay)

    def optimize_actor(self) -> None:
        """The actor's optimiser (cfg.actor_lr) and its schedule; call once `actor` exists."""
        self.actor_optimizer = self.make_optimizer(self.actor, self.cfg.actor_lr)
        self.actor_scheduler = make_scheduler(self.actor_optimizer, self.total_steps, self.cfg.lr_warmup_steps,
                                              self.cfg.min_lr_ratio)

    def finish_update(self, metrics: Metrics) -> Metrics:
        """Record the actor's learning rate of this step, advance its schedule and the step counter."""
        metrics["lr/actor"] = torch.as_tensor(self.actor_scheduler.get_last_lr()[0])
        with warnings.catch_warnings():  # the schedule follows the update count, also before a delayed first actor step
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
            self.actor_scheduler.step()
        self.step += 1
        return metrics

    def diagnostics(self, batch: Batch) -> Metrics:
        """No costlier diagnostics for the baselines."""
        return {}

    @torch.no_grad()
    def act(self, obs: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        """pi(s) in [-1, 1] (the mean of a Gaussian policy); deterministic, so `generator` is unused."""
        return self.actor(obs).clamp(-1.0, 1.0)
