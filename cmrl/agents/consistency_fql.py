"""Consistency-FQL: flow Q-learning's one-step policy (Park, Li & Levine 2025, "Flow Q-Learning") with a
consistency policy as the behaviour model.

Three networks: Consistency-BC's policy f_theta (trained by L_CM alone), a one-step policy
mu_omega(s, z) (policies.OneStepPolicy) and Consistency-AC's Q-ensemble (q_critic.py). Per gradient
step, with (s, a, r, s', d) from the dataset and z, z' ~ N(0, I):

    critic:  y = r + gamma (1 - d) min_k Q'_k(s', mu_omega(s', z'))   (max(y, G_t) with
             critic_target=td_return_bound; max over M draws of z' with max_q_backup)
             L_Q = sum_k E[(Q_k(s, a) - y)^2]
    BC:      L_CM(theta), as Consistency-BC
    actor:   L_mu(omega) = alpha E[ ||mu_omega(s, z) - f_theta_ema(sigma_max z, sigma_max | s)||^2 / A ]
                           + eta ( -E[Q(s, mu_omega(s, z))] / E|Q(s, mu_omega(s, z))| )

The distillation target is the behaviour policy's one-step sample on the same z, without gradient:
mu_omega learns the behaviour policy's map from noise to actions (so it keeps its modes), and the Q
term (Consistency-AC's normalised one, Q the ensemble's mean with frozen parameters) moves each of
its samples uphill. Unlike Consistency-AC, the Q term never backpropagates through the consistency
sampler, and the regulariser's scale is fixed: L_CM's iCT weight 1/(sigma_{n+1} - sigma_n) grows ~40x
as the curriculum doubles N, which drowns Consistency-AC's Q term (docs/experiments.md, "how much the
actor's Q term steers"). Acting is one pass, a = mu_omega(s, alpha_T z) with alpha_T = act_temperature
(with act_candidates N > 1: the best of N such draws by min_k Q_k, as Consistency-AC acts). mu_omega has
its own optimiser (Adam, actor_lr, the cosine schedule, actor_grad_clip) and no EMA, as in FQL.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from cmrl.data.store import Batch
from cmrl.policies import ConsistencyPolicy, OneStepPolicy

from .base import Metrics
from .config import AgentConfig
from .consistency_bc import ConsistencyBC, UpdateNoise
from .optim import clip_and_step, make_optimizer, make_scheduler
from .q_critic import QCriticAgent


class ConsistencyFQL(QCriticAgent[ConsistencyPolicy], ConsistencyBC):
    """Consistency-BC plus a one-step policy distilled from it and trained on the Q-ensemble."""

    behaviour_name = "distillation"  # diagnostics: grad_norm/actor_distillation against grad_norm/actor_q

    def __init__(self, cfg: AgentConfig, obs_dim: int, action_dim: int, total_steps: int,
                 device: torch.device | str = "cpu"):
        self.one_step = OneStepPolicy(obs_dim, action_dim, cfg.hidden_dims, cfg.activation).to(device)
        super().__init__(cfg, obs_dim, action_dim, total_steps, device)
        self.one_step_optimizer = make_optimizer(self.one_step.parameters(), cfg.actor_lr, cfg.weight_decay,
                                                 self._capture)
        self.one_step_scheduler = make_scheduler(self.one_step_optimizer, total_steps, cfg.lr_warmup_steps,
                                                 cfg.min_lr_ratio)

    # --- noise --------------------------------------------------------------------------------
    @property
    def train_draws(self) -> int:
        """mu_omega takes one z."""
        return 1

    def draw_noise(self, batch_size: int) -> UpdateNoise:
        """z' of the target actions (batch_size * backup_samples rows with max_q_backup), the CT pair,
        then z of the actor loss."""
        target = self._sampling_noise(batch_size * self._backup_samples)
        pairs = self.objective.sample_pairs(batch_size, self.action_dim, self.step, self.device)
        return UpdateNoise(target=target, pairs=pairs, actor=self._sampling_noise(batch_size))

    # --- losses -------------------------------------------------------------------------------
    def target_actions(self, next_obs: Tensor, noise: list[Tensor]) -> Tensor:
        """a' = mu_omega(s', z')."""
        return self.one_step(next_obs, noise[0])

    def distillation_target(self, obs: Tensor, z: Tensor) -> Tensor:
        """f_theta_ema(sigma_max z, sigma_max | s): the behaviour policy's one-step sample on z."""
        with torch.no_grad():
            return self.acting_policy.sample(obs, [self.cfg.consistency.sigma_max], noise=[z])

    def actor_terms(self, batch: Batch, noise: UpdateNoise,
                    measure_advantage: bool = False) -> tuple[Tensor, Optional[Tensor], Metrics]:
        """L_CM(theta) + alpha * the distillation loss, and the normalised Q loss of mu_omega's actions
        (None when eta = 0)."""
        obs, z = batch.observations, noise.actor[0]
        # BC loss (theta).
        consistency, metrics = self.consistency_loss(batch, noise.pairs)
        # Distillation loss (omega).
        a_mu = self.one_step(obs, z)
        distillation = (a_mu - self.distillation_target(obs, z)).square().mean()
        metrics["loss/distillation"] = distillation.detach()
        behaviour = consistency + self.cfg.fql.alpha * distillation
        if self.cfg.eta == 0:
            return behaviour, None, metrics
        # Q loss (omega).
        return behaviour, self.q_loss(batch, a_mu, metrics, measure_advantage), metrics

    def steered_parameters(self) -> list[torch.nn.Parameter]:
        """The Q term trains mu_omega."""
        return list(self.one_step.parameters())

    # --- steps --------------------------------------------------------------------------------
    def _actor_step(self, loss: Tensor) -> Metrics:
        """One backward pass of L_CM + L_mu, then f_theta's and mu_omega's steps, each clipped alone."""
        self.one_step_optimizer.zero_grad(set_to_none=True)
        metrics = super()._actor_step(loss)
        metrics["grad_norm/one_step"] = clip_and_step(self.one_step_optimizer, self.cfg.actor_grad_clip)
        return metrics

    def _optimizers(self) -> list[torch.optim.Optimizer]:
        return [*super()._optimizers(), self.one_step_optimizer]

    def _schedulers(self) -> list[torch.optim.lr_scheduler.LRScheduler]:
        return [*super()._schedulers(), self.one_step_scheduler]

    # --- acting -------------------------------------------------------------------------------
    @property
    def act_draws(self) -> int:
        """mu_omega takes one z."""
        return 1

    def sample_actions(self, obs: Tensor, noise: list[Tensor]) -> Tensor:
        """a = mu_omega(s, z), z the (temperature-scaled) acting noise; with act_candidates > 1 the
        critic ranks several of these (QCriticAgent.select_actions)."""
        return self.one_step(obs, noise[0])

    def _modules(self) -> dict[str, Optional[Any]]:
        return {**super()._modules(), "one_step": self.one_step, "one_step_optimizer": self.one_step_optimizer,
                "one_step_scheduler": self.one_step_scheduler}
