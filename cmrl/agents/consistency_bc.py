"""Consistency-BC: behaviour cloning with a consistency policy (the consistency loss only).

Per gradient step k, with (s, a) from the dataset and the CT pair (sigma_n, sigma_{n+1}, z):

    L_CM(theta) = E[ lambda(sigma_n) d( f_theta(a + sigma_{n+1} z, sigma_{n+1} | s),
                                        f_theta^-(a + sigma_n z, sigma_n | s) ) ]

then theta^- <- mu(k) theta^- + (1 - mu(k)) theta for an EMA teacher, and the acting policy
theta_ema <- decay theta_ema + (1 - decay) theta. Consistency-AC (consistency_ac.py) builds on this.
"""
from __future__ import annotations

import copy
from typing import Any, Optional

import torch
from torch import Tensor

from cmrl.consistency import ConsistencyTraining, default_sampling_sigmas
from cmrl.data.store import Batch
from cmrl.nn import ema_update
from cmrl.policies import ConsistencyPolicy

from .config import AgentConfig
from .optim import clip_gradients, make_optimizer, make_scheduler

Metrics = dict[str, Tensor]
"""Detached 0-dim tensors; the training loop reads them (one device sync) only when it logs."""

SATURATION = 0.99
"""|a| above this counts as a saturated action coordinate in the diagnostics."""


class ConsistencyBC:
    """update(batch) -> metrics, act(obs) -> actions in [-1, 1], state_dict() / load_state_dict()."""

    def __init__(self, cfg: AgentConfig, obs_dim: int, action_dim: int, total_steps: int,
                 device: torch.device | str = "cpu"):
        cfg.validate()
        self.cfg = cfg
        self.device = torch.device(device)
        self.obs_dim, self.action_dim, self.total_steps = obs_dim, action_dim, total_steps
        self.step = 0
        c = cfg.consistency
        self.objective = ConsistencyTraining(c, total_steps, action_dim)
        self.policy = ConsistencyPolicy(obs_dim, action_dim, cfg.hidden_dims, cfg.time_embed_dim, c,
                                        cfg.bounded_actions).to(self.device)
        self.teacher = self._frozen_copy(self.policy) if c.teacher == "ema" else None
        self.ema_policy = self._frozen_copy(self.policy) if cfg.ema_decay > 0 else None
        self.actor_optimizer = make_optimizer(self.policy.parameters(), cfg.actor_lr, cfg.weight_decay)
        self.actor_scheduler = make_scheduler(self.actor_optimizer, total_steps, cfg.lr_schedule,
                                              cfg.lr_warmup_steps, cfg.min_lr_ratio)
        self.train_sigmas = cfg.train_sampling_sigmas or default_sampling_sigmas(
            cfg.train_sampling_steps, c.sigma_min, c.sigma_max, c.rho)
        self.act_sigmas = cfg.act_sampling_sigmas or default_sampling_sigmas(
            cfg.act_sampling_steps, c.sigma_min, c.sigma_max, c.rho)

    @staticmethod
    def _frozen_copy(module: torch.nn.Module) -> torch.nn.Module:
        return copy.deepcopy(module).requires_grad_(False)

    @property
    def acting_policy(self) -> ConsistencyPolicy:
        """The EMA policy when enabled, else the student: used for acting and for target actions."""
        return self.ema_policy if self.ema_policy is not None else self.policy

    # --- losses -------------------------------------------------------------------------------
    def consistency_loss(self, batch: Batch) -> tuple[Tensor, Metrics]:
        """L_CM on the batch's (s, a), with per-noise-level diagnostics (sigma_n < 1 and >= 1)."""
        obs, actions = batch.observations, batch.actions
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

    # --- steps --------------------------------------------------------------------------------
    def _actor_step(self, loss: Tensor, metrics: Metrics) -> None:
        self.actor_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        metrics["grad_norm/actor"] = clip_gradients(list(self.policy.parameters()), self.cfg.actor_grad_clip).detach()
        self.actor_optimizer.step()
        metrics["lr/actor"] = torch.tensor(self.actor_scheduler.get_last_lr()[0])
        self.actor_scheduler.step()

    def _update_averages(self) -> None:
        """EMA teacher with mu(k) and the acting EMA (a plain copy before ema_start_step)."""
        decay = self.objective.teacher_decay(self.step)
        if self.teacher is not None and decay is not None:
            ema_update(self.teacher, self.policy, decay)
        if self.ema_policy is not None:
            ema_update(self.ema_policy, self.policy, self.cfg.ema_decay if self.step >= self.cfg.ema_start_step else 0.0)

    def update(self, batch: Batch) -> Metrics:
        """One gradient step of the consistency loss."""
        loss, metrics = self.consistency_loss(batch)
        self._actor_step(loss, metrics)
        self._update_averages()
        metrics["consistency/num_scales"] = torch.tensor(float(self.objective.num_scales(self.step)))
        self.step += 1
        return metrics

    # --- acting -------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Normalised actions in [-1, 1] for a batch of (normalised) observations."""
        return self.acting_policy.sample(obs, self.act_sigmas, generator).clamp(-1.0, 1.0)

    # --- checkpointing ------------------------------------------------------------------------
    def _modules(self) -> dict[str, Optional[Any]]:
        return {"policy": self.policy, "teacher": self.teacher, "ema_policy": self.ema_policy,
                "actor_optimizer": self.actor_optimizer, "actor_scheduler": self.actor_scheduler}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: networks, averages, optimisers, schedulers and the step."""
        state: dict[str, Any] = {name: m.state_dict() for name, m in self._modules().items() if m is not None}
        state["step"] = self.step
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict()`; a missing or mismatched part raises ValueError naming it."""
        for name, module in self._modules().items():
            if module is None:
                continue
            if name not in state:
                raise ValueError(f"the agent state has no {name!r}: it was saved by a differently configured agent")
            try:
                module.load_state_dict(state[name])
            except (RuntimeError, KeyError, ValueError) as err:
                raise ValueError(f"cannot load {name!r} into this agent (different architecture or "
                                 f"configuration?): {err}") from err
        self.step = int(state["step"])
