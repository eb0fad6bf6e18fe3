"""Consistency-FQL (cmrl/agents/consistency_fql.py): the actor loss and the TD target by hand with stand-in
networks, which network each term trains, learning towards higher Q on a toy of known Q, acting in one
pass, exact resume, the Agent protocol, configuration and export errors, and a short run through the
Trainer."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import assert_resume_is_exact, compose, flat_tensors, known_q_toy_means, tiny_config, toy_batch
from omegaconf import OmegaConf
from torch import Tensor, nn

from cmrl.agents import Agent, AgentConfig, ConsistencyFQL, make_agent
from cmrl.consistency import ICT
from cmrl.errors import ConfigError
from cmrl.export.policy import exported_policy
from cmrl.training.loggers import read_metrics
from cmrl.training.loop import train

pytestmark = pytest.mark.usefixtures("one_thread")


def small_cfg(**kw) -> AgentConfig:
    base = dict(algo="consistency_fql", hidden_dims=[32, 32], critic_hidden_dims=[32, 32], time_embed_dim=8,
                min_lr_ratio=1.0, ema_start_step=0)
    base.update(kw)
    return AgentConfig(**base)


class _OffsetLinearQ(nn.Module):
    """Q_k(s, a) = 100 + k + sum_j a_j for members k = 0, 1: a known offset, spread and action slope."""

    def forward(self, obs: Tensor, action: Tensor) -> Tensor:
        return 100.0 + action.sum(-1) + torch.arange(2.0).view(2, 1)

    frozen = forward


def _agent(**overrides) -> ConsistencyFQL:
    torch.manual_seed(0)
    agent = make_agent(small_cfg(**overrides), 3, 2, 10)
    assert isinstance(agent, ConsistencyFQL) and isinstance(agent, Agent)
    return agent


def test_actor_loss_by_hand():
    """L = L_CM + alpha * mean (mu(s, z) - f_ema(80 z, 80 | s))^2 + eta * (-mean Q / mean |Q|), Q the members'
    mean at a = mu(s, z)."""
    batch = toy_batch()
    agent = _agent(eta=2.0)
    agent.cfg.fql.alpha = 0.3
    agent.critic = _OffsetLinearQ()
    noise = agent.draw_noise(64)
    z = noise.actor[0]
    with torch.no_grad():
        sigma_max = torch.full((64, 1), 80.0)
        f = agent.ema_policy(80.0 * z, sigma_max, batch.observations).clamp(-1, 1)  # one consistency step
        mu = torch.tanh(agent.one_step.net(torch.cat([batch.observations, z], -1)))
        cm, _ = agent.consistency_loss(batch, noise.pairs)
    distillation = (mu - f).square().mean()
    q = 100.5 + mu.sum(-1)
    loss, metrics = agent.actor_loss(batch, noise)
    assert metrics["loss/distillation"].item() == pytest.approx(distillation.item(), rel=1e-5)
    assert metrics["loss/q"].item() == pytest.approx((-q.mean() / q.abs().mean()).item(), rel=1e-6)
    assert loss.item() == pytest.approx(cm.item() + 0.3 * distillation.item() + 2.0 * metrics["loss/q"].item(),
                                        rel=1e-5)


def test_each_term_trains_its_own_network():
    """L_CM reaches theta only; the distillation and Q terms reach omega only (the target f_ema is fixed)."""
    batch = toy_batch(n=32)
    agent = _agent()
    agent.critic = _OffsetLinearQ()
    noise = agent.draw_noise(32)
    theta, omega = list(agent.policy.parameters()), list(agent.one_step.parameters())
    behaviour, q_loss, _ = agent.actor_terms(batch, noise)
    assert q_loss is not None
    cm, _ = agent.consistency_loss(batch, noise.pairs)
    for loss, reaches, misses in ((cm, theta, omega), (q_loss, omega, theta), (behaviour - cm, omega, theta)):
        grads = torch.autograd.grad(loss, reaches + misses, allow_unused=True, retain_graph=True)
        assert all(g is not None and g.abs().sum() > 0 for g in grads[:len(reaches)])
        assert all(g is None or not g.any() for g in grads[len(reaches):])
    assert not any(p.requires_grad for p in agent.ema_policy.parameters())


def test_one_update_steps_both_actor_networks_and_clips_each_alone():
    batch = toy_batch()
    agent = _agent(actor_grad_clip=1e-3)
    theta = [p.detach().clone() for p in agent.policy.parameters()]
    omega = [p.detach().clone() for p in agent.one_step.parameters()]
    metrics = agent.update(batch)
    assert metrics["grad_norm/actor"] > 1e-3 and metrics["grad_norm/one_step"] > 1e-3  # both were clipped
    assert all(not torch.equal(a, p) for a, p in zip(theta, agent.policy.parameters()))
    assert all(not torch.equal(a, p) for a, p in zip(omega, agent.one_step.parameters()))


@pytest.mark.parametrize("critic_target", ["td", "td_return_bound"])
def test_td_target_backs_up_the_one_step_policy(critic_target):
    """y = r + gamma (1 - d) min_k Q'_k(s', mu(s', z')) (and max(y, G) with the return bound)."""
    batch = toy_batch()
    batch = batch._replace(returns=torch.full((64,), 150.0))
    agent = _agent(critic_target=critic_target, discount=0.5)
    agent.critic_target = _OffsetLinearQ()
    noise = agent.draw_noise(64)
    with torch.no_grad():
        a_next = agent.one_step(batch.next_observations, noise.target[0])
    y = batch.rewards + 0.5 * (1 - batch.terminals) * (100.0 + a_next.sum(-1))
    if critic_target == "td_return_bound":
        y = torch.maximum(y, batch.returns)
    torch.testing.assert_close(agent.td_target(batch, noise.target), y)


def test_acting_is_one_pass_of_the_one_step_policy_at_the_temperature():
    agent = _agent(act_temperature=0.25)
    obs = toy_batch().observations[:7]
    z = torch.randn(7, 2, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = agent.one_step(obs, 0.25 * z)
    torch.testing.assert_close(agent.act(obs, torch.Generator().manual_seed(4)), expected)


def test_candidates_are_one_step_draws_ranked_by_min_q():
    agent = _agent(act_candidates=5)
    obs = toy_batch().observations[:7]
    z = torch.randn(35, 2, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        candidates = agent.one_step(obs.repeat_interleave(5, 0), z)
        q = agent.critic(obs.repeat_interleave(5, 0), candidates).min(0).values.view(7, 5)
        best = candidates.view(7, 5, 2)[torch.arange(7), q.argmax(1)]
    torch.testing.assert_close(agent.act(obs, torch.Generator().manual_seed(4)), best)


def test_eta_moves_the_policy_towards_higher_q():
    """Toy with known Q (Q(s, a) = a, see helpers.known_q_toy_means): without the Q loss the one-step
    policy imitates the (mean-zero) behaviour; with eta = 1 and a weak distillation it moves to a -> 1."""
    def config(eta: float) -> AgentConfig:
        cfg = small_cfg(eta=eta, discount=0.0, actor_lr=1e-3, critic_lr=3e-3, ema_decay=0.0)
        cfg.fql.alpha = 0.03
        return cfg

    means = known_q_toy_means(config, steps=300, q_tolerance=0.15)
    assert abs(means[0.0]) < 0.2
    assert means[1.0] > 0.6


@pytest.mark.parametrize("overrides", [{}, dict(max_q_backup=True, backup_samples=3, act_candidates=3)])
def test_resume_is_exact(overrides):
    """N updates, state_dict round trip into a fresh agent, N more == 2N straight, bit for bit, the
    one-step policy's optimiser and schedule included."""
    cfg = small_cfg(min_lr_ratio=0.0, ema_decay=0.5, ema_start_step=2, **overrides)
    state = assert_resume_is_exact(cfg, [toy_batch(seed=s) for s in range(6)], toy_batch().observations[:5])
    assert {"/one_step/net.0.weight", "/critic_target/net.0.weight"} <= set(state)
    assert any(k.startswith("/one_step_optimizer/") for k in state)


def test_diagnostics_measure_the_one_step_policy_and_change_nothing():
    agent = _agent()
    batch = toy_batch()
    agent.update(batch)
    before = {k: v.clone() for k, v in flat_tensors(agent.state_dict()).items()}
    rng = torch.get_rng_state()
    diag = agent.diagnostics(batch)
    assert diag["grad_norm/actor_distillation"] > 0 and diag["grad_norm/actor_q"] > 0
    assert torch.equal(rng, torch.get_rng_state())
    assert all(torch.equal(before[k], v) for k, v in flat_tensors(agent.state_dict()).items())


def test_a_negative_alpha_is_refused():
    cfg = small_cfg()
    cfg.fql.alpha = -1.0
    with pytest.raises(ConfigError, match=r"agent\.fql\.alpha must be >= 0, got -1\.0"):
        cfg.validate()


def test_export_refuses_it():
    with pytest.raises(ConfigError, match="cannot export a ConsistencyFQL"):
        exported_policy(_agent(), None)  # type: ignore[arg-type]


def test_the_config_entry():
    cfg = OmegaConf.to_object(compose(["agent=consistency_fql"]).agent)
    assert isinstance(cfg, AgentConfig)
    cfg.validate()
    assert cfg.algo == "consistency_fql" and cfg.eta == 1.0 and cfg.fql.alpha == 1.0
    assert cfg.consistency == ICT and cfg.act_candidates == 10


def test_a_short_run_through_the_trainer(tmp_path: Path):
    cfg = tiny_config(steps=20, checkpoint_every=10)
    cfg.agent = small_cfg(ema_start_step=5)
    summary = train(cfg, tmp_path)
    assert summary.steps == 20
    logged = [r for r in read_metrics(tmp_path) if "loss/distillation" in r]
    assert [r["step"] for r in logged] == [10, 20]
    assert all(r["grad_norm/actor_distillation"] > 0 and r["grad_norm/actor_q"] > 0 for r in logged)


@pytest.mark.slow
def test_compiled_losses_match_eager():
    """agent.compile=true trains and acts as the eager agent, up to rounding."""
    batches = [toy_batch(seed=i) for i in range(4)]
    agents = []
    for compile_ in (False, True):
        torch.manual_seed(0)
        agent = make_agent(small_cfg(compile=compile_), 3, 2, 10)
        for b in batches:
            agent.update(b)
        agents.append(agent)
    eager, compiled = (flat_tensors(a.state_dict()) for a in agents)
    for key in eager:
        torch.testing.assert_close(eager[key], compiled[key], atol=1e-5, rtol=1e-4, msg=key)
    obs = batches[0].observations[:4]
    torch.testing.assert_close(agents[0].act(obs, torch.Generator().manual_seed(0)),
                               agents[1].act(obs, torch.Generator().manual_seed(0)), atol=1e-5, rtol=1e-4)
