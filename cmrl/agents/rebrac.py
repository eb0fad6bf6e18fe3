"""ReBRAC (Tarasov et al. 2023): TD3+BC revisited, with behaviour penalties in both the actor and the
critic, LayerNorm critics, deeper networks and a larger batch.

Critic (as TD3+BC, td3_bc.py, with the penalty beta_2 on the target action's distance to the data's
next action a'_D; K critics with LayerNorm, agent.critic_layer_norm):

    a' = clip(pi'(s') + clip(sigma eps, -c, c), -1, 1)
    y  = r + gamma (1 - d) ( min_k Q'_k(s', a') - beta_2 ||a' - a'_D||^2 )

Actor, every d-th update, then the targets are averaged:

    L_pi = E[ beta_1 ||pi(s) - a||^2 - lambda min_k Q_k(s, pi(s)) ],   lambda = 1 / E|min_k Q_k(s, pi(s))|

(squared norms summed over the action dimensions, lambda detached: CORL's normalize_q). Published
defaults (CORL): actor and critics 3x256 ReLU, learning rates 1e-3, beta_1 = beta_2 = 1 (the paper
tunes both per dataset), batch 1024 (TrainConfig.batch_size: `batch_size=1024` on the command line),
no state or reward normalisation (CORL's default; cmrl standardises observations unless
dataset.normalize_observations=false). CORL's actor and critic initialisation (biases 0.1, last
layers U(-1e-3, 1e-3)) is not reproduced: cmrl's networks keep PyTorch's default.
"""
from __future__ import annotations

from torch import Tensor

from cmrl.data.store import Batch

from .actor_critic import Q_SCALE_FLOOR
from .base import Metrics
from .config import TD3Config
from .td3_bc import TD3BC


class ReBRAC(TD3BC):
    """TD3+BC with ReBRAC's target penalty and actor loss."""

    @property
    def hp(self) -> TD3Config:
        """This algorithm's section of the config (agent.rebrac)."""
        return self.cfg.rebrac

    def next_value(self, batch: Batch, next_actions: Tensor) -> Tensor:
        """min_k Q'_k(s', a') - beta_2 ||a' - a'_D||^2."""
        if batch.next_actions is None:
            raise ValueError("agent=rebrac needs the batch's next actions (batches from TransitionStore carry them)")
        penalty = (next_actions - batch.next_actions).square().sum(-1)
        return super().next_value(batch, next_actions) - self.cfg.rebrac.critic_bc_coef * penalty

    def actor_loss(self, batch: Batch) -> tuple[Tensor, Metrics]:
        """L_pi = E[beta_1 ||pi(s) - a||^2 - lambda min_k Q_k(s, pi(s))], lambda = 1 / E|min_k Q_k| (detached)."""
        pi = self.actor(batch.observations)
        q = self.critic.frozen(batch.observations, pi).min(0).values
        lam = 1.0 / q.abs().mean().detach().clamp(min=Q_SCALE_FLOOR)
        bc = (pi - batch.actions).square().sum(-1).mean()
        loss = self.cfg.rebrac.actor_bc_coef * bc - lam * q.mean()
        return loss, {"loss/actor": loss.detach(), "loss/bc": bc.detach(), "q/policy_mean": q.detach().mean(),
                      "q/lambda": lam}
