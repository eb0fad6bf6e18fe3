"""The Q-critic of the generative-policy actor-critics (Consistency-AC, Diffusion-QL): a Q-ensemble, its
target networks, optimiser and schedule, the TD target, the critic loss, the normalised Q term of the
actor loss, Q-ranked acting candidates and the diagnostics, on top of a one-policy `PolicyAgent`.

Critic (clipped double Q over an ensemble of K, target networks Q'):

    y = r + gamma (1 - d) min_k Q'_k(s', a'),   a' ~ pi_ema(. | s')   (critic_target=td; max over M
                                                 samples of a' with max_q_backup)
    y = max(r + gamma (1 - d) min_k Q'_k(s', a'), G_t)                 (critic_target=td_return_bound)
    L_Q = sum_k E[(Q_k(s, a) - y)^2]

Actor, with a_pi ~ pi(. | s) drawn differentiably by the policy's training sampler:

    L_pi = L_BC + eta * ( -E[Q(s, a_pi)] / E[|Q(s, a_pi)|] )

where L_BC is the policy family's own generative loss (L_CM, L_DSM), Q the mean of the K critics, their
parameters frozen, and the denominator detached: the Diffusion-QL normalisation, which makes eta
independent of the reward scale. See consistency_ac.py for the return bound G_t.

A subclass lists this class before its behaviour-cloning base (`class ConsistencyAC(QCriticAgent[...],
ConsistencyBC)`) and supplies `behaviour_loss`, `train_sample`, `train_draws`, `train_sigmas` and a
`draw_noise` whose result has the fields `target` (the noise of a') and `actor` (the noise of a_pi).
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from cmrl.consistency import sampling_noise
from cmrl.critics import QEnsemble
from cmrl.data.store import Batch
from cmrl.nn import ema_update, frozen_copy

from .acceleration import maybe_compile
from .actor_critic import Q_SCALE_FLOOR, critic_regression
from .base import Metrics
from .config import AgentConfig
from .optim import global_norm, gradient_step, make_optimizer, make_scheduler
from .policy_agent import P, PolicyAgent

SATURATION = 0.99
"""|a| above this counts as a saturated action coordinate in the diagnostics."""


class QCriticAgent(PolicyAgent[P]):
    """A one-policy agent plus a Q-ensemble, its targets, and the eta-weighted Q loss."""

    behaviour_name = "behaviour"  # the metric name of L_BC's gradient norm: grad_norm/actor_<behaviour_name>
    train_sigmas: list[float]  # the training sampler's noise levels (target actions and a_pi)

    def __init__(self, cfg: AgentConfig, obs_dim: int, action_dim: int, total_steps: int,
                 device: torch.device | str = "cpu"):
        # the behaviour-cloning base after this class in the MRO, which builds its policy itself
        super().__init__(cfg, obs_dim, action_dim, total_steps, device)  # type: ignore[arg-type]
        self.critic = QEnsemble(obs_dim, action_dim, cfg.critic_hidden_dims, cfg.ensemble_size,
                                cfg.critic_layer_norm, cfg.activation).to(self.device)
        self.critic_target = frozen_copy(self.critic)
        self.critic_optimizer = make_optimizer(self.critic.parameters(), cfg.critic_lr, cfg.weight_decay,
                                               self._capture)
        self.critic_scheduler = make_scheduler(self.critic_optimizer, total_steps, cfg.lr_warmup_steps,
                                               cfg.min_lr_ratio)
        self._critic_loss = maybe_compile(self.critic_loss, cfg.compile)

    # --- what a subclass supplies --------------------------------------------------------------
    def behaviour_loss(self, batch: Batch, noise: Any) -> tuple[Tensor, Metrics]:
        """L_BC, the policy family's generative loss, on `noise`."""
        raise NotImplementedError

    def train_sample(self, policy: P, obs: Tensor, noise: list[Tensor]) -> Tensor:
        """Actions of `policy` by the training sampler (train_sigmas) on `noise`, differentiable."""
        raise NotImplementedError

    @property
    def train_draws(self) -> int:
        """How many standard-normal tensors one call of the training sampler consumes."""
        raise NotImplementedError

    def target_actions(self, next_obs: Tensor, noise: list[Tensor]) -> Tensor:
        """a' of the TD target: the acting (EMA) policy's training sampler on `noise`."""
        return self.train_sample(self.acting_policy, next_obs, noise)

    def steered_parameters(self) -> list[torch.nn.Parameter]:
        """The parameters that the actor's Q term trains (the diagnostics' gradient norms are over these)."""
        return [p for p in self.policy.parameters() if p.requires_grad]

    # --- noise --------------------------------------------------------------------------------
    def _sampling_noise(self, rows: int) -> list[Tensor]:
        return sampling_noise((rows, self.action_dim), self.train_draws, self.device)

    @property
    def _backup_samples(self) -> int:
        """Target actions per next state: backup_samples with max_q_backup, else 1."""
        return self.cfg.backup_samples if self.cfg.max_q_backup else 1

    # --- losses -------------------------------------------------------------------------------
    @torch.no_grad()
    def td_target(self, batch: Batch, noise: Optional[list[Tensor]] = None) -> Tensor:
        """The critic's regression target y for `cfg.critic_target` (see the module docstring).

        `noise` is the sampling noise of a' (defaults to a fresh draw).
        """
        returns = batch.returns if self.cfg.critic_target == "td_return_bound" else None
        if self.cfg.critic_target == "td_return_bound" and returns is None:
            raise ValueError("agent.critic_target=td_return_bound needs the batch's returns-to-go "
                             "(batches from TransitionStore carry them)")
        m = self._backup_samples
        next_obs = batch.next_observations.repeat_interleave(m, dim=0) if m > 1 else batch.next_observations
        if noise is None:
            noise = self._sampling_noise(next_obs.shape[0])
        next_actions = self.target_actions(next_obs, noise)
        next_q = self.critic_target(next_obs, next_actions).min(0).values.view(-1, m).max(1).values
        target = batch.rewards + self.cfg.discount * (1.0 - batch.terminals) * next_q
        return torch.maximum(target, returns) if returns is not None else target

    def critic_loss(self, batch: Batch, noise: Any = None) -> tuple[Tensor, Metrics]:
        """L_Q, summed over the ensemble members."""
        target = self.td_target(batch, noise.target if noise is not None else None)
        loss, metrics = critic_regression(self.critic, batch, target)
        if batch.returns is not None:  # the Q scale the data's returns call for
            metrics["q/data_return_mean"] = batch.returns.mean()
        return loss, metrics

    def actor_terms(self, batch: Batch, noise: Any,
                    measure_advantage: bool = False) -> tuple[Tensor, Optional[Tensor], Metrics]:
        """The actor loss's two parts on `noise`: L_BC and the normalised Q loss
        -E[Q(s, a_pi)] / E|Q(s, a_pi)| (None when eta = 0).

        `measure_advantage` adds the policy's advantage over the data's action, Q(s, a_pi) - Q(s, a),
        as metrics (the diagnostics ask for it).
        """
        behaviour, metrics = self.behaviour_loss(batch, noise)
        if self.cfg.eta == 0:
            return behaviour, None, metrics
        a_pi = self.train_sample(self.policy, batch.observations, noise.actor)
        return behaviour, self.q_loss(batch, a_pi, metrics, measure_advantage), metrics

    def q_loss(self, batch: Batch, a_pi: Tensor, metrics: Metrics, measure_advantage: bool = False) -> Tensor:
        """-E[Q(s, a_pi)] / E|Q(s, a_pi)| (Q the ensemble's mean, its parameters frozen, the denominator
        detached); adds its metrics to `metrics`, and the advantage over the data's action with
        `measure_advantage`."""
        q = self.critic.frozen(batch.observations, a_pi).mean(0)
        q_scale = q.abs().mean().detach().clamp(min=Q_SCALE_FLOOR)
        q_loss = -q.mean() / q_scale
        metrics.update({"loss/q": q_loss.detach(), "q/policy_mean": q.detach().mean(), "q/scale": q_scale,
                        "policy/saturation": (a_pi.detach().abs() > SATURATION).float().mean()})
        if measure_advantage:
            with torch.no_grad():
                advantage = q.detach() - self.critic(batch.observations, batch.actions).mean(0)
            metrics.update({"q/policy_advantage": advantage.mean(),
                            "q/policy_advantage_abs": advantage.abs().mean()})
        return q_loss

    def actor_loss(self, batch: Batch, noise: Any = None) -> tuple[Tensor, Metrics]:
        """L_BC + eta * normalised Q loss (the Q term is skipped when eta = 0)."""
        if noise is None:
            noise = self.draw_noise(batch.observations.shape[0])
        loss, q_loss, metrics = self.actor_terms(batch, noise)
        if q_loss is not None:
            loss = loss + self.cfg.eta * q_loss
        metrics["loss/actor"] = loss.detach()
        return loss, metrics

    def diagnostics(self, batch: Batch) -> Metrics:
        """The global gradient norms of the actor loss's two parts, L_BC and eta * L_Q, each alone,
        and the policy's advantage over the data's action, Q(s, a_pi) - Q(s, a).

        The norms' ratio says how much the critic steers the policy: the actor's one clipped step
        (grad_norm/actor) cannot tell a Q term that dominates from one that L_BC drowns. Computed on
        fresh noise with the random streams restored afterwards, and with autograd.grad, so neither
        the parameters' .grad nor the run's later random numbers change.
        """
        if self.cfg.eta == 0:
            return {}
        params = self.steered_parameters()
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            noise = self.draw_noise(batch.observations.shape[0])
            behaviour_loss, q_loss, metrics = self.actor_terms(batch, noise, measure_advantage=True)
            assert q_loss is not None  # eta > 0
            behaviour = torch.autograd.grad(behaviour_loss, params, retain_graph=True)  # the Q term may share it
            q_term = torch.autograd.grad(self.cfg.eta * q_loss, params)
        return {f"grad_norm/actor_{self.behaviour_name}": global_norm(behaviour),
                "grad_norm/actor_q": global_norm(q_term),
                "q/policy_advantage": metrics["q/policy_advantage"],
                "q/policy_advantage_abs": metrics["q/policy_advantage_abs"]}

    # --- steps --------------------------------------------------------------------------------
    def train_step(self, batch: Batch, noise: Any) -> Metrics:
        """One critic step, the base's actor step and averages, then the target critics' average."""
        critic_loss, metrics = self._critic_loss(batch, noise)
        metrics["grad_norm/critic"] = gradient_step(critic_loss, self.critic_optimizer, self.cfg.critic_grad_clip)
        metrics.update(super().train_step(batch, noise))
        ema_update(self.critic_target, self.critic, 1.0 - self.cfg.tau)
        return metrics

    def _optimizers(self) -> list[torch.optim.Optimizer]:
        return [*super()._optimizers(), self.critic_optimizer]

    def _schedulers(self) -> list[torch.optim.lr_scheduler.LRScheduler]:
        return [*super()._schedulers(), self.critic_scheduler]

    # --- acting -------------------------------------------------------------------------------
    def sample_actions(self, obs: Tensor, noise: list[Tensor]) -> Tensor:
        """One action per row of `obs` by the acting sampler: the behaviour-cloning base's."""
        return super().select_actions(obs, noise)

    def select_actions(self, obs: Tensor, noise: list[Tensor]) -> Tensor:
        """One sample per state, or the best of act_candidates samples (`sample_actions` on the state
        repeated) by min_k Q_k."""
        n = self.cfg.act_candidates
        if n == 1:
            return self.sample_actions(obs, noise)
        repeated = obs.repeat_interleave(n, dim=0)
        candidates = self.sample_actions(repeated, noise)
        q = self.critic(repeated, candidates).min(0).values.view(-1, n)
        best = q.argmax(1)
        return candidates.view(-1, n, self.action_dim)[torch.arange(obs.shape[0], device=obs.device), best]

    def _modules(self) -> dict[str, Optional[Any]]:
        return {**super()._modules(), "critic": self.critic, "critic_target": self.critic_target,
                "critic_optimizer": self.critic_optimizer, "critic_scheduler": self.critic_scheduler}
