"""The configuration of the agents (one schema for Consistency-BC, Consistency-AC and Diffusion-BC)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

from cmrl.consistency import ICT, ConsistencyConfig, DiffusionConfig
from cmrl.errors import ConfigError

ALGOS = ("consistency_ac", "consistency_bc", "diffusion_bc")
CRITIC_TARGETS = ("td", "td_return_bound")


@dataclass
class AgentConfig:
    # consistency_ac (consistency loss + eta * Q loss) | consistency_bc (consistency loss only) |
    # diffusion_bc (EDM diffusion policy, denoising loss; the teacher of objective=cd)
    algo: str = "consistency_ac"
    # the CT/iCT/CD objective (presets: agent/consistency=ict|ct|cd)
    consistency: ConsistencyConfig = field(default_factory=lambda: replace(ICT))
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)  # diffusion_bc: EDM preconditioning and noise
    hidden_dims: list[int] = field(default_factory=lambda: [256, 256, 256])  # actor MLP widths (Mish)
    critic_hidden_dims: list[int] = field(default_factory=lambda: [256, 256, 256])  # critic MLP widths (Mish)
    critic_layer_norm: bool = False  # LayerNorm before each hidden Mish of the critics (bounded Q extrapolation)
    time_embed_dim: int = 16  # sinusoidal features of c_noise(sigma) fed to the actor
    bounded_actions: bool = True  # tanh-bounded consistency function: actions stay in [-1, 1], boundary condition exact
    # Adam learning rate of the policy, cosine-decayed per step (short runs imitate better with 1e-3:
    # see experiment=bench_d4rl_style)
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4  # Adam learning rate of the critics
    lr_warmup_steps: int = 0  # linear warm-up steps before the schedule
    min_lr_ratio: float = 0.0  # final learning rate of the cosine schedule, as a fraction of the initial one
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    actor_grad_clip: float = 10.0  # max global gradient norm of the actor; <= 0 disables clipping
    critic_grad_clip: float = 10.0  # max global gradient norm of the critics; <= 0 disables clipping
    discount: float = 0.99  # gamma
    tau: float = 0.005  # Polyak rate of the target critics
    ensemble_size: int = 2  # K critics; targets take the min over members (clipped double Q)
    eta: float = 1.0  # weight of the normalised Q loss in the actor loss (consistency_ac)
    # td: r + gamma min Q'(s', a' ~ pi) | td_return_bound: max(td, G_t), G_t the data's return-to-go
    critic_target: str = "td"
    max_q_backup: bool = False  # target = max over backup_samples actions of min_k Q'_k (Diffusion-QL)
    backup_samples: int = 10  # actions sampled per next state for max_q_backup
    ema_decay: float = 0.995  # EMA of the policy used for acting and for target actions; 0 = use the student
    ema_start_step: int = 1000  # before this step the EMA policy is a copy of the student
    train_sampling_steps: int = 2  # sampling steps for target actions and the actor's Q loss
    act_sampling_steps: int = 2  # sampling steps when acting (diffusion_bc: agent.diffusion.sampling_steps)
    train_sampling_sigmas: Optional[list[float]] = None  # explicit tau_1 > ... for training sampling; None = Karras
    act_sampling_sigmas: Optional[list[float]] = None  # explicit tau_1 > ... for acting; None = Karras
    act_candidates: int = 1  # N > 1: sample N actions per state and take the one with the highest min-Q
    # acting noise z -> temperature * z; < 1 samples nearer the modes (low-temperature sampling)
    act_temperature: float = 1.0
    compile: bool = False  # torch.compile the update (fast path; ~1 min cold compile)

    def validate(self, prefix: str = "agent") -> None:
        """Raise ConfigError naming the offending key for any value outside its domain."""
        if self.algo not in ALGOS:
            raise ConfigError(f"{prefix}.algo must be one of {', '.join(ALGOS)}; got {self.algo!r}")
        if self.critic_target not in CRITIC_TARGETS:
            raise ConfigError(f"{prefix}.critic_target must be one of {', '.join(CRITIC_TARGETS)}; "
                              f"got {self.critic_target!r}")
        self.consistency.validate(f"{prefix}.consistency")
        self.diffusion.validate(f"{prefix}.diffusion")
        for key in ("hidden_dims", "critic_hidden_dims"):
            dims = getattr(self, key)
            if not dims or any(d < 1 for d in dims):
                raise ConfigError(f"{prefix}.{key} must be a non-empty list of positive widths, got {dims}")
        positive = {"actor_lr": self.actor_lr, "critic_lr": self.critic_lr, "ensemble_size": self.ensemble_size,
                    "backup_samples": self.backup_samples, "train_sampling_steps": self.train_sampling_steps,
                    "act_sampling_steps": self.act_sampling_steps, "act_candidates": self.act_candidates}
        for key, value in positive.items():
            if value <= 0:
                raise ConfigError(f"{prefix}.{key} must be > 0, got {value}")
        for key, value in {"discount": self.discount, "min_lr_ratio": self.min_lr_ratio}.items():
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{prefix}.{key} must be in [0, 1], got {value}")
        if not 0.0 < self.tau <= 1.0:
            raise ConfigError(f"{prefix}.tau must be in (0, 1] (0 would freeze the target critics), got {self.tau}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"{prefix}.ema_decay must be in [0, 1) (1 would freeze the acting policy; "
                             f"0 disables the EMA), got {self.ema_decay}")
        for key in ("eta", "weight_decay", "lr_warmup_steps", "ema_start_step", "act_temperature"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{prefix}.{key} must be >= 0, got {getattr(self, key)}")
        if self.time_embed_dim < 4 or self.time_embed_dim % 2:
            raise ConfigError(f"{prefix}.time_embed_dim must be even and >= 4, got {self.time_embed_dim}")
        if self.algo in ("consistency_bc", "diffusion_bc") and self.act_candidates > 1:
            raise ConfigError(f"{prefix}.act_candidates > 1 picks actions by Q, but {self.algo} has no critic; "
                             "set act_candidates=1 or use agent=consistency_ac")
        if self.algo == "diffusion_bc" and self.act_sampling_sigmas is not None:
            raise ConfigError(f"{prefix}.act_sampling_sigmas is for the consistency sampler; diffusion_bc samples on "
                              f"the Karras grid of {prefix}.diffusion.sampling_steps and sigma_min/max")
        for key, steps in (("train_sampling_sigmas", self.train_sampling_steps),
                           ("act_sampling_sigmas", self.act_sampling_steps)):
            sigmas = getattr(self, key)
            if sigmas is None:
                continue
            if len(sigmas) != steps or any(a <= b for a, b in zip(sigmas, sigmas[1:])):
                raise ConfigError(f"{prefix}.{key} must hold {steps} strictly decreasing sigmas "
                                 f"(one per sampling step), got {sigmas}")
            if sigmas[-1] <= self.consistency.sigma_min or sigmas[0] > self.consistency.sigma_max:
                raise ConfigError(f"{prefix}.{key} must lie in (sigma_min, sigma_max], got {sigmas}")
