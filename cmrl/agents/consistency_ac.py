"""Consistency-AC: the consistency policy improved by a Q-critic (Ding & Jin 2023, after Diffusion-QL).

The critic and the Q term are `QCriticAgent`'s (q_critic.py), shared with Diffusion-QL. Critic
(clipped double Q over an ensemble of K, target networks Q'):

    y = r + gamma (1 - d) min_k Q'_k(s', a'),   a' ~ pi_ema(. | s')   (critic_target=td; max over M
                                                 samples of a' with max_q_backup)
    y = max(r + gamma (1 - d) min_k Q'_k(s', a'), G_t)                 (critic_target=td_return_bound)
    L_Q = sum_k E[(Q_k(s, a) - y)^2]

G_t = sum_k gamma^k r_{t+k} is the discounted return the data observed after (s_t, a_t). In a
deterministic environment it is what one policy achieved from (s_t, a_t), so G_t <= Q*(s_t, a_t):
a lower bound that lifts the target at once where bootstrapping has not yet propagated the rewards
("optimality tightening", He et al. 2017). With gamma = 0.99 plain TD needs tens of thousands of
updates to propagate a return over the ~1/(1 - gamma) horizon; the bound closes that gap from the
first update, and it only ever uses actions from the data. Where the data's episode was cut by a
time limit, G_t stops at the cut, which keeps it a lower bound only when the rewards after the cut
are >= 0 (mostly true of Hopper with its alive bonus; not of Pendulum's costs). Hence td stays the
default; the 10k-step benchmark (experiment=bench_d4rl_style) uses the bound (docs/experiments.md).

Actor, with a_pi ~ pi_theta(. | s) sampled differentiably by the training sampler:

    L_pi = L_CM(theta) + eta * ( -E[Q(s, a_pi)] / E[|Q(s, a_pi)|] )

where Q is the mean of the K critics, their parameters frozen, and the denominator detached: the
Diffusion-QL normalisation, which makes eta independent of the reward scale. a_pi and the target
actions a' come from the consistency sampler on the train_sigmas (train_sampling_steps). The variants of this
term that were measured and not adopted (an advantage normaliser, the ensemble minimum, advantage
weights on L_CM, a return-scaled critic, n-step and return-only targets) are in docs/experiments.md.
"""
from __future__ import annotations

from torch import Tensor

from cmrl.data.store import Batch
from cmrl.policies import ConsistencyPolicy

from .base import Metrics
from .consistency_bc import ConsistencyBC, UpdateNoise
from .q_critic import QCriticAgent


class ConsistencyAC(QCriticAgent[ConsistencyPolicy], ConsistencyBC):
    """Consistency-BC plus a Q-ensemble, its targets, and the eta-weighted Q loss."""

    behaviour_name = "consistency"

    def draw_noise(self, batch_size: int) -> UpdateNoise:
        """Target-action noise (batch_size * backup_samples rows with max_q_backup), the CT pair, then
        the noise of a_pi when the Q loss is on (eta > 0)."""
        target = self._sampling_noise(batch_size * self._backup_samples)
        pairs = self.objective.sample_pairs(batch_size, self.action_dim, self.step, self.device)
        actor = self._sampling_noise(batch_size) if self.cfg.eta > 0 else []
        return UpdateNoise(target=target, pairs=pairs, actor=actor)

    def behaviour_loss(self, batch: Batch, noise: UpdateNoise) -> tuple[Tensor, Metrics]:
        """L_CM (or L_CD) on the noise's CT pair."""
        return self.consistency_loss(batch, noise.pairs)

    def train_sample(self, policy: ConsistencyPolicy, obs: Tensor, noise: list[Tensor]) -> Tensor:
        """Multistep consistency sampling on train_sigmas (z_1..z_T in `noise`), differentiable."""
        return policy.sample(obs, self.train_sigmas, noise=noise)

    @property
    def train_draws(self) -> int:
        """Algorithm 1 draws one z per training sampling step."""
        return len(self.train_sigmas)
