"""Consistency-AC: the consistency policy improved by a Q-critic (Ding & Jin 2023, after Diffusion-QL).

Critic (clipped double Q over an ensemble of K, target networks Q'):

    y = r + gamma (1 - d) min_k Q'_k(s', a'),   a' ~ pi_ema(. | s')   (max over M samples with max_q_backup)
    L_Q = sum_k E[(Q_k(s, a) - y)^2]

Actor, with a_pi ~ pi_theta(. | s) sampled differentiably by the training sampler:

    L_pi = L_CM(theta) + eta * ( -E[Q(s, a_pi)] / E[|Q(s, a_pi)|] )

where Q is the ensemble mean with the critic's parameters frozen and the denominator detached (the
Diffusion-QL normalisation that makes eta independent of the reward scale).
"""
from __future__ import annotations

import copy
from typing import Any, Optional

import torch
from torch import Tensor

from cmrl.critics import QEnsemble
from cmrl.data.store import Batch
from cmrl.nn import ema_update

from .config import AgentConfig
from .consistency_bc import SATURATION, ConsistencyBC, Metrics
from .optim import clip_gradients, make_optimizer, make_scheduler


class ConsistencyAC(ConsistencyBC):
    """Consistency-BC plus a Q-ensemble, its targets, and the eta-weighted Q loss."""

    def __init__(self, cfg: AgentConfig, obs_dim: int, action_dim: int, total_steps: int,
                 device: torch.device | str = "cpu"):
        super().__init__(cfg, obs_dim, action_dim, total_steps, device)
        self.critic = QEnsemble(obs_dim, action_dim, cfg.critic_hidden_dims, cfg.ensemble_size).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.critic_optimizer = make_optimizer(self.critic.parameters(), cfg.critic_lr, cfg.weight_decay)
        self.critic_scheduler = make_scheduler(self.critic_optimizer, total_steps, cfg.lr_schedule,
                                               cfg.lr_warmup_steps, cfg.min_lr_ratio)

    # --- losses -------------------------------------------------------------------------------
    @torch.no_grad()
    def td_target(self, batch: Batch) -> Tensor:
        """y = r + gamma (1 - d) min_k Q'_k(s', a') with a' from the acting (EMA) policy."""
        next_obs = batch.next_observations
        if self.cfg.max_q_backup:
            m = self.cfg.backup_samples
            repeated = next_obs.repeat_interleave(m, dim=0)
            next_actions = self.acting_policy.sample(repeated, self.train_sigmas)
            next_q = self.critic_target(repeated, next_actions).min(0).values.view(-1, m).max(1).values
        else:
            next_actions = self.acting_policy.sample(next_obs, self.train_sigmas)
            next_q = self.critic_target(next_obs, next_actions).min(0).values
        return batch.rewards + self.cfg.discount * (1.0 - batch.terminals) * next_q

    def critic_loss(self, batch: Batch) -> tuple[Tensor, Metrics]:
        """L_Q, summed over the ensemble members."""
        target = self.td_target(batch)
        q = self.critic(batch.observations, batch.actions)
        loss = (q - target).square().mean(1).sum()
        return loss, {"loss/critic": loss.detach(), "q/data_mean": q.detach().mean(),
                      "q/target_mean": target.mean()}

    def actor_loss(self, batch: Batch) -> tuple[Tensor, Metrics]:
        """L_CM + eta * normalised Q loss (the Q term is skipped when eta = 0)."""
        loss, metrics = self.consistency_loss(batch)
        if self.cfg.eta > 0:
            a_pi = self.policy.sample(batch.observations, self.train_sigmas)
            q = self.critic.frozen(batch.observations, a_pi).mean(0)
            q_scale = q.abs().mean().detach()
            q_loss = -q.mean() / q_scale
            loss = loss + self.cfg.eta * q_loss
            metrics.update({"loss/q": q_loss.detach(), "q/policy_mean": q.detach().mean(), "q/scale": q_scale,
                            "policy/saturation": (a_pi.detach().abs() > SATURATION).float().mean()})
        metrics["loss/actor"] = loss.detach()
        return loss, metrics

    # --- steps --------------------------------------------------------------------------------
    def update(self, batch: Batch) -> Metrics:
        """One critic step, one actor step, then the teacher, acting-EMA and target-critic averages."""
        critic_loss, metrics = self.critic_loss(batch)
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        metrics["grad_norm/critic"] = clip_gradients(list(self.critic.parameters()), self.cfg.critic_grad_clip).detach()
        self.critic_optimizer.step()
        self.critic_scheduler.step()

        actor_loss, actor_metrics = self.actor_loss(batch)
        metrics.update(actor_metrics)
        self._actor_step(actor_loss, metrics)
        self._update_averages()
        ema_update(self.critic_target, self.critic, 1.0 - self.cfg.tau)
        metrics["consistency/num_scales"] = torch.tensor(float(self.objective.num_scales(self.step)))
        self.step += 1
        return metrics

    # --- acting -------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One sample per state, or the best of act_candidates samples by min_k Q_k."""
        n = self.cfg.act_candidates
        if n == 1:
            return super().act(obs, generator)
        repeated = obs.repeat_interleave(n, dim=0)
        candidates = self.acting_policy.sample(repeated, self.act_sigmas, generator).clamp(-1.0, 1.0)
        q = self.critic(repeated, candidates).min(0).values.view(-1, n)
        best = q.argmax(1)
        return candidates.view(-1, n, self.action_dim)[torch.arange(obs.shape[0], device=obs.device), best]

    def _modules(self) -> dict[str, Optional[Any]]:
        return {**super()._modules(), "critic": self.critic, "critic_target": self.critic_target,
                "critic_optimizer": self.critic_optimizer, "critic_scheduler": self.critic_scheduler}
