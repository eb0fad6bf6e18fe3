"""Diffusion-QL (cmrl/agents/diffusion_ql.py): the Q term by hand with a stand-in critic, the gradient through
every step of the Heun sampler against a hand-built sampler, learning towards higher Q on a toy of known Q,
exact resume, the Agent protocol, configuration errors, and a short run through the Trainer."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import assert_resume_is_exact, compose, flat_tensors, known_q_toy_means, tiny_config, toy_batch
from omegaconf import OmegaConf
from torch import Tensor, nn

from cmrl.agents import Agent, AgentConfig, DiffusionQL, make_agent
from cmrl.data import Batch
from cmrl.errors import ConfigError
from cmrl.training.loggers import read_metrics
from cmrl.training.loop import train

pytestmark = pytest.mark.usefixtures("one_thread")


def small_cfg(**kw) -> AgentConfig:
    base = dict(algo="diffusion_ql", hidden_dims=[32, 32], critic_hidden_dims=[32, 32], time_embed_dim=8,
                min_lr_ratio=1.0, ema_start_step=0, train_sampling_steps=3)
    base.update(kw)
    cfg = AgentConfig(**base)
    cfg.diffusion.sampling_steps = 3
    return cfg


class _OffsetLinearQ(nn.Module):
    """Q_k(s, a) = 100 + sum_j a_j for both members: a known value offset and a known action slope."""

    def forward(self, obs: Tensor, action: Tensor) -> Tensor:
        return (100.0 + action.sum(-1)).expand(2, -1)

    frozen = forward


def hand_heun_sample(policy: nn.Module, obs: Tensor, z: Tensor, sigmas: list[float]) -> Tensor:
    """EDM Algorithm 1 written out: x_0 = t_0 z; Heun steps t_i -> t_{i+1}, Euler into t_N = 0; clamp."""
    x = sigmas[0] * z
    for t, t_next in zip(sigmas[:-1], sigmas[1:]):
        d = (x - policy(x, torch.full((x.shape[0], 1), t), obs)) / t
        x_next = x + (t_next - t) * d
        if t_next > 0:
            d_next = (x_next - policy(x_next, torch.full((x.shape[0], 1), t_next), obs)) / t_next
            x_next = x + (t_next - t) * (d + d_next) / 2
        x = x_next
    return x.clamp(-1.0, 1.0)


def _agent_with_critic(critic: nn.Module, batch: Batch, **overrides):
    torch.manual_seed(0)
    agent = make_agent(small_cfg(**{"eta": 1.0, **overrides}), 3, 2, 10)
    agent.critic = critic
    return agent, agent.draw_noise(batch.observations.shape[0])


def test_the_training_sampler_is_the_3_step_edm_grid():
    agent = make_agent(small_cfg(), 3, 2, 10)
    assert isinstance(agent, DiffusionQL) and isinstance(agent, Agent)
    assert len(agent.train_sigmas) == 4 and agent.train_sigmas[0] == 80.0 and agent.train_sigmas[-1] == 0.0
    assert agent.train_sigmas[2] == pytest.approx(0.002)
    assert agent.act_sigmas == agent.train_sigmas  # diffusion.sampling_steps = 3 as well


def test_normalised_q_loss_by_hand_with_a_known_slope():
    """L = L_DSM + eta * (-mean Q / mean |Q|) on Q = 100 + sum_j a_j, with a_pi from the hand sampler."""
    batch = toy_batch()
    agent, noise = _agent_with_critic(_OffsetLinearQ(), batch, eta=2.0)
    with torch.no_grad():
        a_pi = hand_heun_sample(agent.policy, batch.observations, noise.actor[0], agent.train_sigmas)
        dsm = agent.policy.loss(batch.observations, batch.actions, noise.sigma, noise.z).mean()
    q = 100.0 + a_pi.sum(-1)
    loss, metrics = agent.actor_loss(batch, noise)
    assert metrics["loss/q"].item() == pytest.approx((-q.mean() / q.abs().mean()).item(), rel=1e-6)
    assert metrics["q/policy_mean"].item() == pytest.approx(q.mean().item(), rel=1e-6)
    assert metrics["loss/denoising"].item() == pytest.approx(dsm.item(), rel=1e-6)
    assert loss.item() == pytest.approx(dsm.item() + 2.0 * metrics["loss/q"].item(), rel=1e-6)


def test_the_q_gradient_flows_through_every_sampler_step():
    """grad of the Q term w.r.t. phi equals the hand-built sampler's, is non-zero, and differs from the
    gradient of a sampler that stops it after the first step (so the earlier steps contribute)."""
    batch = toy_batch(n=32)
    agent, noise = _agent_with_critic(_OffsetLinearQ(), batch)
    params = list(agent.policy.parameters())
    _, q_loss, _ = agent.actor_terms(batch, noise)
    assert q_loss is not None
    grads = torch.autograd.grad(q_loss, params)

    def hand_q_loss(a_pi: Tensor) -> Tensor:
        q = 100.0 + a_pi.sum(-1)
        return -q.mean() / q.abs().mean().detach()

    a_hand = hand_heun_sample(agent.policy, batch.observations, noise.actor[0], agent.train_sigmas)
    hand = torch.autograd.grad(hand_q_loss(a_hand), params)
    for g, h in zip(grads, hand):
        torch.testing.assert_close(g, h, rtol=1e-5, atol=1e-9)
    assert sum(g.abs().sum().item() for g in grads) > 0

    class _LastStepsOnly(nn.Module):  # the denoiser's first call (at sigma_max) without gradient
        def __init__(self, policy: nn.Module):
            super().__init__()
            self.policy, self.calls = policy, 0

        def forward(self, x: Tensor, sigma: Tensor, obs: Tensor) -> Tensor:
            self.calls += 1
            out = self.policy(x, sigma, obs)
            return out.detach() if self.calls == 1 else out

    a_cut = hand_heun_sample(_LastStepsOnly(agent.policy), batch.observations, noise.actor[0], agent.train_sigmas)
    cut = torch.autograd.grad(hand_q_loss(a_cut), params)
    assert any(not torch.allclose(g, c, rtol=1e-3, atol=1e-7) for g, c in zip(grads, cut))


def test_eta_moves_the_policy_towards_higher_q():
    """Toy with known Q (Q(s, a) = a, see helpers.known_q_toy_means). Without the Q loss the policy
    imitates the (mean-zero) behaviour; with eta = 1 it moves to a -> 1."""
    means = known_q_toy_means(lambda eta: small_cfg(eta=eta, discount=0.0, actor_lr=1e-3, critic_lr=3e-3,
                                                    ema_decay=0.0), steps=150, q_tolerance=0.15)
    assert abs(means[0.0]) < 0.2
    assert means[1.0] > 0.6
    assert means[1.0] - means[0.0] > 0.5


def _state_tensors(agent) -> dict[str, Tensor]:
    return flat_tensors(agent.state_dict())


@pytest.mark.parametrize("overrides", [{}, dict(max_q_backup=True, backup_samples=3, act_candidates=4)])
def test_resume_is_exact(overrides):
    """N updates, state_dict round trip into a fresh agent, N more == 2N straight, bit for bit."""
    cfg = small_cfg(min_lr_ratio=0.0, ema_decay=0.5, ema_start_step=2, **overrides)
    state = assert_resume_is_exact(cfg, [toy_batch(seed=s) for s in range(6)], toy_batch().observations[:5])
    assert {"/critic_target/net.0.weight", "/ema_policy/net.0.weight"} <= set(state)


def test_agent_protocol_update_act_diagnostics():
    torch.manual_seed(0)
    agent = make_agent(small_cfg(act_candidates=5), 3, 2, 10)
    batch = toy_batch()
    metrics = agent.update(batch)
    assert agent.step == 1
    expected = {"loss/critic", "loss/denoising", "loss/q", "loss/actor", "grad_norm/actor", "grad_norm/critic"}
    assert expected <= set(metrics)
    assert all(v.dim() == 0 and not v.requires_grad and torch.isfinite(v) for v in metrics.values())
    obs = batch.observations[:7]
    actions = agent.act(obs, torch.Generator().manual_seed(1))
    assert actions.shape == (7, 2) and actions.abs().max() <= 1.0
    assert torch.equal(actions, agent.act(obs, torch.Generator().manual_seed(1)))
    # candidates: the best of 5 by min-Q is what act returns
    n = 5
    with torch.no_grad():
        z = torch.randn(7 * n, 2, generator=torch.Generator().manual_seed(1))
        candidates = agent.acting_policy.sample(obs.repeat_interleave(n, 0), agent.act_sigmas, noise=z)
        q = agent.critic(obs.repeat_interleave(n, 0), candidates).min(0).values.view(7, n)
        best = candidates.view(7, n, 2)[torch.arange(7), q.argmax(1)]
    torch.testing.assert_close(actions, best)
    # diagnostics change neither the parameters, nor .grad, nor the random stream
    before = {k: v.clone() for k, v in _state_tensors(agent).items()}
    grads = [None if p.grad is None else p.grad.clone() for p in agent.policy.parameters()]
    rng = torch.get_rng_state()
    diag = agent.diagnostics(batch)
    assert diag["grad_norm/actor_denoising"] > 0 and diag["grad_norm/actor_q"] > 0
    assert torch.equal(rng, torch.get_rng_state())
    assert all(torch.equal(before[k], v) for k, v in _state_tensors(agent).items())
    for g, p in zip(grads, agent.policy.parameters()):
        assert (g is None and p.grad is None) or torch.equal(g, p.grad)


@pytest.mark.parametrize("kw,message", [
    (dict(train_sampling_sigmas=[1.0, 0.5, 0.1]),
     r"agent\.train_sampling_sigmas is for the consistency sampler; diffusion_ql samples on the Karras grid of "
     r"agent\.train_sampling_steps"),
    (dict(act_sampling_sigmas=[1.0, 0.5]), r"agent\.act_sampling_sigmas .* agent\.diffusion\.sampling_steps"),
    (dict(train_sampling_steps=0), r"agent\.train_sampling_steps must be > 0"),
    (dict(algo="diffusion_bc", act_candidates=4),
     r"agent\.act_candidates > 1 .* one of consistency_ac, consistency_fql, diffusion_ql"),
])
def test_config_errors_name_the_key(kw, message):
    with pytest.raises(ConfigError, match=message):
        small_cfg(**kw).validate()


def test_the_config_entry_has_the_papers_defaults():
    cfg = OmegaConf.to_object(compose(["agent=diffusion_ql"]).agent)
    assert isinstance(cfg, AgentConfig)
    cfg.validate()
    assert cfg.algo == "diffusion_ql"
    assert (cfg.eta, cfg.actor_lr, cfg.critic_lr, cfg.tau, cfg.discount, cfg.ema_decay) == (1.0, 3e-4, 3e-4, 0.005,
                                                                                          0.99, 0.995)
    assert (cfg.max_q_backup, cfg.act_candidates, cfg.train_sampling_steps, cfg.diffusion.sampling_steps) == (
        False, 50, 3, 3)
    assert cfg.hidden_dims == cfg.critic_hidden_dims == [256, 256, 256] and cfg.activation == "mish"


def test_a_short_run_through_the_trainer(tmp_path: Path):
    cfg = tiny_config(steps=20, checkpoint_every=10)
    cfg.agent = small_cfg(hidden_dims=[32, 32], critic_hidden_dims=[32, 32], act_candidates=3, ema_start_step=5)
    summary = train(cfg, tmp_path)
    assert summary.steps == 20
    records = read_metrics(tmp_path)
    logged = [r for r in records if "loss/q" in r]
    assert [r["step"] for r in logged] == [10, 20]
    assert all(r["grad_norm/actor_denoising"] > 0 and r["grad_norm/actor_q"] > 0 for r in logged)


@pytest.mark.slow
def test_compiled_losses_match_eager():
    """agent.compile=true (torch.compile of the losses and of acting) trains and acts as the eager agent,
    up to rounding: every draw happens in draw_noise, before the compiled code."""
    batches = [toy_batch(seed=i) for i in range(4)]
    agents = []
    for compile_ in (False, True):
        torch.manual_seed(0)
        agent = make_agent(small_cfg(compile=compile_, act_candidates=3), 3, 2, 10)
        for b in batches:
            agent.update(b)
        agents.append(agent)
    eager, compiled = (_state_tensors(a) for a in agents)
    for key in eager:
        torch.testing.assert_close(eager[key], compiled[key], atol=1e-5, rtol=1e-4, msg=key)
    obs = batches[0].observations[:4]
    torch.testing.assert_close(agents[0].act(obs, torch.Generator().manual_seed(0)),
                               agents[1].act(obs, torch.Generator().manual_seed(0)), atol=1e-5, rtol=1e-4)
