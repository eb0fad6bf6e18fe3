"""Tests of the consistency agents: configuration, the optimised objective, learning on toys, acting,
checkpoints and the learning-rate schedule. Small networks and a single thread keep the file fast.
"""
from __future__ import annotations

import copy
import math

import pytest
import torch
from helpers import known_q_toy_means
from torch import Tensor, nn

from cmrl.agents import AgentConfig, ConsistencyAC, ConsistencyBC, make_agent
from cmrl.agents.optim import lr_factor, make_scheduler
from cmrl.consistency import CT, ICT, ConsistencyConfig, sampling_noise
from cmrl.data import Batch
from cmrl.errors import CheckpointError

FAST = ConsistencyConfig(curriculum="fixed", s0=2, s1=2)  # CT with a fixed 3-point grid: learns in ~100 steps


pytestmark = pytest.mark.usefixtures("one_thread")


def small_cfg(**kw) -> AgentConfig:
    base = dict(hidden_dims=[32, 32], critic_hidden_dims=[32, 32], time_embed_dim=8, min_lr_ratio=1.0,
                ema_start_step=0)  # min_lr_ratio = 1: a constant learning rate
    base.update(kw)
    return AgentConfig(**base)


def toy_batch(n: int = 64, obs_dim: int = 3, action_dim: int = 2, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, obs_dim, generator=g)
    act = torch.rand(n, action_dim, generator=g) * 2 - 1
    return Batch(obs, act, torch.randn(n, generator=g), torch.randn(n, obs_dim, generator=g),
                 (torch.rand(n, generator=g) < 0.1).float())


def params(module: nn.Module) -> list[Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def assert_same(a: list[Tensor], b: list[Tensor]) -> None:
    assert len(a) == len(b)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


# --------------------------------------------------------------------------------------------------
# learning-rate schedule
# --------------------------------------------------------------------------------------------------
def test_lr_factor_cosine_by_hand():
    assert lr_factor(0, 100, 0, 0.0) == pytest.approx(1.0)
    # p = 0.25: 0.5 (1 + cos(pi/4)) = 0.5 * 1.7071068 = 0.8535534
    assert lr_factor(25, 100, 0, 0.0) == pytest.approx(0.8535534, abs=1e-7)
    assert lr_factor(50, 100, 0, 0.0) == pytest.approx(0.5, abs=1e-12)
    assert lr_factor(100, 100, 0, 0.0) == pytest.approx(0.0, abs=1e-12)
    # min_ratio 0.1: middle 0.1 + 0.9 * 0.5 = 0.55; end (and beyond) 0.1
    assert lr_factor(50, 100, 0, 0.1) == pytest.approx(0.55, abs=1e-12)
    assert lr_factor(100, 100, 0, 0.1) == pytest.approx(0.1, abs=1e-12)
    assert lr_factor(250, 100, 0, 0.1) == pytest.approx(0.1, abs=1e-12)


def test_lr_factor_warmup_by_hand():
    # warm-up 10 over 110 steps: (k + 1) / 10, then cosine over the remaining 100
    assert lr_factor(0, 110, 10, 0.0) == pytest.approx(0.1)
    assert lr_factor(4, 110, 10, 0.0) == pytest.approx(0.5)
    assert lr_factor(9, 110, 10, 0.0) == pytest.approx(1.0)
    assert lr_factor(10, 110, 10, 0.0) == pytest.approx(1.0)
    assert lr_factor(60, 110, 10, 0.0) == pytest.approx(0.5)  # p = 50 / 100
    assert lr_factor(1, 100, 4, 0.0) == pytest.approx(0.5)  # (1 + 1) / 4
    assert lr_factor(77, 100, 4, 1.0) == 1.0  # min_ratio 1: a constant rate after warm-up


def test_scheduler_drives_the_optimizer_lr():
    w = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=2.0)
    sched = make_scheduler(opt, 4, 0, 0.0)
    lrs = []
    for _ in range(5):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    # 2 * 0.5 (1 + cos(pi k / 4)), k = 0..4: 2, 1.7071068, 1, 0.2928932, 0
    assert lrs == pytest.approx([2.0, 1.7071068, 1.0, 0.2928932, 0.0], abs=1e-6)


def test_agent_lr_decays_per_update():
    agent = ConsistencyBC(small_cfg(algo="consistency_bc", min_lr_ratio=0.0, actor_lr=1e-3), 3, 2, 10)
    batch = toy_batch()
    lrs = [agent.update(batch)["lr/actor"].item() for _ in range(6)]
    # 1e-3 * 0.5 (1 + cos(pi k / 10)): k = 0 -> 1e-3, k = 5 -> 5e-4
    assert lrs[0] == pytest.approx(1e-3, rel=1e-6)
    assert lrs[5] == pytest.approx(5e-4, rel=1e-6)
    assert agent.actor_optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 0.6)))


# --------------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw,message",
    [
        (dict(algo="sac"), r"agent\.algo must be one of consistency_ac, consistency_bc, consistency_fql, diffusion_bc, "
                           r"diffusion_ql, "
                           r"td3_bc, iql, rebrac; got 'sac'"),
        (dict(critic_target="mc"), r"agent\.critic_target must be one of td, td_return_bound; got 'mc'"),
        (dict(consistency=ConsistencyConfig(metric="l1")), r"agent\.consistency\.metric must be one of"),
        (dict(consistency=ConsistencyConfig(index_sampling="beta")), r"agent\.consistency\.index_sampling"),
        (dict(consistency=ConsistencyConfig(s0=0)), r"agent\.consistency: need 1 <= s0 <= s1"),
        (dict(hidden_dims=[]), r"agent\.hidden_dims must be a non-empty list"),
        (dict(critic_hidden_dims=[64, 0]), r"agent\.critic_hidden_dims"),
        (dict(actor_lr=0.0), r"agent\.actor_lr must be > 0"),
        (dict(critic_lr=-1.0), r"agent\.critic_lr must be > 0"),
        (dict(ensemble_size=0), r"agent\.ensemble_size must be > 0"),
        (dict(act_candidates=0), r"agent\.act_candidates must be > 0"),
        (dict(discount=1.5), r"agent\.discount must be in \[0, 1\]"),
        (dict(tau=-0.1), r"agent\.tau must be in \(0, 1\]"),
        (dict(tau=0.0), r"agent\.tau must be in \(0, 1\]"),
        (dict(ema_decay=2.0), r"agent\.ema_decay must be in \[0, 1\)"),
        (dict(ema_decay=1.0), r"agent\.ema_decay must be in \[0, 1\)"),
        (dict(min_lr_ratio=1.5), r"agent\.min_lr_ratio"),
        (dict(eta=-1.0), r"agent.eta must be >= 0"),
        (dict(act_temperature=-0.5), r"agent\.act_temperature must be >= 0"),
        (dict(time_embed_dim=5), r"agent\.time_embed_dim must be even"),
        (dict(algo="consistency_bc", act_candidates=4), r"agent\.act_candidates > 1"),
        (dict(act_sampling_sigmas=[80.0]), r"agent\.act_sampling_sigmas must hold 2 strictly decreasing"),
        (dict(train_sampling_sigmas=[1.0, 5.0]), r"agent\.train_sampling_sigmas must hold 2"),
        (dict(act_sampling_steps=1, act_sampling_sigmas=[100.0]), r"agent\.act_sampling_sigmas must lie in"),
        (dict(act_sampling_sigmas=[80.0, 0.001]), r"agent\.act_sampling_sigmas must lie in"),
    ],
)
def test_config_validate_names_the_key(kw, message):
    cfg = AgentConfig(**kw)
    with pytest.raises(ValueError, match=message):
        cfg.validate()
    with pytest.raises(ValueError, match=message):  # the agents validate on construction
        make_agent(cfg, 3, 2, 10)


def test_default_config_is_valid_and_make_agent_picks_the_class():
    AgentConfig().validate()
    AgentConfig(act_sampling_sigmas=[80.0, 1.0], train_sampling_steps=1, train_sampling_sigmas=[40.0]).validate()
    assert type(make_agent(small_cfg(algo="consistency_bc"), 3, 2, 10)) is ConsistencyBC
    ac = make_agent(small_cfg(algo="consistency_ac"), 3, 2, 10)
    assert type(ac) is ConsistencyAC
    assert ac.act_sigmas[0] == 80.0 and len(ac.act_sigmas) == 2
    explicit = make_agent(small_cfg(act_sampling_sigmas=[80.0, 1.0]), 3, 2, 10)
    assert explicit.act_sigmas == [80.0, 1.0]


# --------------------------------------------------------------------------------------------------
# the configured objective is the one optimised
# --------------------------------------------------------------------------------------------------
def _spy_pairs(agent) -> list:
    recorded: list = []
    original = agent.objective.sample_pairs

    def spy(*args, **kwargs):
        pairs = original(*args, **kwargs)
        recorded.append(pairs)
        return pairs

    agent.objective.sample_pairs = spy  # instance attribute shadows the method
    return recorded


def _hand_consistency_loss(student_net, teacher_net, batch: Batch, pairs, preset: str) -> Tensor:
    """L_CM written out: d(f_theta(a + sigma_{n+1} z, sigma_{n+1} | s), f_teacher(a + sigma_n z, sigma_n | s))."""
    obs, a = batch.observations, batch.actions
    student = student_net(a + pairs.sigma_next * pairs.z, pairs.sigma_next, obs)
    with torch.no_grad():
        teacher = teacher_net(a + pairs.sigma * pairs.z, pairs.sigma, obs)
    sq = (student - teacher).square().sum(-1)
    if preset == "ct":
        per = sq  # squared L2, lambda = 1
    else:
        c = 0.00054 * math.sqrt(a.shape[1])  # pseudo-Huber c for the action dimension
        per = ((sq + c * c).sqrt() - c) / (pairs.sigma_next - pairs.sigma).squeeze(-1)  # lambda = 1 / delta sigma
    return per.mean()


@pytest.mark.parametrize("algo", ["consistency_bc", "consistency_ac"])
@pytest.mark.parametrize("preset", ["ct", "ict"])
def test_actor_gradient_is_the_consistency_loss_gradient(algo, preset):
    consistency = CT if preset == "ct" else ICT
    cfg = small_cfg(algo=algo, consistency=consistency, eta=0.0, actor_grad_clip=0.0, actor_lr=1e-3)
    torch.manual_seed(0)
    agent = make_agent(cfg, 3, 2, 1000)
    batch = toy_batch()
    for _ in range(3):  # let the EMA teacher drift away from the student
        agent.update(batch)
    if preset == "ct":
        teacher0 = copy.deepcopy(agent.teacher)
        assert not all(torch.equal(a, b) for a, b in zip(agent.teacher.parameters(), agent.policy.parameters()))
    else:
        assert agent.teacher is None  # iCT: theta^- = sg(theta)
        teacher0 = copy.deepcopy(agent.policy)
    student0 = copy.deepcopy(agent.policy).requires_grad_(True)
    recorded = _spy_pairs(agent)
    agent.update(batch)
    assert len(recorded) == 1
    loss = _hand_consistency_loss(student0, teacher0, batch, recorded[0], preset)
    hand = torch.autograd.grad(loss, list(student0.parameters()))
    got = [p.grad for p in agent.policy.parameters()]
    for g, h in zip(got, hand):
        torch.testing.assert_close(g, h, rtol=1e-4, atol=1e-7)
    if preset == "ct":  # control: the student as teacher would have given a different gradient
        wrong = torch.autograd.grad(_hand_consistency_loss(student0, student0, batch, recorded[0], preset),
                                    list(student0.parameters()))
        assert any(not torch.allclose(g, w, rtol=1e-3, atol=1e-6) for g, w in zip(got, wrong))


def test_first_adam_step_moves_the_policy_along_the_consistency_gradient():
    # Adam's first step is lr * m_hat / (sqrt(v_hat) + eps) = lr * g / (|g| + 1e-8): -lr sign(g) where |g| >> 1e-8
    lr = 1e-3
    cfg = small_cfg(algo="consistency_bc", consistency=CT, actor_grad_clip=0.0, actor_lr=lr)
    torch.manual_seed(1)
    agent = make_agent(cfg, 3, 2, 1000)
    batch = toy_batch(seed=1)
    student0, teacher0 = copy.deepcopy(agent.policy), copy.deepcopy(agent.teacher)
    recorded = _spy_pairs(agent)
    metrics = agent.update(batch)
    loss = _hand_consistency_loss(student0, teacher0, batch, recorded[0], "ct")
    assert metrics["loss/consistency"].item() == pytest.approx(loss.item(), rel=1e-5)
    hand = torch.autograd.grad(loss, list(student0.parameters()))
    for before, after, g in zip(student0.parameters(), agent.policy.parameters(), hand):
        big = g.abs() > 1e-5
        assert big.any()
        torch.testing.assert_close((after - before)[big], -lr * g[big].sign(), rtol=2e-3, atol=1e-9)


def test_q_loss_reaches_the_actor_gradient():
    batch = toy_batch(seed=2)
    grads = {}
    for eta in (0.0, 1.0):
        torch.manual_seed(3)
        agent = make_agent(small_cfg(eta=eta, actor_grad_clip=0.0, consistency=CT), 3, 2, 1000)
        student0, teacher0 = copy.deepcopy(agent.policy), copy.deepcopy(agent.teacher)
        recorded = _spy_pairs(agent)
        metrics = agent.update(batch)
        hand = torch.autograd.grad(_hand_consistency_loss(student0, teacher0, batch, recorded[0], "ct"),
                                   list(student0.parameters()))
        grads[eta] = [(p.grad, h) for p, h in zip(agent.policy.parameters(), hand)]
        if eta > 0:
            assert "loss/q" in metrics
    assert all(torch.allclose(g, h, rtol=1e-4, atol=1e-7) for g, h in grads[0.0])
    assert not all(torch.allclose(g, h, rtol=1e-2, atol=1e-5) for g, h in grads[1.0])


def _constant_head(ensemble_module, values: list[float]) -> None:
    """Make an ensemble network output the constant values[k] for member k."""
    last = list(ensemble_module.net)[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor(values).view(-1, 1, 1))


@pytest.mark.parametrize("max_q_backup", [False, True])
def test_td_target_and_critic_loss_by_hand(max_q_backup):
    agent = make_agent(small_cfg(discount=0.5, max_q_backup=max_q_backup, backup_samples=3), 3, 2, 10)
    _constant_head(agent.critic_target, [2.0, 3.0])
    _constant_head(agent.critic, [0.5, 1.5])
    obs = torch.randn(2, 3)
    batch = Batch(obs, torch.zeros(2, 2), torch.tensor([1.0, -1.0]), torch.randn(2, 3), torch.tensor([0.0, 1.0]))
    # y = r + gamma (1 - d) min_k Q'_k = [1 + 0.5 * 1 * 2, -1 + 0] = [2, -1]
    assert agent.td_target(batch).tolist() == pytest.approx([2.0, -1.0])
    # L_Q = sum_k mean_b (Q_k - y)^2 = ((0.5-2)^2 + (0.5+1)^2)/2 + ((1.5-2)^2 + (1.5+1)^2)/2 = 2.25 + 3.25 = 5.5
    loss, metrics = agent.critic_loss(batch)
    assert loss.item() == pytest.approx(5.5)
    assert metrics["q/target_mean"].item() == pytest.approx(0.5)


@pytest.mark.parametrize("critic_target,expected", [("td", [2.0, -1.0]), ("td_return_bound", [3.0, -1.0])])
def test_critic_targets_by_hand(critic_target, expected):
    agent = make_agent(small_cfg(discount=0.5, critic_target=critic_target), 3, 2, 10)
    _constant_head(agent.critic_target, [2.0, 3.0])
    batch = Batch(torch.randn(2, 3), torch.zeros(2, 2), torch.tensor([1.0, -1.0]), torch.randn(2, 3),
                  torch.tensor([0.0, 1.0]), returns=torch.tensor([3.0, -4.0]))
    # td: [1 + 0.5 * 2, -1] = [2, -1]; bounded by G = [3, -4]: [max(2, 3), max(-1, -4)] = [3, -1]
    assert agent.td_target(batch).tolist() == pytest.approx(expected)


def test_return_bound_needs_the_batch_returns():
    agent = make_agent(small_cfg(critic_target="td_return_bound"), 3, 2, 10)
    with pytest.raises(ValueError, match="returns-to-go"):
        agent.critic_loss(toy_batch())


@pytest.mark.parametrize("q_value,expected", [(5.0, -1.0), (-4.0, 1.0)])
def test_normalised_q_loss_by_hand(q_value, expected):
    # -mean(Q) / mean|Q|: Q = 5 -> -5/5 = -1; Q = -4 -> 4/4 = +1
    agent = make_agent(small_cfg(eta=2.0), 3, 2, 10)
    _constant_head(agent.critic, [q_value, q_value])
    loss, metrics = agent.actor_loss(toy_batch())
    assert metrics["loss/q"].item() == pytest.approx(expected)
    # L = L_CM + eta * L_Q with eta = 2
    assert loss.item() == pytest.approx(metrics["loss/consistency"].item() + 2.0 * expected, rel=1e-6)


class _OffsetLinearQ(nn.Module):
    """Q_k(s, a) = 100 + sum_j a_j for both members: a known value offset and a known action slope."""

    def forward(self, obs: Tensor, action: Tensor) -> Tensor:
        return (100.0 + action.sum(-1)).expand(2, -1)

    frozen = forward


def _agent_with_critic(critic: nn.Module, batch, **overrides):
    """A seeded Consistency-AC with `critic` in place of its Q-ensemble, fresh update noise, and the
    policy's sample a_pi on that noise (no grad): the setup of the by-hand Q-loss tests."""
    torch.manual_seed(0)
    agent = make_agent(small_cfg(eta=1.0, **overrides), 3, 2, 10)
    agent.critic = critic
    noise = agent.draw_noise(batch.observations.shape[0])
    with torch.no_grad():
        a_pi = agent.policy.sample(batch.observations, agent.train_sigmas, noise=noise.actor)
    return agent, noise, a_pi


def test_normalised_q_loss_and_policy_advantage_by_hand():
    """-mean(Q) / mean|Q| on a critic with a known offset and slope, Q = 100 + sum_j a_j; the policy's
    advantage Q(s, a_pi) - Q(s, a) is measured on request (the diagnostics) and only then."""
    batch = toy_batch()
    agent, noise, a_pi = _agent_with_critic(_OffsetLinearQ(), batch)
    q_pi, q_data = 100.0 + a_pi.sum(-1), 100.0 + batch.actions.sum(-1)
    _, metrics = agent.actor_loss(batch, noise)
    assert metrics["loss/q"].item() == pytest.approx((-q_pi.mean() / q_pi.abs().mean()).item(), rel=1e-5)
    assert metrics["q/scale"].item() == pytest.approx(q_pi.abs().mean().item(), rel=1e-5)
    assert "q/policy_advantage" not in metrics
    measured = agent.actor_terms(batch, noise, measure_advantage=True)[2]
    advantage = q_pi - q_data
    assert measured["q/policy_advantage"].item() == pytest.approx(advantage.mean().item(), rel=1e-4, abs=1e-5)
    assert measured["q/policy_advantage_abs"].item() == pytest.approx(advantage.abs().mean().item(), rel=1e-4)


class _TwoMemberLinearQ(nn.Module):
    """Q_1 = 100 + sum_j a_j and Q_2 = 90 + 2 sum_j a_j: their mean is 95 + 1.5 sum_j a_j."""

    def forward(self, obs: Tensor, action: Tensor) -> Tensor:
        total = action.sum(-1)
        return torch.stack([100.0 + total, 90.0 + 2.0 * total])

    frozen = forward


def test_actor_q_term_uses_the_ensemble_mean():
    """The Q term sees (Q_1 + Q_2) / 2 (Diffusion-QL), not the minimum the TD target takes: its
    gradient is d(-1.5 sum a_pi / mean|Q|)/d theta."""
    batch = toy_batch()
    agent, noise, a_pi = _agent_with_critic(_TwoMemberLinearQ(), batch)
    q = 95.0 + 1.5 * a_pi.sum(-1)
    _, q_loss, metrics = agent.actor_terms(batch, noise)
    assert metrics["q/policy_mean"].item() == pytest.approx(q.mean().item(), rel=1e-6)
    assert q_loss.item() == pytest.approx((-q.mean() / q.abs().mean()).item(), rel=1e-6)
    params_ = list(agent.policy.parameters())
    grads = torch.autograd.grad(q_loss, params_, allow_unused=True)
    a_grad = agent.policy.sample(batch.observations, agent.train_sigmas, noise=noise.actor)
    expected = torch.autograd.grad(-1.5 * a_grad.sum(-1).mean() / q.abs().mean(), params_, allow_unused=True)
    for g, e in zip(grads, expected):
        if g is not None:
            torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-7)


def test_diagnostics_split_the_actor_gradient_without_side_effects():
    """grad_norm/actor_consistency and grad_norm/actor_q are the norms of grad L_CM and grad eta L_Q
    on the noise that the diagnostics draw; the run's random stream and the parameters' .grad stay
    as they were."""
    batch = toy_batch()
    agent = make_agent(small_cfg(eta=3.0), 3, 2, 10)
    agent.update(batch)
    grads_before = [p.grad.clone() for p in agent.policy.parameters()]
    rng_before = torch.get_rng_state()
    metrics = agent.diagnostics(batch)
    assert torch.equal(torch.get_rng_state(), rng_before)
    for p, g in zip(agent.policy.parameters(), grads_before):
        assert torch.equal(p.grad, g)
    noise = agent.draw_noise(batch.observations.shape[0])  # the same draw, from the restored stream
    params_ = list(agent.policy.parameters())

    def norm(loss):
        return torch.cat([g.flatten() for g in torch.autograd.grad(loss, params_)]).norm().item()

    consistency_loss, q_loss, q_metrics = agent.actor_terms(batch, noise, measure_advantage=True)
    assert metrics["grad_norm/actor_consistency"].item() == pytest.approx(norm(consistency_loss), rel=1e-5)
    assert metrics["grad_norm/actor_q"].item() == pytest.approx(norm(3.0 * q_loss), rel=1e-5)
    assert metrics["q/policy_advantage"].item() == pytest.approx(q_metrics["q/policy_advantage"].item(), rel=1e-5)
    assert make_agent(small_cfg(algo="consistency_bc"), 3, 2, 10).diagnostics(batch) == {}


@pytest.mark.parametrize("overrides,expected", [
    ({}, {"loss/critic": 1.769000768661499, "loss/consistency": 0.7674731016159058, "loss/q": 0.9914672374725342,
          "grad_norm/actor": 1.4342024326324463, "grad_norm/critic": 0.45688915252685547}),
    (dict(max_q_backup=True, backup_samples=3, act_candidates=4),
     {"loss/critic": 1.7731925249099731, "loss/consistency": 0.7800928354263306, "loss/q": 0.9884890913963318,
      "grad_norm/actor": 1.3382846117019653, "grad_norm/critic": 0.46394941210746765}),
])
def test_consistency_ac_keeps_its_numbers_from_before_the_critic_was_shared(overrides, expected):
    """The fifth update's metrics on a fixed seed, recorded before the critic moved into QCriticAgent
    (q_critic.py): the same random draws in the same order and the same ops (bit-identical on the
    machine that recorded them; the tolerance only absorbs another CPU's float rounding)."""
    torch.manual_seed(0)
    cfg = AgentConfig(hidden_dims=[32, 32], critic_hidden_dims=[32, 32], time_embed_dim=8, ema_start_step=1,
                      **overrides)
    agent = make_agent(cfg, 3, 2, 20)
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        batch = Batch(torch.randn(64, 3, generator=g), torch.rand(64, 2, generator=g) * 2 - 1,
                      torch.randn(64, generator=g), torch.randn(64, 3, generator=g),
                      (torch.rand(64, generator=g) < 0.1).float(), returns=torch.randn(64, generator=g))
        metrics = agent.update(batch)
    assert {k: metrics[k].item() for k in expected} == pytest.approx(expected, rel=1e-4)


# --------------------------------------------------------------------------------------------------
# learning on toys
# --------------------------------------------------------------------------------------------------
def _imitation_data(n: int = 512, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    w = torch.tensor([[1.0, -0.5], [0.5, 1.0], [-1.0, 0.3]])  # a = tanh(s W): deterministic behaviour
    obs = torch.randn(n, 3, generator=g)
    return obs, torch.tanh(obs @ w), w


def _train(agent, obs, act, steps: int, batch_size: int = 128, rewards=None, seed: int = 0) -> list[float]:
    g = torch.Generator().manual_seed(seed)
    losses = []
    n = obs.shape[0]
    for _ in range(steps):
        i = torch.randint(0, n, (batch_size,), generator=g)
        r = rewards[i] if rewards is not None else torch.zeros(batch_size)
        m = agent.update(Batch(obs[i], act[i], r, obs[i], torch.zeros(batch_size)))
        losses.append(m["loss/consistency"].item())
    return losses


def _imitation_error(agent, w: Tensor) -> float:
    """Mean |pi(s) - tanh(s w)| on 256 fresh states; predicting 0 gives ~0.6."""
    test_obs = torch.randn(256, 3, generator=torch.Generator().manual_seed(1))
    target = torch.tanh(test_obs @ w)
    assert target.abs().mean().item() > 0.5
    actions = agent.act(test_obs)
    assert actions.shape == (256, 2)
    return (actions - target).abs().mean().item()


def _imitation_run(**overrides):
    """A 64x64 agent (lr 3e-3, no acting EMA) after 300 updates on `_imitation_data`."""
    torch.manual_seed(0)
    obs, act, w = _imitation_data()
    agent = make_agent(small_cfg(hidden_dims=[64, 64], actor_lr=3e-3, ema_decay=0.0, **overrides), 3, 2, 300)
    return agent, _train(agent, obs, act, 300), (obs, act, w)


def test_consistency_bc_decreases_its_loss_and_imitates():
    agent, losses, (_, _, w) = _imitation_run(algo="consistency_bc", consistency=FAST, act_sampling_steps=1)
    first, last = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
    assert last < 0.2 * first
    assert _imitation_error(agent, w) < 0.08


def test_ict_preset_end_to_end():
    agent, losses, (obs, act, w) = _imitation_run(algo="consistency_ac", consistency=ICT, eta=0.0)
    assert agent.teacher is None  # stop-gradient teacher
    assert agent.objective.num_scales(0) == 11  # min(10, 1280) + 1
    assert all(math.isfinite(x) for x in losses)
    metrics = agent.update(Batch(obs[:8], act[:8], torch.zeros(8), obs[:8], torch.zeros(8)))
    assert all(torch.isfinite(v).all() for v in metrics.values())
    state = agent.state_dict()
    assert "teacher" not in state and state["step"] == 301
    assert _imitation_error(agent, w) < 0.25  # iCT over 300 steps: ~0.1 measured


def test_eta_moves_the_policy_towards_higher_q():
    """Toy with known Q (Q(s, a) = a, see helpers.known_q_toy_means). Without the Q loss the policy
    imitates the (mean-zero) behaviour; with eta = 1 it moves to a -> 1."""
    means = known_q_toy_means(lambda eta: small_cfg(consistency=FAST, eta=eta, discount=0.0, actor_lr=1e-3,
                                                    critic_lr=3e-3, ema_decay=0.0), steps=120, q_tolerance=0.1)
    assert abs(means[0.0]) < 0.2
    assert means[1.0] > 0.6
    assert means[1.0] - means[0.0] > 0.5


# --------------------------------------------------------------------------------------------------
# averages: EMA teacher, acting EMA, target critics
# --------------------------------------------------------------------------------------------------
def test_ct_teacher_ema_uses_mu_of_the_global_step():
    agent = make_agent(small_cfg(algo="consistency_bc", consistency=CT, ema_decay=0.0), 3, 2, 1000)
    batch = toy_batch()
    agent.update(batch)  # make teacher != student
    teacher_before = params(agent.teacher)
    agent.update(batch)  # step k = 1: N = 6 (see test_consistency), mu = exp(2 ln 0.9 / 6) = 0.9 ** (1/3) = 0.9654894
    mu = 0.9654894
    for t0, t1, p in zip(teacher_before, agent.teacher.parameters(), agent.policy.parameters()):
        torch.testing.assert_close(t1, mu * t0 + (1 - mu) * p.detach(), rtol=1e-5, atol=1e-6)


def test_acting_ema_copies_before_start_then_averages():
    agent = make_agent(small_cfg(algo="consistency_bc", ema_decay=0.9, ema_start_step=2), 3, 2, 100)
    batch = toy_batch()
    agent.update(batch)
    agent.update(batch)  # steps 0 and 1: plain copies
    assert_same(params(agent.ema_policy), params(agent.policy))
    before = params(agent.ema_policy)
    agent.update(batch)  # step 2: ema = 0.9 ema + 0.1 theta
    for e0, e1, p in zip(before, agent.ema_policy.parameters(), agent.policy.parameters()):
        torch.testing.assert_close(e1, 0.9 * e0 + 0.1 * p.detach(), rtol=1e-5, atol=1e-7)
    assert agent.acting_policy is agent.ema_policy
    no_ema = make_agent(small_cfg(algo="consistency_bc", ema_decay=0.0), 3, 2, 100)
    assert no_ema.ema_policy is None and no_ema.acting_policy is no_ema.policy


def test_target_critic_polyak_update():
    agent = make_agent(small_cfg(tau=0.25), 3, 2, 100)
    batch = toy_batch()
    agent.update(batch)
    before = params(agent.critic_target)
    agent.update(batch)
    # Q' <- 0.75 Q' + 0.25 Q
    for t0, t1, q in zip(before, agent.critic_target.parameters(), agent.critic.parameters()):
        torch.testing.assert_close(t1, 0.75 * t0 + 0.25 * q.detach(), rtol=1e-5, atol=1e-7)
    assert all(not p.requires_grad for p in agent.critic_target.parameters())


# --------------------------------------------------------------------------------------------------
# acting
# --------------------------------------------------------------------------------------------------
def _loud(agent) -> None:
    with torch.no_grad():
        for p in agent.policy.parameters():
            p.mul_(3.0)
    agent.ema_policy.load_state_dict(agent.policy.state_dict())


class LinearQ(nn.Module):
    """Q_k(s, a) = a_0 for both members."""

    def forward(self, obs: Tensor, action: Tensor) -> Tensor:
        return action[:, 0].expand(2, -1)


def test_act_with_candidates_picks_the_best_and_stays_bounded():
    agent = make_agent(small_cfg(act_candidates=6), 3, 2, 10)
    _loud(agent)  # raw two-step samples leave [-1, 1] (see test_policy_critic)
    agent.critic = LinearQ()
    obs = torch.randn(64, 3)
    actions = agent.act(obs, generator=torch.Generator().manual_seed(0))
    assert actions.shape == (64, 2)
    assert actions.abs().max().item() <= 1.0
    # the same candidates, drawn with the same generator: the chosen one has the largest a_0 of its state
    with torch.no_grad():
        cand = agent.acting_policy.sample(obs.repeat_interleave(6, 0), agent.act_sigmas,
                                          torch.Generator().manual_seed(0)).clamp(-1, 1).view(64, 6, 2)
    best = cand[torch.arange(64), cand[:, :, 0].argmax(1)]
    assert torch.equal(actions, best)
    single = make_agent(small_cfg(act_candidates=1), 3, 2, 10)
    _loud(single)
    one = single.act(obs)
    assert one.shape == (64, 2) and one.abs().max().item() <= 1.0


@pytest.mark.parametrize("algo,candidates", [("consistency_bc", 1), ("consistency_ac", 4)])
def test_act_temperature_scales_every_noise_draw(algo: str, candidates: int):
    agent = make_agent(small_cfg(algo=algo, act_candidates=candidates, act_temperature=0.5), 3, 2, 10)
    _loud(agent)
    obs = torch.randn(16, 3)
    actions = agent.act(obs, generator=torch.Generator().manual_seed(0))
    noise = sampling_noise((16 * candidates, 2), 2, generator=torch.Generator().manual_seed(0))
    assert len(agent.act_sigmas) == 2
    assert torch.equal(actions, agent.select_actions(obs, [0.5 * z for z in noise]))
    assert not torch.equal(actions, agent.select_actions(obs, noise))  # the temperature did change them


def test_zero_act_temperature_is_a_deterministic_policy():
    agent = make_agent(small_cfg(algo="consistency_bc", act_temperature=0.0), 3, 2, 10)
    obs = torch.randn(16, 3)
    first = agent.act(obs, generator=torch.Generator().manual_seed(0))
    assert torch.equal(first, agent.act(obs, generator=torch.Generator().manual_seed(1)))
    zeros = [torch.zeros(16, 2), torch.zeros(16, 2)]  # x_T = 0, and no re-noising between the steps
    assert torch.equal(first, agent.select_actions(obs, zeros))


def test_training_time_actions_stay_in_the_action_box():
    torch.manual_seed(0)
    agent = make_agent(small_cfg(eta=1.0), 3, 2, 10)
    _loud(agent)  # a saturating policy, as after Q-driven training
    seen: list[Tensor] = []

    def record(module, inputs):
        seen.append(inputs[1].detach().clone())

    h1 = agent.critic.register_forward_pre_hook(record)  # data actions and a_pi (via critic.frozen)
    h2 = agent.critic_target.register_forward_pre_hook(record)  # target actions a'
    agent.update(toy_batch(n=256))
    h1.remove()
    h2.remove()
    assert len(seen) >= 3
    assert max(a.abs().max().item() for a in seen) <= 1.0


# --------------------------------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------------------------------
def _all_state_tensors(agent) -> list[Tensor]:
    out = []
    for name in ("policy", "teacher", "ema_policy", "critic", "critic_target"):
        module = getattr(agent, name, None)
        if module is not None:
            out += params(module)
    for opt in (agent.actor_optimizer, getattr(agent, "critic_optimizer", None)):
        if opt is None:
            continue
        for state in opt.state_dict()["state"].values():
            out += [v.clone() if torch.is_tensor(v) else torch.tensor(float(v)) for _, v in sorted(state.items())]
    return out


@pytest.mark.parametrize("algo", ["consistency_bc", "consistency_ac"])
def test_state_dict_round_trip(algo):
    cfg = small_cfg(algo=algo, min_lr_ratio=0.0, ema_decay=0.5, ema_start_step=1)
    torch.manual_seed(0)
    a = make_agent(cfg, 3, 2, 50)
    batch = toy_batch()
    for _ in range(4):
        a.update(batch)
    state = copy.deepcopy(a.state_dict())
    torch.manual_seed(123)
    b = make_agent(cfg, 3, 2, 50)
    assert not all(torch.equal(x, y) for x, y in zip(params(a.policy), params(b.policy)))
    b.load_state_dict(state)
    assert b.step == 4
    assert_same(_all_state_tensors(a), _all_state_tensors(b))
    assert b.actor_scheduler.last_epoch == a.actor_scheduler.last_epoch == 4
    assert b.actor_optimizer.param_groups[0]["lr"] == a.actor_optimizer.param_groups[0]["lr"]
    # both continue identically (optimiser moments, step counts, lr and curriculum all restored)
    torch.manual_seed(7)
    ma = a.update(batch)
    torch.manual_seed(7)
    mb = b.update(batch)
    assert_same(_all_state_tensors(a), _all_state_tensors(b))
    assert ma["loss/consistency"].item() == mb["loss/consistency"].item()


def test_load_state_dict_rejects_a_different_agent():
    bc = make_agent(small_cfg(algo="consistency_bc"), 3, 2, 10)
    ac = make_agent(small_cfg(algo="consistency_ac"), 3, 2, 10)
    with pytest.raises(CheckpointError, match="critic"):
        ac.load_state_dict(bc.state_dict())
    wide = make_agent(small_cfg(algo="consistency_bc", hidden_dims=[16]), 3, 2, 10)
    with pytest.raises(CheckpointError, match="policy"):
        bc.load_state_dict(wide.state_dict())


def test_curriculum_continues_from_the_restored_global_step():
    cfg = small_cfg(algo="consistency_bc", consistency=CT)
    a = make_agent(cfg, 3, 2, 1000)
    batch = toy_batch()
    assert a.update(batch)["consistency/num_scales"].item() == 2  # N(0) = 2
    for _ in range(2):
        a.update(batch)
    b = make_agent(cfg, 3, 2, 1000)
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    # k = 3: sqrt(0.003 * 22797 + 4) = sqrt(72.391) = 8.5083; -1 -> 7.5083; ceil 8; +1 = 9
    assert b.update(batch)["consistency/num_scales"].item() == 9
    state = b.state_dict()
    state["step"] = 250
    b.load_state_dict(state)
    recorded = _spy_pairs(b)
    # k = 250: N = 76 (see test_consistency); indices n in [0, 74]
    assert b.update(toy_batch(n=4096))["consistency/num_scales"].item() == 76
    assert int(recorded[0].index.max()) <= 74 and int(recorded[0].index.max()) >= 60
    assert b.step == 251
