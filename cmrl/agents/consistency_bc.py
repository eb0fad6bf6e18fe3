"""Consistency-BC: behaviour cloning with a consistency policy (the consistency loss only).

Per gradient step k, with (s, a) from the dataset and the CT pair (sigma_n, sigma_{n+1}, z):

    L_CM(theta) = E[ lambda(sigma_n) d( f_theta(a + sigma_{n+1} z, sigma_{n+1} | s),
                                        f_theta^-(a + sigma_n z, sigma_n | s) ) ]

then theta^- <- mu(k) theta^- + (1 - mu(k)) theta for an EMA teacher, and the acting policy
theta_ema <- decay theta_ema + (1 - decay) theta. Consistency-AC (consistency_ac.py) builds on this.

With agent.consistency.objective=cd (consistency distillation), the teacher's input a + sigma_n z is
replaced by one PF-ODE step of a frozen diffusion policy D_phi(x, sigma | s) from a + sigma_{n+1} z to
sigma_n; the training layer loads D_phi from agent.consistency.teacher_checkpoint and hands it over
with `set_distillation_teacher` (the agent itself reads no files).
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional

import torch
from torch import Tensor

from cmrl.consistency import Denoiser, NoisePairs, default_sampling_sigmas, make_objective
from cmrl.data.store import Batch
from cmrl.nn import ema_update, frozen_copy
from cmrl.policies import ConsistencyPolicy, DiffusionPolicy

from .base import Metrics
from .config import AgentConfig
from .policy_agent import PolicyAgent


class UpdateNoise(NamedTuple):
    """Every random draw of one update, made before its tensor work (in the order listed).

    `train_step` is then a pure function of (batch, noise) and the agent's tensors: the fast path
    (`AgentConfig.compile`, see acceleration.py) draws nothing inside compiled or captured code and
    consumes exactly the eager path's numbers.
    """

    target: list[Tensor]  # z_1..z_T of the target actions a' (Consistency-AC; empty for BC)
    pairs: NoisePairs  # the CT pair (n, z) of the consistency loss
    actor: list[Tensor]  # z_1..z_T of a_pi in the Q loss (Consistency-AC with eta > 0; else empty)


class ConsistencyBC(PolicyAgent[ConsistencyPolicy]):
    """The `Agent` of behaviour cloning with a consistency policy; Consistency-AC extends it."""

    def __init__(self, cfg: AgentConfig, obs_dim: int, action_dim: int, total_steps: int,
                 device: torch.device | str = "cpu"):
        c = cfg.consistency
        policy = ConsistencyPolicy(obs_dim, action_dim, cfg.hidden_dims, cfg.time_embed_dim, c, cfg.bounded_actions,
                                   cfg.activation)
        super().__init__(cfg, policy, obs_dim, action_dim, total_steps, device)
        self.objective = make_objective(c, total_steps, action_dim)
        self.teacher = frozen_copy(self.policy) if c.teacher == "ema" else None
        self.distillation_teacher: Optional[DiffusionPolicy] = None  # D_phi of objective=cd
        self.train_sigmas = cfg.train_sampling_sigmas or default_sampling_sigmas(
            cfg.train_sampling_steps, c.sigma_min, c.sigma_max, c.rho)
        self.act_sigmas = cfg.act_sampling_sigmas or default_sampling_sigmas(
            cfg.act_sampling_steps, c.sigma_min, c.sigma_max, c.rho)
        # the EMA teacher's decay mu(k) of the current step, in a tensor updated in place
        self._teacher_decay = torch.zeros((), device=self.device)

    def set_distillation_teacher(self, teacher: DiffusionPolicy) -> None:
        """The frozen diffusion policy D_phi whose PF-ODE consistency distillation (objective=cd) follows."""
        self.distillation_teacher = teacher.to(self.device).requires_grad_(False).eval()

    def _teacher_denoiser(self, obs: Tensor) -> Optional[Denoiser]:
        """D_phi(x, sigma | obs) for the CD objective; None for CT/iCT."""
        if self.cfg.consistency.objective != "cd":
            return None
        teacher = self.distillation_teacher
        if teacher is None:
            raise RuntimeError("agent.consistency.objective=cd needs the diffusion teacher: call "
                               "set_distillation_teacher (the Trainer loads agent.consistency.teacher_checkpoint)")
        return lambda x, sigma: teacher(x, sigma, obs)

    # --- noise --------------------------------------------------------------------------------
    def draw_noise(self, batch_size: int) -> UpdateNoise:
        """The random draws of one update at the current step (from torch's global generator)."""
        pairs = self.objective.sample_pairs(batch_size, self.action_dim, self.step, self.device)
        return UpdateNoise(target=[], pairs=pairs, actor=[])

    # --- losses -------------------------------------------------------------------------------
    def consistency_loss(self, batch: Batch, pairs: Optional[NoisePairs] = None) -> tuple[Tensor, Metrics]:
        """L_CM (or L_CD) on the batch's (s, a), with per-noise-level diagnostics (sigma_n < 1 and >= 1).

        `pairs` defaults to a fresh draw at the current step.
        """
        obs, actions = batch.observations, batch.actions
        if pairs is None:
            pairs = self.objective.sample_pairs(obs.shape[0], self.action_dim, self.step, self.device)
        student = self.policy(pairs.student_input(actions), pairs.sigma_next, obs)
        with torch.no_grad():
            teacher_net = self.teacher if self.teacher is not None else self.policy
            teacher_input = self.objective.teacher_input(pairs, actions, self._teacher_denoiser(obs))
            teacher = teacher_net(teacher_input, pairs.sigma, obs)
        per_sample = self.objective.loss(student, teacher, pairs)
        low = (pairs.sigma.squeeze(-1) < 1.0).float()
        metrics = {
            "loss/consistency": per_sample.mean().detach(),
            "loss/consistency_sigma_lt_1": (per_sample.detach() * low).sum() / low.sum().clamp(min=1.0),
            "loss/consistency_sigma_ge_1": (per_sample.detach() * (1 - low)).sum() / (1 - low).sum().clamp(min=1.0),
        }
        return per_sample.mean(), metrics

    def actor_loss(self, batch: Batch, noise: Optional[UpdateNoise] = None) -> tuple[Tensor, Metrics]:
        """The policy's loss: L_CM (Consistency-AC adds its Q term). `noise` defaults to a fresh draw."""
        if noise is None:
            noise = self.draw_noise(batch.observations.shape[0])
        loss, metrics = self.consistency_loss(batch, noise.pairs)
        metrics["loss/actor"] = loss.detach()
        return loss, metrics

    # --- steps --------------------------------------------------------------------------------
    def _update_averages(self) -> None:
        """EMA teacher with mu(k), then the acting EMA (a plain copy before ema_start_step)."""
        if self.teacher is not None:
            ema_update(self.teacher, self.policy, self._teacher_decay)
        super()._update_averages()

    def _set_decays(self) -> None:
        decay = self.objective.teacher_decay(self.step)
        self._teacher_decay.fill_(decay if decay is not None else 0.0)
        super()._set_decays()

    def _schedule_metrics(self) -> Metrics:
        return {"consistency/num_scales": torch.tensor(float(self.objective.num_scales(self.step)))}

    # --- acting -------------------------------------------------------------------------------
    @property
    def act_draws(self) -> int:
        """Algorithm 1 draws one z per sampling step."""
        return len(self.act_sigmas)

    def select_actions(self, obs: Tensor, noise: list[Tensor]) -> Tensor:
        """`act` given its sampling noise: z_1..z_T of shape (B * act_candidates, A)."""
        return self.acting_policy.sample(obs, self.act_sigmas, noise=noise).clamp(-1.0, 1.0)

    # --- checkpointing ------------------------------------------------------------------------
    def _modules(self) -> dict[str, Optional[Any]]:
        """The base's modules and the EMA teacher (D_phi is not saved: it is reloaded from its file)."""
        return {**super()._modules(), "teacher": self.teacher}
