"""Consistency-AC: the consistency policy improved by a Q-critic (Ding & Jin 2023, after Diffusion-QL).

Critic (clipped double Q over an ensemble of K, target networks Q'):

    y = r + gamma (1 - d) min_k Q'_k(s', a'),   a' ~ pi_ema(. | s')   (critic_target=td; max over M
                                                 samples of a' with max_q_backup)
    y = R^(n) + gamma^m (1 - d) min_k Q'_k(s_{t+m}, a')                 (n_step=n: R^(n) sums the
                                                 m = min(n, rows left in the episode) rewards)
    y = max(r + gamma (1 - d) min_k Q'_k(s', a'), G_t)                 (critic_target=td_return_bound;
                                                 the TD part n-step with n_step)
    y = G_t                                                             (critic_target=return)
    L_Q = sum_k E[(Q_k(s, a) - y)^2]

G_t = sum_k gamma^k r_{t+k} is the discounted return the data observed after (s_t, a_t). In a
deterministic environment it is what one policy achieved from (s_t, a_t), so G_t <= Q*(s_t, a_t):
a lower bound that lifts the target at once where bootstrapping has not yet propagated the rewards
("optimality tightening", He et al. 2017). With gamma = 0.99 plain TD needs tens of thousands of
updates to propagate a return over the ~1/(1 - gamma) horizon; the bound closes that gap from the
first update, and it only ever uses actions from the data. Where the data's episode was cut by a
time limit, G_t stops at the cut, which keeps it a lower bound only when the rewards after the cut
are >= 0 (mostly true of Hopper with its alive bonus; not of Pendulum's costs, nor of HalfCheetah's
rewards under random actions: there the bound can overshoot). Hence td stays the default; the
10k-step benchmark (experiment=bench_d4rl_style) uses the bound, measured in README.md's Results.
critic_target=return regresses Q on G_t alone: Q then estimates Q^beta, the value of the data's own
policy, and the actor takes one step of policy improvement on it (Brandfonbrener et al. 2021), with
no bootstrapping from actions the data never took.

Actor, with a_pi ~ pi_theta(. | s) sampled differentiably by the training sampler:

    L_pi = L_CM^w(theta) + eta * ( -E[Q(s, a_pi) - b(s, a)] / E[|Q(s, a_pi) - b(s, a)|] )

where Q is the ensemble mean (actor_q=mean, Diffusion-QL's) or, pessimistic as SAC-N and EDAC,
the ensemble minimum (actor_q=min), with the critic's parameters frozen and the denominator
detached. The baseline b carries no gradient, so both choices push a_pi along the same dQ/da; they
differ in the scale that the denominator divides out (`q_normalizer`):
- value: b = 0, the Diffusion-QL normalisation by mean |Q|. It makes eta independent of the reward
  scale, but mean |Q| is dominated by the state's value: where Q ~ 300 and moving the action across
  its range changes Q by ~1 %, the Q term's gradient ends a 10k-step iCT run at 1/800 to 1/3000 of
  L_CM's (README: Results; `diagnostics` measures the two);
- advantage: b = Q(s, a) at the data's action, so the denominator is mean |A| with the advantage
  A = Q(s, a_pi) - Q(s, a): the scale of how much Q depends on the action, free of the value's
  offset and of the horizon 1 / (1 - gamma).

L_CM^w is the consistency loss with each row weighted by w(s, a) (`advantage_weights`): with
advantage_beta = 0 every w = 1 (plain L_CM); with beta > 0, w grows exponentially in the rank of the data
action's advantage A(s, a) = Q(s, a) - Q(s, a_pi) within the batch and is normalised to mean 1.
The policy then imitates the better of the data's actions: the target of the imitation is the
advantage-weighted behaviour, as in AWR (Peng et al. 2019), CRR (Wang et al. 2020) and EDP's
weighting for diffusion policies (Kang et al. 2023), rather than the behaviour itself; ranks
instead of exp(beta A) keep any one row from taking the batch. It steers through the imitation
term, which iCT's weighting makes dominate the actor's gradient late in training, and it only ever
pulls towards actions in the data. Off by default: at the benchmark's 10k steps it did worse
(README: Results).
"""
from __future__ import annotations

import copy
from typing import Any, Optional, Sequence

import torch
from torch import Tensor

from cmrl.consistency import sampling_noise
from cmrl.critics import QEnsemble
from cmrl.data.store import Batch
from cmrl.nn import ema_update

from .acceleration import maybe_compile
from .config import AgentConfig
from .consistency_bc import SATURATION, ConsistencyBC, Metrics, UpdateNoise
from .optim import global_norm, gradient_step, make_optimizer, make_scheduler


VALUE_SCALE_FLOOR = 1e-3  # critic_return_scaling on data whose returns-to-go are all equal
Q_SCALE_FLOOR = 1e-6  # the normaliser's floor: a critic flat in the action must not divide by zero


def advantage_weights(advantage: Tensor, beta: float) -> Tensor:
    """Rank-based exponential advantage weights, one per row of the batch, normalised to mean 1:

        w_i = exp(beta u_i) / mean_j exp(beta u_j),   u_i = 2 rank_i / (B - 1) - 1 in [-1, 1]

    where rank_i is the place of A_i = Q(s_i, a_i) - Q(s_i, a_pi) among the batch's B advantages
    (0 for the lowest). The best row weighs e^(2 beta) times the worst, whatever the critic's scale
    or outliers: the effective sample size (mean w)^2 / mean w^2 is fixed by beta (0.76 B at
    beta = 1, 0.48 B at beta = 2). Exponential weights in A itself (AWR's exp(beta A)), even with A
    divided by mean |A|, let one row with an outlying advantage take the whole batch (measured on
    halfcheetah-mixed: ESS 1/256 within 2k steps, README: Results). Mean 1 keeps L_CM's scale, so
    the balance with eta's Q term does not move.
    """
    rows = advantage.shape[0]
    ranks = advantage.argsort().argsort().to(advantage.dtype)
    u = 2.0 * ranks / max(rows - 1, 1) - 1.0
    return rows * torch.softmax(beta * u, dim=0)


class ConsistencyAC(ConsistencyBC):
    """Consistency-BC plus a Q-ensemble, its targets, and the eta-weighted Q loss."""

    def __init__(self, cfg: AgentConfig, obs_dim: int, action_dim: int, total_steps: int,
                 device: torch.device | str = "cpu"):
        super().__init__(cfg, obs_dim, action_dim, total_steps, device)
        self.critic = QEnsemble(obs_dim, action_dim, cfg.critic_hidden_dims, cfg.ensemble_size,
                                 cfg.critic_layer_norm).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.critic_optimizer = make_optimizer(self.critic.parameters(), cfg.critic_lr, cfg.weight_decay,
                                               self._capture)
        self.critic_scheduler = make_scheduler(self.critic_optimizer, total_steps, cfg.lr_schedule,
                                               cfg.lr_warmup_steps, cfg.min_lr_ratio)
        self._critic_loss = maybe_compile(self.critic_loss, cfg.compile)

    def fit_data_statistics(self, returns: Tensor) -> None:
        """With critic_return_scaling, Q = mean(G) + std(G) * g for the critics and their targets."""
        if self.cfg.critic_return_scaling:
            offset, scale = returns.mean().item(), max(returns.std().item(), VALUE_SCALE_FLOOR)
            for critic in (self.critic, self.critic_target):
                critic.set_value_scale(offset, scale)

    # --- noise --------------------------------------------------------------------------------
    def draw_noise(self, batch_size: int) -> UpdateNoise:
        """Target-action noise (batch_size * backup_samples rows with max_q_backup; none when the
        critic regresses on returns alone), the CT pair, then the noise of a_pi when the Q loss or
        the advantage weighting is on."""
        bootstraps = self.cfg.critic_target != "return"
        target = self._sampling_noise(batch_size * self._backup_samples) if bootstraps else []
        pairs = self.objective.sample_pairs(batch_size, self.action_dim, self.step, self.device)
        actor = self._sampling_noise(batch_size) if self.cfg.eta > 0 or self.cfg.advantage_beta > 0 else []
        return UpdateNoise(target=target, pairs=pairs, actor=actor)

    def _sampling_noise(self, rows: int) -> list[Tensor]:
        return sampling_noise((rows, self.action_dim), len(self.train_sigmas), self.device)

    @property
    def _backup_samples(self) -> int:
        """Target actions per next state: backup_samples with max_q_backup, else 1."""
        return self.cfg.backup_samples if self.cfg.max_q_backup else 1

    # --- losses -------------------------------------------------------------------------------
    @torch.no_grad()
    def td_target(self, batch: Batch, noise: Optional[Sequence[Tensor]] = None) -> Tensor:
        """The critic's regression target y for `cfg.critic_target` (see the module docstring).

        `noise` is the sampling noise of a' (defaults to a fresh draw; unused for critic_target=return).
        """
        if self.cfg.critic_target != "td" and batch.returns is None:
            raise ValueError(f"agent.critic_target={self.cfg.critic_target} needs the batch's returns-to-go "
                             "(batches from TransitionStore carry them)")
        if self.cfg.critic_target == "return":
            return batch.returns
        m = self._backup_samples
        next_obs = batch.next_observations.repeat_interleave(m, dim=0) if m > 1 else batch.next_observations
        if noise is None:
            noise = self._sampling_noise(next_obs.shape[0])
        next_actions = self.acting_policy.sample(next_obs, self.train_sigmas, noise=noise)
        next_q = self.critic_target(next_obs, next_actions).min(0).values.view(-1, m).max(1).values
        # gamma^m of each row from the store (its n-step windows), else the agent's gamma
        discount = batch.discounts if batch.discounts is not None else self.cfg.discount
        target = batch.rewards + discount * (1.0 - batch.terminals) * next_q
        if self.cfg.critic_target == "td_return_bound":
            target = torch.maximum(target, batch.returns)
        return target

    def critic_loss(self, batch: Batch, noise: Optional[UpdateNoise] = None) -> tuple[Tensor, Metrics]:
        """L_Q, summed over the ensemble members."""
        target = self.td_target(batch, noise.target if noise is not None else None)
        q = self.critic(batch.observations, batch.actions)
        loss = (q - target).square().mean(1).sum()
        metrics = {"loss/critic": loss.detach(), "q/data_mean": q.detach().mean(), "q/target_mean": target.mean()}
        if batch.returns is not None:  # the Q scale the data's returns call for
            metrics["q/data_return_mean"] = batch.returns.mean()
        return loss, metrics

    def actor_q(self, q: Tensor) -> Tensor:
        """The actor's Q from the K critics' (K, B) values: their mean, or with actor_q=min their
        minimum (the clipped double Q of the target, applied to the policy too)."""
        return q.min(0).values if self.cfg.actor_q == "min" else q.mean(0)

    def actor_terms(self, batch: Batch, noise: UpdateNoise,
                    measure_advantage: bool = False) -> tuple[Tensor, Optional[Tensor], Metrics]:
        """The actor loss's two parts on `noise`: L_CM (advantage-weighted when advantage_beta > 0)
        and the normalised Q loss -E[Q(s, a_pi) - b] / E|Q(s, a_pi) - b| (None when eta = 0).

        a_pi is sampled only when a part needs it, differentiably only for the Q loss; Q at the data's
        action is evaluated only when the normaliser (advantage) or the weighting needs it, or
        `measure_advantage` asks for the q/policy_advantage metrics (the diagnostics do).
        """
        cfg = self.cfg
        weights, q_loss, metrics = None, None, {}
        # Unweighted, L_CM is built first: the gradients then sum in the same order as before the
        # weighting existed, and runs reproduce the earlier releases' to the last bit.
        consistency = None if cfg.advantage_beta > 0 else self.consistency_loss(batch, noise.pairs)
        if cfg.eta > 0 or cfg.advantage_beta > 0:
            with torch.set_grad_enabled(cfg.eta > 0 and torch.is_grad_enabled()):
                a_pi = self.policy.sample(batch.observations, self.train_sigmas, noise=noise.actor)
                q = self.actor_q(self.critic.frozen(batch.observations, a_pi))
            q_data = None
            if cfg.q_normalizer == "advantage" or cfg.advantage_beta > 0 or measure_advantage:
                with torch.no_grad():
                    q_data = self.actor_q(self.critic(batch.observations, batch.actions))
                advantage = q.detach() - q_data  # the policy's advantage over the data's action
                metrics.update({"q/policy_advantage": advantage.mean(),
                                "q/policy_advantage_abs": advantage.abs().mean()})
            if cfg.eta > 0:
                gain = q - q_data if cfg.q_normalizer == "advantage" else q  # Q(s, a_pi) - b(s, a)
                q_scale = gain.abs().mean().detach().clamp(min=Q_SCALE_FLOOR)
                q_loss = -gain.mean() / q_scale
                metrics.update({"loss/q": q_loss.detach(), "q/policy_mean": q.detach().mean(), "q/scale": q_scale,
                                "policy/saturation": (a_pi.detach().abs() > SATURATION).float().mean()})
            if cfg.advantage_beta > 0:
                weights = advantage_weights(-advantage, cfg.advantage_beta)  # the data's action's advantage
                metrics.update({"actor/weight_max": weights.max(),
                                "actor/weight_ess": 1.0 / weights.square().mean()})  # ESS / B, as mean w = 1
        if consistency is None:
            consistency = self.consistency_loss(batch, noise.pairs, weights)
        loss, consistency_metrics = consistency
        return loss, q_loss, {**consistency_metrics, **metrics}

    def actor_loss(self, batch: Batch, noise: Optional[UpdateNoise] = None) -> tuple[Tensor, Metrics]:
        """L_CM + eta * normalised Q loss (the Q term is skipped when eta = 0)."""
        if noise is None:
            noise = self.draw_noise(batch.observations.shape[0])
        loss, q_loss, metrics = self.actor_terms(batch, noise)
        if q_loss is not None:
            loss = loss + self.cfg.eta * q_loss
        metrics["loss/actor"] = loss.detach()
        return loss, metrics

    def diagnostics(self, batch: Batch) -> Metrics:
        """The global gradient norms of the actor loss's two parts, L_CM and eta * L_Q, each alone,
        and the policy's advantage over the data's action, Q(s, a_pi) - Q(s, a).

        The norms' ratio says how much the critic steers the policy: the actor's one clipped step
        (grad_norm/actor) cannot tell a Q term that dominates from one that L_CM drowns. Computed on
        fresh noise with the random streams restored afterwards, and with autograd.grad, so neither
        the parameters' .grad nor the run's later random numbers change.
        """
        if self.cfg.eta == 0:
            return {}
        params = [p for p in self.policy.parameters() if p.requires_grad]
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            noise = self.draw_noise(batch.observations.shape[0])
            consistency_loss, q_loss, metrics = self.actor_terms(batch, noise, measure_advantage=True)
            consistency = torch.autograd.grad(consistency_loss, params)
            q_term = torch.autograd.grad(self.cfg.eta * q_loss, params)
        return {"grad_norm/actor_consistency": global_norm(consistency), "grad_norm/actor_q": global_norm(q_term),
                "q/policy_advantage": metrics["q/policy_advantage"],
                "q/policy_advantage_abs": metrics["q/policy_advantage_abs"]}

    # --- steps --------------------------------------------------------------------------------
    def train_step(self, batch: Batch, noise: UpdateNoise) -> Metrics:
        """One critic step, one actor step, then the teacher, acting-EMA and target-critic averages."""
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
    def select_actions(self, obs: Tensor, noise: list[Tensor]) -> Tensor:
        """One sample per state, or the best of act_candidates samples by min_k Q_k."""
        n = self.cfg.act_candidates
        if n == 1:
            return super().select_actions(obs, noise)
        repeated = obs.repeat_interleave(n, dim=0)
        candidates = self.acting_policy.sample(repeated, self.act_sigmas, noise=noise).clamp(-1.0, 1.0)
        q = self.critic(repeated, candidates).min(0).values.view(-1, n)
        best = q.argmax(1)
        return candidates.view(-1, n, self.action_dim)[torch.arange(obs.shape[0], device=obs.device), best]

    def _modules(self) -> dict[str, Optional[Any]]:
        return {**super()._modules(), "critic": self.critic, "critic_target": self.critic_target,
                "critic_optimizer": self.critic_optimizer, "critic_scheduler": self.critic_scheduler}
