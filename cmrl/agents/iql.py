"""IQL (Kostrikov et al. 2022): implicit Q-learning. Values are learned in-sample (only the data's
actions are ever evaluated), then the policy is extracted by advantage-weighted regression.

With Q' the target critics (Polyak rate tau) and A(s, a) = min_k Q'_k(s, a) - V(s):

    L_V  = E[ L_2^tau(A(s, a)) ],   L_2^tau(u) = |tau - 1(u < 0)| u^2      (expectile tau, agent.iql.expectile)
    L_Q  = sum_k E[ (Q_k(s, a) - r - gamma (1 - d) V(s'))^2 ]
    L_pi = E[ w(s, a) ell(s, a) ],  w = min(exp(beta A(s, a)), w_max)     (beta = agent.iql.temperature)

with ell = -log pi(a | s) for the Gaussian policy (default) or ||pi(s) - a||^2 for the deterministic
one. V(s'), A and w use V before this update's V step, as in CORL; w is detached. Acting takes the
mean action. Published defaults (CORL, gym-MuJoCo): 2x256 ReLU networks, learning rates 3e-4, the
actor's cosine-decayed to 0 over the run, tau 0.7, beta 3, rewards scaled by 1000 / (the data's
return range) (dataset.reward_transform=return_range, a dataset setting shared by every agent).
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from cmrl.critics import QEnsemble, ValueFunction
from cmrl.data.store import Batch
from cmrl.nn import ema_update, frozen_copy
from cmrl.policies import DeterministicPolicy, GaussianPolicy

from .acceleration import maybe_compile
from .actor_critic import ActorCriticAgent, critic_regression
from .base import Metrics
from .config import AgentConfig
from .optim import gradient_step


def expectile_loss(u: Tensor, tau: float) -> Tensor:
    """E[L_2^tau(u)] = E[|tau - 1(u < 0)| u^2]: tau weighs positive residuals, 1 - tau negative ones."""
    return ((tau - (u < 0).float()).abs() * u.square()).mean()


def awr_weights(advantage: Tensor, beta: float, max_weight: float) -> Tensor:
    """w = min(exp(beta A), max_weight), detached."""
    return torch.exp(beta * advantage.detach()).clamp(max=max_weight)


class IQL(ActorCriticAgent):
    """The `Agent` of IQL: V, a Q-ensemble with target networks, and a Gaussian or deterministic actor."""

    def __init__(self, cfg: AgentConfig, obs_dim: int, action_dim: int, total_steps: int,
                 device: torch.device | str = "cpu"):
        super().__init__(cfg, total_steps, device)
        policy = DeterministicPolicy if cfg.iql.deterministic else GaussianPolicy
        self.actor = policy(obs_dim, action_dim, cfg.hidden_dims, cfg.activation).to(self.device)
        self.value = ValueFunction(obs_dim, cfg.critic_hidden_dims, cfg.critic_layer_norm,
                                   cfg.activation).to(self.device)
        self.critic = QEnsemble(obs_dim, action_dim, cfg.critic_hidden_dims, cfg.ensemble_size, cfg.critic_layer_norm,
                                cfg.activation).to(self.device)
        self.critic_target = frozen_copy(self.critic)
        self.optimize_actor()
        self.value_optimizer = self.make_optimizer(self.value, cfg.critic_lr)
        self.critic_optimizer = self.make_optimizer(self.critic, cfg.critic_lr)
        self._value_loss = maybe_compile(self.value_loss, cfg.compile)
        self._critic_loss = maybe_compile(self.critic_loss, cfg.compile)
        self._actor_loss = maybe_compile(self.actor_loss, cfg.compile)

    # --- losses -------------------------------------------------------------------------------
    def value_loss(self, batch: Batch) -> tuple[Tensor, Tensor, Metrics]:
        """L_V and the advantage A(s, a) = min_k Q'_k(s, a) - V(s) (V before its step)."""
        with torch.no_grad():
            q = self.critic_target(batch.observations, batch.actions).min(0).values
        advantage = q - self.value(batch.observations)
        loss = expectile_loss(advantage, self.cfg.iql.expectile)
        return loss, advantage.detach(), {"loss/value": loss.detach(), "v/advantage_mean": advantage.detach().mean()}

    def critic_loss(self, batch: Batch, next_v: Tensor) -> tuple[Tensor, Metrics]:
        """L_Q with the target y = r + gamma (1 - d) V(s'), summed over the members."""
        target = batch.rewards + self.cfg.discount * (1.0 - batch.terminals) * next_v
        return critic_regression(self.critic, batch, target)

    def actor_loss(self, batch: Batch, advantage: Tensor) -> tuple[Tensor, Metrics]:
        """L_pi = E[w ell]: advantage-weighted negative log-likelihood (or squared error) of the data's action."""
        w = awr_weights(advantage, self.cfg.iql.temperature, self.cfg.iql.max_weight)
        if isinstance(self.actor, GaussianPolicy):
            ell = -self.actor.log_prob(batch.observations, batch.actions)
        else:
            ell = (self.actor(batch.observations) - batch.actions).square().sum(-1)
        loss = (w * ell).mean()
        return loss, {"loss/actor": loss.detach(), "policy/weight_mean": w.mean(), "policy/weight_max": w.max()}

    # --- steps --------------------------------------------------------------------------------
    def update(self, batch: Batch) -> Metrics:
        """V step, Q step (then the target average), actor step."""
        with torch.no_grad():
            next_v = self.value(batch.next_observations)
        loss, advantage, metrics = self._value_loss(batch)
        metrics["grad_norm/value"] = gradient_step(loss, self.value_optimizer, self.cfg.critic_grad_clip)
        loss, critic_metrics = self._critic_loss(batch, next_v)
        metrics.update(critic_metrics)
        metrics["grad_norm/critic"] = gradient_step(loss, self.critic_optimizer, self.cfg.critic_grad_clip)
        ema_update(self.critic_target, self.critic, 1.0 - self.cfg.tau)
        loss, actor_metrics = self._actor_loss(batch, advantage)
        metrics.update(actor_metrics)
        metrics["grad_norm/actor"] = gradient_step(loss, self.actor_optimizer, self.cfg.actor_grad_clip)
        return self.finish_update(metrics)

    def _modules(self) -> dict[str, Optional[Any]]:
        return {"actor": self.actor, "value": self.value, "critic": self.critic, "critic_target": self.critic_target,
                "actor_optimizer": self.actor_optimizer, "actor_scheduler": self.actor_scheduler,
                "value_optimizer": self.value_optimizer, "critic_optimizer": self.critic_optimizer}
