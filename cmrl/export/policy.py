"""A trained policy as one self-contained module: raw observation in, environment action out.

`ExportedPolicy` holds copies of the acting networks and the fitted constants, and computes

    s = (o - mu_obs) / sigma_obs                                      observation normalisation
    z_n <- alpha z_n                                                  temperature alpha (act_temperature)
    a <- f(tau_1 z_1, tau_1 | s)                                      Algorithm 1 over the acting sigmas
    a <- f(a + sqrt(tau_n^2 - sigma_min^2) z_n, tau_n | s),  n = 2..T
    a <- clamp(a, -1, 1)
    a <- argmax over the N candidates of min_k Q_k(s, a)              Consistency-AC with act_candidates N > 1
    u = low + (a + 1) (high - low) / 2                                the environment's action bounds

with f_theta(x, sigma | s) = c_skip(sigma) x + (1 - c_skip(sigma)) tanh(F_theta(c_in(sigma) x, c_noise(sigma), s))
(bounded policies; see cmrl.consistency.parameterization). It is what `load_policy` + `make_act_fn`
compute, written so that torch.jit.script compiles it and torch.onnx exports it: the file written by
cmrl.export.formats then needs neither cmrl nor this source to run.

The noise z has shape (T, B * N, A): z[n] is the draw that step n + 1 of the sampler consumes, and
the rows of candidate j of state b are b * N + j (the library's order, `repeat_interleave`).
"""
from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Optional

import torch
from torch import Tensor, nn

from cmrl.agents import Agent, ConsistencyAC, ConsistencyBC
from cmrl.consistency import consistency_output, network_inputs
from cmrl.critics import QEnsemble
from cmrl.data.transforms import DataTransforms
from cmrl.errors import ConfigError
from cmrl.policies import ConsistencyPolicy


class ExportedPolicy(nn.Module):
    """policy(obs) -> actions: (B, obs_dim) raw observations -> (B, action_dim) environment actions.

    `noise` (T, B * N, A), standard normal, reproduces a call exactly; without it the module draws
    it with torch.randn (seed with torch.manual_seed). The temperature is applied inside.
    """

    if TYPE_CHECKING:  # the buffers' types, for mypy only (TorchScript infers them from the values)
        freqs: Tensor
        obs_mean: Tensor
        obs_std: Tensor
        action_low: Tensor
        action_high: Tensor

    def __init__(self, policy: ConsistencyPolicy, sigmas: list[float], temperature: float,
                 transforms: DataTransforms, candidates: int = 1):
        super().__init__()
        if not sigmas:
            raise ValueError("an exported policy needs at least one sampling sigma")
        self.obs_dim, self.action_dim, self.candidates = policy.obs_dim, policy.action_dim, candidates
        self.sigma_min, self.sigma_data, self.bounded = policy.sigma_min, policy.sigma_data, policy.bounded
        self.sigmas = [float(tau) for tau in sigmas]  # tau_1 > ... > tau_T (TorchScript infers List[float])
        # the re-noising scale sqrt(tau_n^2 - sigma_min^2) of step n (unused for the first)
        self.renoise = [0.0] + [math.sqrt(tau ** 2 - self.sigma_min ** 2) for tau in self.sigmas[1:]]
        self.temperature = float(temperature)
        self.net = copy.deepcopy(policy.net).requires_grad_(False)
        self.register_buffer("freqs", torch.as_tensor(policy.embed.freqs).detach().clone())
        for name in ("obs_mean", "obs_std", "action_low", "action_high"):
            self.register_buffer(name, torch.as_tensor(getattr(transforms, name), dtype=torch.float32).clone())

    @property
    def noise_steps(self) -> int:
        """T, the number of noise draws (sampling steps)."""
        return len(self.sigmas)

    def forward(self, obs: Tensor, noise: Optional[Tensor] = None) -> Tensor:
        """Environment actions (B, A) for raw observations (B, S); `noise` (T, B * N, A) or drawn here."""
        obs = obs.to(self.obs_mean.dtype)
        if noise is None:
            noise = torch.randn([len(self.sigmas), obs.shape[0] * self.candidates, self.action_dim],
                                dtype=obs.dtype, device=obs.device)
        return self.act(obs, noise.to(obs.dtype))

    def act(self, obs: Tensor, noise: Tensor) -> Tensor:
        """`forward` with the noise given (the function the ONNX graph holds)."""
        s = (obs - self.obs_mean) / self.obs_std
        unit = self.select(s, noise * self.temperature).clamp(-1.0, 1.0)
        return self.action_low + 0.5 * (unit + 1.0) * (self.action_high - self.action_low)

    def select(self, s: Tensor, z: Tensor) -> Tensor:
        """One sampled action per state (Consistency-AC's ranking overrides this)."""
        return self.sample(s, z)

    def sample(self, s: Tensor, z: Tensor) -> Tensor:
        """Algorithm 1 over the acting sigmas for states s (R, S) and scaled noise z (T, R, A)."""
        x = self.consistency_fn(self.sigmas[0] * z[0], self.sigmas[0], s)
        for n in range(1, len(self.sigmas)):
            x = self.consistency_fn(x + self.renoise[n] * z[n], self.sigmas[n], s)
        return x.clamp(-1.0, 1.0) if self.bounded else x

    def consistency_fn(self, x: Tensor, tau: float, s: Tensor) -> Tensor:
        """f_theta(x, tau | s), as ConsistencyPolicy.forward computes it."""
        sigma = torch.full([x.shape[0], 1], tau, dtype=x.dtype, device=x.device)
        x_in, t = network_inputs(x, sigma, self.sigma_data)
        arg = t * self.freqs
        out = self.net(torch.cat([x_in, arg.sin(), arg.cos(), s], dim=-1))
        return consistency_output(x, sigma, out, self.sigma_min, self.sigma_data, self.bounded)


class RankedExportedPolicy(ExportedPolicy):
    """`ExportedPolicy` that samples N candidates per state and keeps the one with the highest min_k Q_k."""

    def __init__(self, policy: ConsistencyPolicy, sigmas: list[float], temperature: float,
                 transforms: DataTransforms, candidates: int, critic: QEnsemble):
        super().__init__(policy, sigmas, temperature, transforms, candidates)
        if candidates < 2:
            raise ValueError(f"a ranked policy needs at least 2 candidates, got {candidates}")
        self.ensemble_size = critic.ensemble_size
        self.critic = copy.deepcopy(critic.net).requires_grad_(False)

    def select(self, s: Tensor, z: Tensor) -> Tensor:
        n = self.candidates
        repeated = s.repeat_interleave(n, dim=0)
        actions = self.sample(repeated, z).clamp(-1.0, 1.0)
        x = torch.cat([repeated, actions], dim=-1)
        q = self.critic(x.unsqueeze(0).expand(self.ensemble_size, -1, -1)).squeeze(-1)  # (K, B * N)
        best = q.min(0).values.view(-1, n).argmax(1)  # (B,)
        index = best.view(-1, 1, 1).expand(-1, 1, self.action_dim)
        return actions.view(-1, n, self.action_dim).gather(1, index).squeeze(1)


def exported_policy(agent: Agent, transforms: DataTransforms) -> ExportedPolicy:
    """The acting chain of `agent` (its acting settings as configured) around `transforms`."""
    # exactly these two: a subclass may act otherwise (ConsistencyFQL acts with its one-step policy)
    if not isinstance(agent, ConsistencyBC) or type(agent) not in (ConsistencyBC, ConsistencyAC):
        raise ConfigError(f"cannot export a {type(agent).__name__}: only consistency policies "
                          "(consistency_bc, consistency_ac) can be exported")
    cfg = agent.cfg
    if cfg.act_candidates > 1:
        if not isinstance(agent, ConsistencyAC):
            raise ConfigError("act_candidates > 1 ranks candidates by Q, but this agent has no critic")
        return RankedExportedPolicy(agent.acting_policy, list(agent.act_sigmas), cfg.act_temperature, transforms,
                                    cfg.act_candidates, agent.critic)
    return ExportedPolicy(agent.acting_policy, list(agent.act_sigmas), cfg.act_temperature, transforms)
