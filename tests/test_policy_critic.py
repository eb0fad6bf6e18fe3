"""Tests of ConsistencyPolicy (boundary condition, bounds, sampling) and QEnsemble (shapes, frozen)."""
from __future__ import annotations

import math

import pytest
import torch

from cmrl.consistency import CT, c_skip, karras_sigmas
from cmrl.critics import QEnsemble
from cmrl.policies import ConsistencyPolicy

EPS, T = 0.002, 80.0
S, A = 5, 3


def make_policy(seed: int = 0, bounded: bool = True, scale: float = 1.0) -> ConsistencyPolicy:
    torch.manual_seed(seed)
    policy = ConsistencyPolicy(S, A, [32, 32], 8, CT, bounded=bounded)
    if scale != 1.0:
        with torch.no_grad():
            for p in policy.parameters():
                p.mul_(scale)
    return policy


# --------------------------------------------------------------------------------------------------
# ConsistencyPolicy
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bounded", [True, False])
def test_policy_boundary_condition_is_exact(bounded):
    policy = make_policy(bounded=bounded, scale=3.0)  # a loud random network
    obs = torch.randn(256, S)
    x = torch.rand(256, A) * 2 - 1
    x[0] = torch.tensor([0.9, -0.9, 1.0])  # GUIDE pitfall: the seed code returned 0.615 for 0.9
    for sigma in (torch.full((256, 1), EPS), karras_sigmas(151, EPS, T, 7.0).float()[:1].expand(256, 1)):
        with torch.no_grad():
            f = policy(x, sigma, obs)
            assert torch.equal(f, x)
        # and away from the boundary the network does act (the identity is not trivial)
        with torch.no_grad():
            f1 = policy(x, torch.full((256, 1), 1.0), obs)
        assert (f1 - x).abs().mean() > 0.05


def test_policy_shapes_and_bounded_range_for_clean_inputs():
    policy = make_policy(scale=3.0)
    obs = torch.randn(1000, S)
    x = torch.rand(1000, A) * 2 - 1
    sigma = karras_sigmas(151, EPS, T, 7.0).float()[torch.randint(0, 151, (1000,))].unsqueeze(-1)
    with torch.no_grad():
        f = policy(x, sigma, obs)
    assert f.shape == (1000, A)
    assert f.abs().max().item() <= 1.0


def test_policy_first_step_is_not_saturated():
    """At sigma_max the network sees c_in * (T z) with unit std, and the samples are not pinned at +-1."""
    policy = make_policy(seed=1)
    obs = torch.randn(4096, S)
    seen = {}

    def hook(module, inputs, output):
        seen["x"] = inputs[0].detach()

    handle = policy.net[0].register_forward_hook(hook)
    with torch.no_grad():
        a = policy.sample(obs, [T], generator=torch.Generator().manual_seed(0))
    handle.remove()
    x_in = seen["x"][:, :A]  # the first A inputs are c_in(sigma) x
    # c_in(80) * 80 = 0.99998: unit std
    assert x_in.std().item() == pytest.approx(1.0, abs=0.05)
    assert a.shape == (4096, A)
    assert (a.abs() > 0.99).float().mean().item() < 0.05  # the seed code pinned almost all at +-1
    # the output at sigma_max is (1 - c_skip) tanh(F) + c_skip T z: c_skip(80) T z = 3.9e-5 * 80 z = 0.0031 z
    assert a.abs().max().item() < 1.0 + 5 * 80 * 3.91e-5


def test_policy_sample_is_differentiable_and_reproducible():
    policy = make_policy(seed=2)
    obs = torch.randn(16, S)
    a1 = policy.sample(obs, [T, 1.0], generator=torch.Generator().manual_seed(3))
    a2 = policy.sample(obs, [T, 1.0], generator=torch.Generator().manual_seed(3))
    assert torch.equal(a1, a2)
    a1.square().sum().backward()
    grads = [p.grad for p in policy.parameters()]
    assert all(g is not None for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


def test_policy_is_conditioned_on_the_state():
    policy = make_policy(seed=4)
    x = torch.zeros(2, A)
    sigma = torch.full((2, 1), 1.0)
    obs = torch.stack([torch.zeros(S), torch.ones(S) * 3])
    with torch.no_grad():
        f = policy(x, sigma, obs)
    assert not torch.allclose(f[0], f[1])


def test_bounded_form_is_not_bounded_for_noisy_inputs():
    """The property behind the xfail in test_agents (training-time actions): the bounded form is a convex
    combination only for clean inputs. At tau_2 = 2.5149 (the default second sampling step) c_skip = 0.0381,
    so the noisy input x_hat = x + 2.515 z leaks through: with x_hat = 6 and tanh F = 1,
    f = 0.0381 * 6 + 0.9619 = 1.19. Whatever uses multistep samples must clamp them."""
    tau2 = ((EPS ** (1 / 7) + T ** (1 / 7)) / 2) ** 7
    cs = c_skip(torch.tensor(tau2, dtype=torch.float64), EPS, 0.5).item()
    # 0.25 / ((2.5149 - 0.002)^2 + 0.25) = 0.25 / 6.5647 = 0.03808
    assert cs == pytest.approx(0.25 / ((tau2 - EPS) ** 2 + 0.25), rel=1e-12)
    assert cs == pytest.approx(0.0381, abs=2e-4)
    policy = make_policy(seed=5, scale=3.0)  # a saturating network: tanh F near +-1
    obs = torch.randn(4096, S)
    x_hat = (torch.rand(4096, A) * 2 - 1) + tau2 * torch.randn(4096, A)  # x + sqrt(tau^2 - eps^2) z
    with torch.no_grad():
        f = policy(x_hat, torch.full((4096, 1), tau2), obs)
    assert f.abs().max().item() > 1.0
    # |f| <= c_skip |x_hat| + (1 - c_skip)
    bound = cs * x_hat.abs() + (1 - cs)
    assert bool((f.abs() <= bound + 1e-6).all())


# --------------------------------------------------------------------------------------------------
# QEnsemble
# --------------------------------------------------------------------------------------------------
def test_q_ensemble_shapes_and_member_independence():
    torch.manual_seed(7)
    q = QEnsemble(S, A, [16, 16], ensemble_size=4)
    obs, act = torch.randn(9, S), torch.rand(9, A) * 2 - 1
    out = q(obs, act)
    assert out.shape == (4, 9)
    assert not torch.allclose(out[0], out[1])  # independently initialised members
    assert QEnsemble(S, A, [16], ensemble_size=1)(obs, act).shape == (1, 9)
    assert q(obs[:1], act[:1]).shape == (4, 1)  # a batch of one keeps its batch dimension
    with pytest.raises(ValueError):
        QEnsemble(S, A, [16], ensemble_size=0)


def test_q_ensemble_frozen_gives_grad_to_actions_only():
    torch.manual_seed(8)
    q = QEnsemble(S, A, [16, 16], ensemble_size=2)
    obs = torch.randn(6, S)
    act = (torch.rand(6, A) * 2 - 1).requires_grad_(True)
    frozen = q.frozen(obs, act)
    torch.testing.assert_close(frozen, q(obs, act))  # same values as the live critic
    frozen.mean().backward()
    assert all(p.grad is None for p in q.parameters())
    assert act.grad is not None and act.grad.abs().sum() > 0
    # while the ordinary forward does train the critic
    q(obs, act.detach()).mean().backward()
    assert all(p.grad is not None for p in q.parameters())


def test_q_ensemble_frozen_action_gradient_matches_live_critic():
    torch.manual_seed(9)
    q = QEnsemble(S, A, [16], ensemble_size=3)
    obs = torch.randn(4, S)
    a1 = torch.rand(4, A).requires_grad_(True)
    a2 = a1.detach().clone().requires_grad_(True)
    q.frozen(obs, a1).sum().backward()
    q(obs, a2).sum().backward()
    torch.testing.assert_close(a1.grad, a2.grad)
    assert math.isfinite(float(a1.grad.abs().sum()))
