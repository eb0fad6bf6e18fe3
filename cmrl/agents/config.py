"""The configuration of the consistency agents (one schema for Consistency-BC and Consistency-AC)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

from cmrl.consistency import ICT, ConsistencyConfig

ALGOS = ("consistency_ac", "consistency_bc")
LR_SCHEDULES = ("cosine", "constant")
CRITIC_TARGETS = ("td", "td_return_bound", "return")
Q_NORMALIZERS = ("value", "advantage")
ACTOR_Q_REDUCTIONS = ("mean", "min")


@dataclass
class AgentConfig:
    algo: str = "consistency_ac"  # consistency_ac (consistency loss + eta * Q loss) | consistency_bc (consistency loss only)
    consistency: ConsistencyConfig = field(default_factory=lambda: replace(ICT))  # the CT/iCT objective (presets: agent/consistency=ict|ct)
    hidden_dims: list[int] = field(default_factory=lambda: [256, 256, 256])  # actor MLP widths (Mish)
    critic_hidden_dims: list[int] = field(default_factory=lambda: [256, 256, 256])  # critic MLP widths (Mish)
    critic_layer_norm: bool = False  # LayerNorm before each hidden Mish of the critics (bounded Q extrapolation)
    time_embed_dim: int = 16  # sinusoidal features of c_noise(sigma) fed to the actor
    bounded_actions: bool = True  # tanh-bounded consistency function: actions stay in [-1, 1], boundary condition exact
    actor_lr: float = 3e-4  # Adam learning rate of the policy (short runs imitate better with 1e-3: see bench_d4rl_style)
    critic_lr: float = 3e-4  # Adam learning rate of the critics
    lr_schedule: str = "cosine"  # cosine (decays per step to min_lr_ratio * lr over the run) | constant
    lr_warmup_steps: int = 0  # linear warm-up steps before the schedule
    min_lr_ratio: float = 0.0  # final learning rate as a fraction of the initial one (cosine)
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    actor_grad_clip: float = 10.0  # max global gradient norm of the actor; <= 0 disables clipping
    critic_grad_clip: float = 10.0  # max global gradient norm of the critics; <= 0 disables clipping
    discount: float = 0.99  # gamma
    n_step: int = 1  # n-step TD targets within the episode: sum_{k<n} gamma^k r_{t+k} + gamma^n Q'(s_{t+n}, a')
    tau: float = 0.005  # Polyak rate of the target critics
    ensemble_size: int = 2  # K critics; targets take the min over members (clipped double Q)
    eta: float = 1.0  # weight of the normalised Q loss in the actor loss (consistency_ac)
    actor_q: str = "mean"  # the K critics' Q in the actor's Q term: mean (Diffusion-QL) | min (pessimistic, as SAC-N/EDAC)
    q_normalizer: str = "value"  # value: -Q(s, a_pi) / mean|Q| (Diffusion-QL) | advantage: -A / mean|A|, A = Q(s, a_pi) - Q(s, a_data)
    advantage_beta: float = 0.0  # beta > 0 weights each (s, a) of L_CM by exp(beta * its advantage's rank in [-1, 1]), mean 1 (consistency_ac)
    critic_return_scaling: bool = False  # Q = mean(G) + std(G) * network, with the data's returns-to-go G: the critic starts at the return's scale (consistency_ac)
    critic_target: str = "td"  # td: r + gamma min Q'(s', a' ~ pi) | td_return_bound: max(td, G_t) | return: G_t (Q of the data's policy)
    max_q_backup: bool = False  # target = max over backup_samples actions of min_k Q'_k (Diffusion-QL)
    backup_samples: int = 10  # actions sampled per next state for max_q_backup
    ema_decay: float = 0.995  # EMA of the policy used for acting and for target actions; 0 = use the student
    ema_start_step: int = 1000  # before this step the EMA policy is a copy of the student
    train_sampling_steps: int = 2  # sampling steps for target actions and the actor's Q loss
    act_sampling_steps: int = 2  # sampling steps when acting
    train_sampling_sigmas: Optional[list[float]] = None  # explicit tau_1 > ... for training sampling; None = Karras
    act_sampling_sigmas: Optional[list[float]] = None  # explicit tau_1 > ... for acting; None = Karras
    act_candidates: int = 1  # N > 1: sample N actions per state and take the one with the highest min-Q
    act_temperature: float = 1.0  # acting noise z -> temperature * z; < 1 samples nearer the modes (low-temperature sampling)
    compile: bool = False  # torch.compile the update (fast path; ~1 min cold compile)

    def validate(self, prefix: str = "agent") -> None:
        """Raise ValueError naming the offending key for any value outside its domain."""
        if self.algo not in ALGOS:
            raise ValueError(f"{prefix}.algo must be one of {', '.join(ALGOS)}; got {self.algo!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"{prefix}.lr_schedule must be one of {', '.join(LR_SCHEDULES)}; got {self.lr_schedule!r}")
        if self.critic_target not in CRITIC_TARGETS:
            raise ValueError(f"{prefix}.critic_target must be one of {', '.join(CRITIC_TARGETS)}; "
                             f"got {self.critic_target!r}")
        if self.q_normalizer not in Q_NORMALIZERS:
            raise ValueError(f"{prefix}.q_normalizer must be one of {', '.join(Q_NORMALIZERS)}; "
                             f"got {self.q_normalizer!r}")
        if self.actor_q not in ACTOR_Q_REDUCTIONS:
            raise ValueError(f"{prefix}.actor_q must be one of {', '.join(ACTOR_Q_REDUCTIONS)}; "
                             f"got {self.actor_q!r}")
        self.consistency.validate(f"{prefix}.consistency")
        for key in ("hidden_dims", "critic_hidden_dims"):
            dims = getattr(self, key)
            if not dims or any(d < 1 for d in dims):
                raise ValueError(f"{prefix}.{key} must be a non-empty list of positive widths, got {dims}")
        positive = {"actor_lr": self.actor_lr, "critic_lr": self.critic_lr, "ensemble_size": self.ensemble_size,
                    "backup_samples": self.backup_samples, "train_sampling_steps": self.train_sampling_steps,
                    "act_sampling_steps": self.act_sampling_steps, "act_candidates": self.act_candidates,
                    "n_step": self.n_step}
        for key, value in positive.items():
            if value <= 0:
                raise ValueError(f"{prefix}.{key} must be > 0, got {value}")
        for key, value in {"discount": self.discount, "min_lr_ratio": self.min_lr_ratio}.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{prefix}.{key} must be in [0, 1], got {value}")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"{prefix}.tau must be in (0, 1] (0 would freeze the target critics), got {self.tau}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"{prefix}.ema_decay must be in [0, 1) (1 would freeze the acting policy; "
                             f"0 disables the EMA), got {self.ema_decay}")
        for key in ("eta", "advantage_beta", "weight_decay", "lr_warmup_steps", "ema_start_step", "act_temperature"):
            if getattr(self, key) < 0:
                raise ValueError(f"{prefix}.{key} must be >= 0, got {getattr(self, key)}")
        if self.time_embed_dim < 4 or self.time_embed_dim % 2:
            raise ValueError(f"{prefix}.time_embed_dim must be even and >= 4, got {self.time_embed_dim}")
        if self.algo == "consistency_bc" and self.act_candidates > 1:
            raise ValueError(f"{prefix}.act_candidates > 1 picks actions by Q, but consistency_bc has no critic; "
                             "set act_candidates=1 or use agent=consistency_ac")
        for key, steps in (("train_sampling_sigmas", self.train_sampling_steps),
                           ("act_sampling_sigmas", self.act_sampling_steps)):
            sigmas = getattr(self, key)
            if sigmas is None:
                continue
            if len(sigmas) != steps or any(a <= b for a, b in zip(sigmas, sigmas[1:])):
                raise ValueError(f"{prefix}.{key} must hold {steps} strictly decreasing sigmas "
                                 f"(one per sampling step), got {sigmas}")
            if sigmas[-1] <= self.consistency.sigma_min or sigmas[0] > self.consistency.sigma_max:
                raise ValueError(f"{prefix}.{key} must lie in (sigma_min, sigma_max], got {sigmas}")
