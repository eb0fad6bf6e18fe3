"""TD3+BC (Fujimoto & Gu 2021): TD3 with a behaviour-cloning term in the actor loss.

Critic (clipped double Q over an ensemble of K, target networks Q' and pi', target policy smoothing):

    a' = clip(pi'(s') + clip(sigma eps, -c, c), -1, 1),   eps ~ N(0, I)
    y  = r + gamma (1 - d) min_k Q'_k(s', a')
    L_Q = sum_k E[(Q_k(s, a) - y)^2]

Actor, every d-th update (policy_freq), after which pi' and Q' are Polyak-averaged with rate tau:

    lambda = alpha / E[|Q_1(s, pi(s))|]   (detached)
    L_pi = -lambda E[Q_1(s, pi(s))] + E[(pi(s) - a)^2]

The squared error averages over the batch and the action dimensions (CORL's F.mse_loss), Q_1 is the
ensemble's first member. The paper's state normalisation is the loop's (dataset.normalize_observations,
on by default): observations arrive standardised with the dataset's mean and std.
ReBRAC (rebrac.py) changes the next-state value and the actor loss.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from cmrl.critics import QEnsemble
from cmrl.data.store import Batch
from cmrl.nn import ema_update, frozen_copy
from cmrl.policies import DeterministicPolicy

from .acceleration import maybe_compile
from .actor_critic import Q_SCALE_FLOOR, ActorCriticAgent, critic_regression
from .base import Metrics
from .config import AgentConfig, TD3Config
from .optim import gradient_step


class TD3BC(ActorCriticAgent):
    """The `Agent` of TD3+BC: a deterministic actor, a Q-ensemble and their target networks."""

    def __init__(self, cfg: AgentConfig, obs_dim: int, action_dim: int, total_steps: int,
                 device: torch.device | str = "cpu"):
        super().__init__(cfg, total_steps, device)
        self.action_dim = action_dim
        self.actor = DeterministicPolicy(obs_dim, action_dim, cfg.hidden_dims, cfg.activation).to(self.device)
        self.actor_target = frozen_copy(self.actor)
        self.critic = QEnsemble(obs_dim, action_dim, cfg.critic_hidden_dims, cfg.ensemble_size, cfg.critic_layer_norm,
                                cfg.activation).to(self.device)
        self.critic_target = frozen_copy(self.critic)
        self.optimize_actor()
        self.critic_optimizer = self.make_optimizer(self.critic, cfg.critic_lr)
        self._critic_loss = maybe_compile(self.critic_loss, cfg.compile)
        self._actor_loss = maybe_compile(self.actor_loss, cfg.compile)

    @property
    def hp(self) -> TD3Config:
        """This algorithm's section of the config (agent.td3_bc)."""
        return self.cfg.td3_bc

    # --- losses -------------------------------------------------------------------------------
    def target_actions(self, next_obs: Tensor, eps: Tensor) -> Tensor:
        """a' = clip(pi'(s') + clip(sigma eps, -c, c), -1, 1) for standard-normal eps (B, A)."""
        smoothing = (self.hp.policy_noise * eps).clamp(-self.hp.noise_clip, self.hp.noise_clip)
        return (self.actor_target(next_obs) + smoothing).clamp(-1.0, 1.0)

    def next_value(self, batch: Batch, next_actions: Tensor) -> Tensor:
        """The value of s' that the target bootstraps from: min_k Q'_k(s', a')."""
        return self.critic_target(batch.next_observations, next_actions).min(0).values

    @torch.no_grad()
    def td_target(self, batch: Batch, eps: Tensor) -> Tensor:
        """y = r + gamma (1 - d) next_value(s', a')."""
        next_actions = self.target_actions(batch.next_observations, eps)
        return batch.rewards + self.cfg.discount * (1.0 - batch.terminals) * self.next_value(batch, next_actions)

    def critic_loss(self, batch: Batch, eps: Tensor) -> tuple[Tensor, Metrics]:
        """L_Q, summed over the ensemble members."""
        target = self.td_target(batch, eps)
        return critic_regression(self.critic, batch, target)

    def actor_loss(self, batch: Batch) -> tuple[Tensor, Metrics]:
        """L_pi = -lambda E[Q_1(s, pi(s))] + E[(pi(s) - a)^2], lambda = alpha / E|Q_1| (detached)."""
        pi = self.actor(batch.observations)
        q = self.critic.frozen(batch.observations, pi)[0]
        lam = self.cfg.td3_bc.alpha / q.abs().mean().detach().clamp(min=Q_SCALE_FLOOR)
        bc = (pi - batch.actions).square().mean()
        loss = -lam * q.mean() + bc
        return loss, {"loss/actor": loss.detach(), "loss/bc": bc.detach(), "q/policy_mean": q.detach().mean(),
                      "q/lambda": lam}

    # --- steps --------------------------------------------------------------------------------
    def update(self, batch: Batch) -> Metrics:
        """A critic step; every policy_freq-th update also an actor step and the target averages."""
        eps = torch.randn(batch.actions.shape, device=self.device)  # drawn before the (compilable) losses
        loss, metrics = self._critic_loss(batch, eps)
        metrics["grad_norm/critic"] = gradient_step(loss, self.critic_optimizer, self.cfg.critic_grad_clip)
        if (self.step + 1) % self.hp.policy_freq == 0:
            loss, actor_metrics = self._actor_loss(batch)
            metrics.update(actor_metrics)
            metrics["grad_norm/actor"] = gradient_step(loss, self.actor_optimizer, self.cfg.actor_grad_clip)
            ema_update(self.actor_target, self.actor, 1.0 - self.cfg.tau)
            ema_update(self.critic_target, self.critic, 1.0 - self.cfg.tau)
        return self.finish_update(metrics)

    def _modules(self) -> dict[str, Optional[Any]]:
        return {"actor": self.actor, "actor_target": self.actor_target, "critic": self.critic,
                "critic_target": self.critic_target, "actor_optimizer": self.actor_optimizer,
                "actor_scheduler": self.actor_scheduler, "critic_optimizer": self.critic_optimizer}
