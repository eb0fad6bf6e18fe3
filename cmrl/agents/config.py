"""The configuration of every agent: one schema, `algo` selects the algorithm.

Shared fields (networks, learning rates, gamma, tau, the critic ensemble) mean the same for every
agent; each baseline's own hyperparameters live in its section (`agent.td3_bc`, `agent.iql`,
`agent.rebrac`), Diffusion-BC's in `agent.diffusion`, and the fields marked "consistency agents" are
read by those only.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

from cmrl.consistency import ICT, ConsistencyConfig, DiffusionConfig
from cmrl.errors import ConfigError
from cmrl.nn import ACTIVATIONS

ALGOS = ("consistency_ac", "consistency_bc", "consistency_fql", "diffusion_bc", "diffusion_ql", "td3_bc", "iql",
         "rebrac")
Q_RANKED = ("consistency_ac", "consistency_fql", "diffusion_ql")  # the agents with a critic that ranks act_candidates
CRITIC_TARGETS = ("td", "td_return_bound")


@dataclass
class TD3Config:
    """The TD3 machinery that TD3+BC and ReBRAC share (Fujimoto et al. 2018; CORL's defaults)."""

    policy_noise: float = 0.2  # std of the Gaussian noise added to target actions (target policy smoothing)
    noise_clip: float = 0.5  # the smoothing noise is clipped to [-noise_clip, noise_clip]
    policy_freq: int = 2  # the actor and the target networks are updated every policy_freq critic updates

    def validate(self, prefix: str) -> None:
        for key in ("policy_noise", "noise_clip"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{prefix}.{key} must be >= 0, got {getattr(self, key)}")
        if self.policy_freq < 1:
            raise ConfigError(f"{prefix}.policy_freq must be >= 1, got {self.policy_freq}")


@dataclass
class TD3BCConfig(TD3Config):
    """TD3+BC (Fujimoto & Gu 2021)."""

    alpha: float = 2.5  # lambda = alpha / mean|Q(s, pi(s))|, the weight of the Q term against the BC term

    def validate(self, prefix: str) -> None:
        super().validate(prefix)
        if self.alpha < 0:
            raise ConfigError(f"{prefix}.alpha must be >= 0, got {self.alpha}")


@dataclass
class ReBRACConfig(TD3Config):
    """ReBRAC (Tarasov et al. 2023): CORL's defaults (the paper tunes both coefficients per dataset)."""

    actor_bc_coef: float = 1.0  # beta_1: weight of ||pi(s) - a||^2 in the actor loss
    critic_bc_coef: float = 1.0  # beta_2: weight of ||a' - a'_data||^2 subtracted from Q' in the critic target

    def validate(self, prefix: str) -> None:
        super().validate(prefix)
        for key in ("actor_bc_coef", "critic_bc_coef"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{prefix}.{key} must be >= 0, got {getattr(self, key)}")


@dataclass
class IQLConfig:
    """IQL (Kostrikov et al. 2022; CORL's defaults for the gym-MuJoCo tasks)."""

    expectile: float = 0.7  # tau of the expectile loss of V: 0.5 fits the mean, -> 1 the max over the data's actions
    temperature: float = 3.0  # beta of the advantage weights exp(beta A)
    max_weight: float = 100.0  # exp(beta A) is clipped to this (CORL's EXP_ADV_MAX)
    # a deterministic actor (weighted squared error) instead of the Gaussian (weighted log-likelihood)
    deterministic: bool = False

    def validate(self, prefix: str) -> None:
        if not 0.0 < self.expectile < 1.0:
            raise ConfigError(f"{prefix}.expectile must be in (0, 1), got {self.expectile}")
        for key in ("temperature", "max_weight"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{prefix}.{key} must be > 0, got {getattr(self, key)}")


@dataclass
class FQLConfig:
    """Consistency-FQL: flow Q-learning's one-step policy (Park, Li & Levine 2025) on a consistency policy."""

    # weight of the distillation term ||mu(s, z) - f_theta(sigma_max z, sigma_max | s)||^2 (mean over the
    # action's coordinates) against eta times the normalised Q term: larger stays nearer the behaviour policy
    alpha: float = 1.0

    def validate(self, prefix: str) -> None:
        if self.alpha < 0:
            raise ConfigError(f"{prefix}.alpha must be >= 0, got {self.alpha}")


@dataclass
class AgentConfig:
    # consistency_ac (consistency loss + eta * Q loss) | consistency_bc (consistency loss only) |
    # consistency_fql (consistency_bc's policy + a one-step policy distilled from it and trained on Q) |
    # diffusion_bc (EDM diffusion policy, denoising loss; the teacher of objective=cd) |
    # diffusion_ql (diffusion_bc's policy + eta * Q loss through the sampler, consistency_ac's critic) |
    # td3_bc | iql | rebrac (the baselines, cmrl/agents/<algo>.py)
    algo: str = "consistency_ac"
    # the CT/iCT/CD objective (presets: agent/consistency=ict|ct|cd; consistency agents)
    consistency: ConsistencyConfig = field(default_factory=lambda: replace(ICT))
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)  # diffusion agents: EDM preconditioning, noise
    td3_bc: TD3BCConfig = field(default_factory=TD3BCConfig)  # TD3+BC's own hyperparameters (algo=td3_bc)
    iql: IQLConfig = field(default_factory=IQLConfig)  # IQL's own hyperparameters (algo=iql)
    rebrac: ReBRACConfig = field(default_factory=ReBRACConfig)  # ReBRAC's own hyperparameters (algo=rebrac)
    fql: FQLConfig = field(default_factory=FQLConfig)  # Consistency-FQL's own hyperparameters (algo=consistency_fql)
    hidden_dims: list[int] = field(default_factory=lambda: [256, 256, 256])  # actor MLP widths
    critic_hidden_dims: list[int] = field(default_factory=lambda: [256, 256, 256])  # critic (and IQL's V) MLP widths
    activation: str = "mish"  # hidden activation of every network: mish | relu (the baselines' papers)
    critic_layer_norm: bool = False  # LayerNorm before each hidden activation of the critics (bounded Q extrapolation)
    time_embed_dim: int = 16  # sinusoidal features of c_noise(sigma) fed to the actor (consistency, diffusion agents)
    # tanh-bounded consistency function: actions stay in [-1, 1], boundary condition exact (consistency agents;
    # the baselines' actors always end in tanh)
    bounded_actions: bool = True
    # Adam learning rate of the policy, cosine-decayed per step (short runs imitate better with 1e-3:
    # see experiment=bench_d4rl_style)
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4  # Adam learning rate of the critics (and of IQL's V)
    # The schedule (warm-up, then cosine) drives every optimiser of the consistency agents and the actor's
    # of the baselines, whose critics keep constant rates as in their papers.
    lr_warmup_steps: int = 0  # linear warm-up steps before the schedule
    # final learning rate of the cosine schedule, as a fraction of the initial one; 1 = constant rates
    min_lr_ratio: float = 0.0
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    actor_grad_clip: float = 10.0  # max global gradient norm of the actor; <= 0 disables clipping
    critic_grad_clip: float = 10.0  # max global gradient norm of the critics; <= 0 disables clipping
    discount: float = 0.99  # gamma
    tau: float = 0.005  # Polyak rate of the target networks
    ensemble_size: int = 2  # K critics; targets take the min over members (clipped double Q)
    # weight of the normalised Q loss in the actor loss (consistency_ac, consistency_fql, diffusion_ql)
    eta: float = 1.0
    # td: r + gamma min Q'(s', a' ~ pi) | td_return_bound: max(td, G_t), G_t the data's return-to-go
    # (consistency_ac, consistency_fql, diffusion_ql; the baselines keep their papers' targets)
    critic_target: str = "td"
    # target = max over backup_samples actions of min_k Q'_k (Diffusion-QL's; the Q-critic agents above)
    max_q_backup: bool = False
    backup_samples: int = 10  # actions sampled per next state for max_q_backup
    # EMA of the policy used for acting and for target actions; 0 = use the student (consistency agents)
    ema_decay: float = 0.995
    ema_start_step: int = 1000  # before this step the EMA policy is a copy of the student
    # sampling steps for target actions and the actor's Q loss (consistency agents; diffusion_ql: Heun steps)
    train_sampling_steps: int = 2
    # sampling steps when acting (consistency agents; diffusion agents: agent.diffusion.sampling_steps)
    act_sampling_steps: int = 2
    train_sampling_sigmas: Optional[list[float]] = None  # explicit tau_1 > ... for training sampling; None = Karras
    act_sampling_sigmas: Optional[list[float]] = None  # explicit tau_1 > ... for acting; None = Karras
    # N > 1: sample N actions per state and take the one with the highest min-Q (consistency_ac, diffusion_ql)
    act_candidates: int = 1
    # acting noise z -> temperature * z; < 1 samples nearer the modes (low-temperature sampling; consistency
    # agents: the baselines act deterministically)
    act_temperature: float = 1.0
    compile: bool = False  # torch.compile the losses (fast path; ~1 min cold compile); every agent

    def validate(self, prefix: str = "agent") -> None:
        """Raise ConfigError naming the offending key for any value outside its domain."""
        if self.algo not in ALGOS:
            raise ConfigError(f"{prefix}.algo must be one of {', '.join(ALGOS)}; got {self.algo!r}")
        if self.critic_target not in CRITIC_TARGETS:
            raise ConfigError(f"{prefix}.critic_target must be one of {', '.join(CRITIC_TARGETS)}; "
                              f"got {self.critic_target!r}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"{prefix}.activation must be one of {', '.join(ACTIVATIONS)}; "
                              f"got {self.activation!r}")
        self.consistency.validate(f"{prefix}.consistency")
        self.diffusion.validate(f"{prefix}.diffusion")
        for section in ("td3_bc", "iql", "rebrac", "fql"):
            getattr(self, section).validate(f"{prefix}.{section}")
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
        if self.algo not in Q_RANKED and self.act_candidates > 1:
            why = (f"{self.algo} has no critic" if self.algo in ("consistency_bc", "diffusion_bc")
                   else f"{self.algo} acts deterministically")
            raise ConfigError(f"{prefix}.act_candidates > 1 picks actions by Q, but {why}; "
                             f"set act_candidates=1 or use one of {', '.join(Q_RANKED)}")
        if self.algo.startswith("diffusion_"):
            grids = {"train_sampling_sigmas": "train_sampling_steps", "act_sampling_sigmas": "diffusion.sampling_steps"}
            for key, grid in grids.items():
                if getattr(self, key) is not None:
                    raise ConfigError(f"{prefix}.{key} is for the consistency sampler; {self.algo} samples on the "
                                      f"Karras grid of {prefix}.{grid} and {prefix}.diffusion.sigma_min/max")
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
