"""Consistency-BC: behaviour cloning with a consistency policy (the consistency loss only).

Per gradient step k, with (s, a) from the dataset and the CT pair (sigma_n, sigma_{n+1}, z):

    L_CM(theta) = E[ lambda(sigma_n) d( f_theta(a + sigma_{n+1} z, sigma_{n+1} | s),
                                        f_theta^-(a + sigma_n z, sigma_n | s) ) ]

then theta^- <- mu(k) theta^- + (1 - mu(k)) theta for an EMA teacher, and the acting policy
theta_ema <- decay theta_ema + (1 - decay) theta. Consistency-AC (consistency_ac.py) builds on this.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, NamedTuple, Optional

import torch
from torch import Tensor

from cmrl.consistency import ConsistencyTraining, NoisePairs, default_sampling_sigmas, sampling_noise
from cmrl.data.store import Batch
from cmrl.nn import ema_update
from cmrl.policies import ConsistencyPolicy

from .acceleration import CapturedStep, captures_updates, maybe_compile
from .base import Metrics, SavesModules
from .config import AgentConfig
from .optim import gradient_step, make_optimizer, make_scheduler, set_capturable

SATURATION = 0.99
"""|a| above this counts as a saturated action coordinate in the diagnostics."""


class UpdateNoise(NamedTuple):
    """Every random draw of one update, made before its tensor work (in the order listed).

    `train_step` is then a pure function of (batch, noise) and the agent's tensors: the fast path
    (`AgentConfig.compile`, see acceleration.py) draws nothing inside compiled or captured code and
    consumes exactly the eager path's numbers.
    """

    target: list[Tensor]  # z_1..z_T of the target actions a' (Consistency-AC; empty for BC)
    pairs: NoisePairs  # the CT pair (n, z) of the consistency loss
    actor: list[Tensor]  # z_1..z_T of a_pi in the Q loss (Consistency-AC with eta > 0; else empty)


class ConsistencyBC(SavesModules):
    """The `Agent` of behaviour cloning with a consistency policy; Consistency-AC extends it."""

    def __init__(self, cfg: AgentConfig, obs_dim: int, action_dim: int, total_steps: int,
                 device: torch.device | str = "cpu"):
        self.cfg = cfg
        self.device = torch.device(device)
        self.obs_dim, self.action_dim, self.total_steps = obs_dim, action_dim, total_steps
        self.step = 0
        c = cfg.consistency
        self.objective = ConsistencyTraining(c, total_steps, action_dim)
        self.policy = ConsistencyPolicy(obs_dim, action_dim, cfg.hidden_dims, cfg.time_embed_dim, c,
                                        cfg.bounded_actions, cfg.activation).to(self.device)
        self.teacher = self._frozen_copy(self.policy) if c.teacher == "ema" else None
        self.ema_policy = self._frozen_copy(self.policy) if cfg.ema_decay > 0 else None
        self._capture = captures_updates(cfg.compile, self.device)
        self.actor_optimizer = make_optimizer(self.policy.parameters(), cfg.actor_lr, cfg.weight_decay,
                                              self._capture)
        self.actor_scheduler = make_scheduler(self.actor_optimizer, total_steps, cfg.lr_warmup_steps,
                                              cfg.min_lr_ratio)
        self.train_sigmas = cfg.train_sampling_sigmas or default_sampling_sigmas(
            cfg.train_sampling_steps, c.sigma_min, c.sigma_max, c.rho)
        self.act_sigmas = cfg.act_sampling_sigmas or default_sampling_sigmas(
            cfg.act_sampling_steps, c.sigma_min, c.sigma_max, c.rho)
        # EMA decays of the current step, in tensors updated in place (read by train_step).
        self._teacher_decay = torch.zeros((), device=self.device)
        self._ema_decay = torch.zeros((), device=self.device)
        # The fast path: the same functions, compiled (and the train step captured on CUDA).
        self._actor_loss = maybe_compile(self.actor_loss, cfg.compile)
        self._select_actions = maybe_compile(self.select_actions, cfg.compile)
        self._train_step = self._train_step_runner()

    def _train_step_runner(self) -> Callable[[Batch, UpdateNoise], Metrics]:
        """`train_step` itself, or on the CUDA fast path its graph capture (recorded on first use)."""
        return CapturedStep(self.train_step) if self._capture else self.train_step

    @staticmethod
    def _frozen_copy(module: ConsistencyPolicy) -> ConsistencyPolicy:
        return copy.deepcopy(module).requires_grad_(False)

    @property
    def acting_policy(self) -> ConsistencyPolicy:
        """The EMA policy when enabled, else the student: used for acting and for target actions."""
        return self.ema_policy if self.ema_policy is not None else self.policy

    # --- noise --------------------------------------------------------------------------------
    def draw_noise(self, batch_size: int) -> UpdateNoise:
        """The random draws of one update at the current step (from torch's global generator)."""
        pairs = self.objective.sample_pairs(batch_size, self.action_dim, self.step, self.device)
        return UpdateNoise(target=[], pairs=pairs, actor=[])

    # --- losses -------------------------------------------------------------------------------
    def consistency_loss(self, batch: Batch, pairs: Optional[NoisePairs] = None) -> tuple[Tensor, Metrics]:
        """L_CM on the batch's (s, a), with per-noise-level diagnostics (sigma_n < 1 and >= 1).

        `pairs` defaults to a fresh draw at the current step.
        """
        obs, actions = batch.observations, batch.actions
        if pairs is None:
            pairs = self.objective.sample_pairs(obs.shape[0], self.action_dim, self.step, self.device)
        student = self.policy(pairs.student_input(actions), pairs.sigma_next, obs)
        with torch.no_grad():
            teacher_net = self.teacher if self.teacher is not None else self.policy
            teacher = teacher_net(pairs.teacher_input(actions), pairs.sigma, obs)
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
    def train_step(self, batch: Batch, noise: UpdateNoise) -> Metrics:
        """The tensor work of one update: the actor's gradient step, then the averages.

        Reads the current learning rates and decays from tensors and changes no Python state, so that
        the fast path can record it in a CUDA graph (see acceleration.py).
        """
        loss, metrics = self._actor_loss(batch, noise)
        metrics["grad_norm/actor"] = gradient_step(loss, self.actor_optimizer, self.cfg.actor_grad_clip)
        self._update_averages()
        return metrics

    def _update_averages(self) -> None:
        """EMA teacher with mu(k) and the acting EMA (a plain copy before ema_start_step)."""
        if self.teacher is not None:
            ema_update(self.teacher, self.policy, self._teacher_decay)
        if self.ema_policy is not None:
            ema_update(self.ema_policy, self.policy, self._ema_decay)

    def _optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.actor_optimizer]

    def _schedulers(self) -> list[torch.optim.lr_scheduler.LRScheduler]:
        return [self.actor_scheduler]

    def diagnostics(self, batch: Batch) -> Metrics:
        """Costlier diagnostics, which the training loop computes at its logging steps only (none here)."""
        return {}

    def update(self, batch: Batch) -> Metrics:
        """One update: draw its noise, set this step's decays, run `train_step`, advance the schedules."""
        noise = self.draw_noise(batch.observations.shape[0])
        decay = self.objective.teacher_decay(self.step)
        self._teacher_decay.fill_(decay if decay is not None else 0.0)
        self._ema_decay.fill_(self.cfg.ema_decay if self.step >= self.cfg.ema_start_step else 0.0)
        metrics = self._train_step(batch, noise)
        metrics["lr/actor"] = torch.as_tensor(self.actor_scheduler.get_last_lr()[0])  # the rate this step used
        for scheduler in self._schedulers():
            scheduler.step()
        metrics["consistency/num_scales"] = torch.tensor(float(self.objective.num_scales(self.step)))
        self.step += 1
        return metrics

    # --- acting -------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Normalised actions in [-1, 1] for a batch of (normalised) observations.

        Low-temperature sampling (as in Decision Diffuser, Ajay et al. 2023): every noise draw of the
        sampler, x_T = tau_1 z_1 and the re-noising sqrt(tau_n^2 - sigma_min^2) z_n, uses alpha z_n with
        alpha = act_temperature. alpha < 1 trades the sample's diversity for actions nearer the
        policy's modes; alpha = 0 makes the policy deterministic.
        """
        rows = obs.shape[0] * self.cfg.act_candidates
        noise = sampling_noise((rows, self.action_dim), len(self.act_sigmas), obs.device, obs.dtype, generator)
        if self.cfg.act_temperature != 1.0:
            noise = [self.cfg.act_temperature * z for z in noise]
        return self._select_actions(obs, noise)

    def select_actions(self, obs: Tensor, noise: list[Tensor]) -> Tensor:
        """`act` given its sampling noise: z_1..z_T of shape (B * act_candidates, A)."""
        return self.acting_policy.sample(obs, self.act_sigmas, noise=noise).clamp(-1.0, 1.0)

    # --- checkpointing ------------------------------------------------------------------------
    def _modules(self) -> dict[str, Optional[Any]]:
        return {"policy": self.policy, "teacher": self.teacher, "ema_policy": self.ema_policy,
                "actor_optimizer": self.actor_optimizer, "actor_scheduler": self.actor_scheduler}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict()` (see `SavesModules`), then prepare the fast path anew."""
        super().load_state_dict(state)
        # the optimisers now hold the saved settings and new state tensors: prepare them, capture anew
        for optimizer in self._optimizers():
            set_capturable(optimizer, self._capture)
        self._train_step = self._train_step_runner()
