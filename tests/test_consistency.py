"""Tests of cmrl.consistency against hand-computed values (the arithmetic is in the comments).

Every expected number here is derived from the papers' formulas written out independently of the
library (with `math`), never by re-running the implementation.
"""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from cmrl.consistency import (
    CT,
    ICT,
    ConsistencyConfig,
    ConsistencyTraining,
    NoisePairs,
    c_in,
    c_noise,
    c_out,
    c_skip,
    consistency_output,
    ct_num_scales,
    ct_teacher_ema,
    default_huber_c,
    default_sampling_sigmas,
    ict_num_scales,
    inverse_delta_weight,
    karras_sigmas,
    lognormal_index_probs,
    multistep_sample,
    network_inputs,
    pseudo_huber,
    squared_l2,
    uniform_indices,
)

EPS, T, RHO, SD = 0.002, 80.0, 7.0, 0.5


def t64(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


# --------------------------------------------------------------------------------------------------
# Karras grid
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [2, 3, 11, 151, 1281])
def test_karras_grid_endpoints_exact_and_ascending(n):
    s = karras_sigmas(n, EPS, T, RHO)
    assert s.shape == (n,)
    assert s[0].item() == EPS  # bit-exact boundary
    assert s[-1].item() == T
    assert bool((s[1:] > s[:-1]).all())


def test_karras_grid_middle_point_by_hand():
    # N = 3: sigma_2 = ((eps^(1/7) + T^(1/7)) / 2)^7
    #   eps^(1/7) = exp(ln 0.002 / 7) = exp(-0.887799) = 0.411541
    #   T^(1/7)   = exp(ln 80 / 7)    = exp( 0.626001) = 1.870093
    #   mean 1.140817, ^7 = exp(7 * 0.131744) = 2.5149
    mid = ((EPS ** (1 / 7) + T ** (1 / 7)) / 2) ** 7
    assert mid == pytest.approx(2.5149, abs=5e-4)
    s = karras_sigmas(3, EPS, T, RHO)
    assert s[1].item() == pytest.approx(mid, rel=1e-12)


def test_karras_grid_rejects_single_point():
    with pytest.raises(ValueError):
        karras_sigmas(1, EPS, T, RHO)


# --------------------------------------------------------------------------------------------------
# scalings
# --------------------------------------------------------------------------------------------------
def test_scalings_at_sigma_min_are_exact():
    s = t64(EPS)
    assert c_skip(s, EPS, SD).item() == 1.0  # 0.25 / (0 + 0.25)
    assert c_out(s, EPS, SD).item() == 0.0  # 0.5 * 0 / ...
    s32 = torch.tensor([EPS], dtype=torch.float32)  # what the float32 training grid holds
    assert c_skip(s32, EPS, SD).item() == 1.0
    assert c_out(s32, EPS, SD).item() == 0.0
    # c_in(eps) = 1 / sqrt(0.002^2 + 0.25) = 1 / 0.500004 = 1.999984
    assert c_in(s, SD).item() == pytest.approx(1.999984, rel=1e-6)


def test_scalings_at_sigma_max_by_hand():
    s = t64(T)
    # c_skip(80) = 0.25 / ((80 - 0.002)^2 + 0.25) = 0.25 / (6399.680004 + 0.25) = 3.906293e-5
    assert c_skip(s, EPS, SD).item() == pytest.approx(0.25 / 6399.930004, rel=1e-9)
    assert c_skip(s, EPS, SD).item() == pytest.approx(3.906293e-5, rel=1e-6)
    # c_out(80) = 0.5 * 79.998 / sqrt(0.25 + 6400) = 39.999 / 80.0015625 = 0.4999777
    assert c_out(s, EPS, SD).item() == pytest.approx(39.999 / 80.0015625, rel=1e-7)
    # c_in(80) = 1 / sqrt(6400.25) = 1 / 80.0015625 = 0.012499756
    assert c_in(s, SD).item() == pytest.approx(0.012499756, rel=1e-7)


def test_c_noise_by_hand():
    # c_noise = ln(sigma) / 4: ln 80 / 4 = 4.382027 / 4 = 1.095507; ln 0.002 / 4 = -6.214608 / 4 = -1.553652
    assert c_noise(t64(T)).item() == pytest.approx(1.095507, abs=1e-6)
    assert c_noise(t64(EPS)).item() == pytest.approx(-1.553652, abs=1e-6)
    assert c_noise(t64(1.0)).item() == 0.0


# --------------------------------------------------------------------------------------------------
# parameterisation: boundary condition and bounds
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bounded", [True, False])
def test_boundary_condition_is_exact(bounded):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1000, 3, generator=g) * 4 - 2  # also outside [-1, 1]: the boundary must hold anyway
    x[0] = torch.tensor([0.9, -0.9, 1.0])  # the GUIDE pitfall: the seed code returned 0.615 for 0.9
    net_out = torch.randn(1000, 3, generator=g) * 30  # a wild network output
    sigma = torch.full((1000, 1), EPS)
    f = consistency_output(x, sigma, net_out, EPS, SD, bounded)
    assert torch.equal(f, x)
    assert f[0, 0].item() == torch.tensor(0.9).item()  # float32 0.9 to the bit, not tanh(tanh(0.9)) = 0.6146


@pytest.mark.parametrize("bounded", [True, False])
def test_boundary_condition_with_a_random_network(bounded):
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(3 + 1, 64), torch.nn.Tanh(), torch.nn.Linear(64, 3))
    with torch.no_grad():  # make the network's output large so that any leak of F would show
        for p in net.parameters():
            p.mul_(10.0)
    grid = karras_sigmas(11, EPS, T, RHO).float()
    x = torch.rand(500, 3) * 2 - 1
    x[0, 0] = 0.9
    sigma = grid[:1].expand(500, 1)  # the float32 grid's first point, as the trainer uses it
    x_in, t = network_inputs(x, sigma, SD)
    out = net(torch.cat([x_in, t], -1))
    assert out.abs().max() > 5.0
    f = consistency_output(x, sigma, out, EPS, SD, bounded)
    assert torch.equal(f, x)
    assert f[0, 0].item() == torch.tensor(0.9).item()


def test_bounded_output_stays_in_unit_interval_for_clean_inputs():
    g = torch.Generator().manual_seed(2)
    n = 100_000
    x = torch.rand(n, 2, generator=g) * 2 - 1
    x[:500] = 1.0  # the extremes, with the network pushing the same way
    x[500:1000] = -1.0
    net_out = torch.randn(n, 2, generator=g) * 50
    net_out[:500] = 100.0
    net_out[500:1000] = -100.0
    sigma = torch.exp(torch.rand(n, 1, generator=g) * (math.log(T) - math.log(EPS)) + math.log(EPS))
    f = consistency_output(x, sigma, net_out, EPS, SD, bounded=True)
    assert f.abs().max().item() <= 1.0
    # bounded output reaches close to the whole interval at large sigma ((1 - c_skip) tanh, not c_out)
    big = consistency_output(torch.zeros(1, 1), t64(T).float().view(1, 1), torch.full((1, 1), 100.0), EPS, SD, True)
    assert big.item() == pytest.approx(1.0 - 3.906293e-5, abs=1e-6)


def test_unbounded_output_by_hand():
    # sigma = 1: c_skip = 0.25 / (0.998^2 + 0.25) = 0.25 / 1.246004 = 0.2006414
    #            c_out  = 0.5 * 0.998 / sqrt(1.25) = 0.499 / 1.1180340 = 0.4463196
    # f(x=0.4, F=2) = 0.2006414 * 0.4 + 0.4463196 * 2 = 0.0802566 + 0.8926392 = 0.9728958
    f = consistency_output(t64(0.4).view(1, 1), t64(1.0).view(1, 1), t64(2.0).view(1, 1), EPS, SD, False)
    assert f.item() == pytest.approx(0.9728958, abs=1e-6)
    # bounded: 0.2006414 * 0.4 + 0.7993586 * tanh(2) = 0.0802566 + 0.7993586 * 0.9640276 = 0.8508603
    fb = consistency_output(t64(0.4).view(1, 1), t64(1.0).view(1, 1), t64(2.0).view(1, 1), EPS, SD, True)
    assert fb.item() == pytest.approx(0.8508603, abs=1e-6)


def test_network_input_has_unit_std_at_sigma_max():
    g = torch.Generator().manual_seed(3)
    x = T * torch.randn(20_000, 4, generator=g)  # pure noise of the first sampling step
    x_in, t = network_inputs(x, torch.full((20_000, 1), T), SD)
    # c_in(80) * 80 = 80 / 80.0015625 = 0.99998: unit std, nothing saturates
    assert x_in.std().item() == pytest.approx(1.0, abs=0.02)
    assert (x_in.abs() > 3).float().mean().item() < 0.01
    assert t[0].item() == pytest.approx(1.095507, abs=1e-5)


# --------------------------------------------------------------------------------------------------
# curricula
# --------------------------------------------------------------------------------------------------
def test_ct_num_scales_by_hand():
    K = 1000
    assert ct_num_scales(0, K) == 2  # ceil(sqrt(0 + 4) - 1) + 1 = 1 + 1
    assert ct_num_scales(K, K) == 151  # ceil(sqrt(151^2) - 1) + 1 = 150 + 1
    # k = 250: sqrt(0.25 * (22801 - 4) + 4) = sqrt(5703.25) = 75.5198; -1 = 74.5198; ceil 75; +1 = 76
    assert ct_num_scales(250, K) == 76
    # k = 1: sqrt(0.001 * 22797 + 4) = sqrt(26.797) = 5.1766; -1 = 4.1766; ceil 5; +1 = 6
    assert ct_num_scales(1, K) == 6
    assert ct_num_scales(5 * K, K) == 151  # past the end: stays at s1 + 1


def test_ict_num_scales_by_hand():
    K = 100_000
    # K' = floor(100000 / (log2 floor(1280 / 10) + 1)) = floor(100000 / (7 + 1)) = 12500
    assert ict_num_scales(0, K) == 11  # min(10 * 2^0, 1280) + 1
    assert ict_num_scales(12_499, K) == 11  # floor(12499 / 12500) = 0
    assert ict_num_scales(12_500, K) == 21  # 10 * 2 + 1
    assert ict_num_scales(37_500, K) == 81  # 10 * 2^3 + 1
    assert ict_num_scales(87_500, K) == 1281  # 10 * 2^7 = 1280
    assert ict_num_scales(K, K) == 1281  # 10 * 2^8 = 2560, capped at 1280
    # a non-power-of-two ratio: s0 = 10, s1 = 1000: floor(100) -> log2 100 = 6.6439; K' = floor(1000 / 7.6439) = 130
    assert ict_num_scales(129, 1000, 10, 1000) == 11
    assert ict_num_scales(130, 1000, 10, 1000) == 21


def test_ct_teacher_ema_by_hand():
    # mu = exp(s0 ln(mu0) / N): N = 2 -> exp(ln 0.9) = 0.9
    assert ct_teacher_ema(2) == pytest.approx(0.9, rel=1e-12)
    # N = 151: exp(2 * (-0.1053605) / 151) = exp(-0.00139550) = 0.9986055
    assert ct_teacher_ema(151) == pytest.approx(0.9986055, abs=1e-7)


def test_objective_curriculum_follows_the_global_step():
    ct = ConsistencyTraining(CT, total_steps=1000, data_dim=2)
    assert [ct.num_scales(k) for k in (0, 1, 250, 1000)] == [2, 6, 76, 151]
    # mu(k) follows N(k): at k = 250, N = 76 -> exp(2 ln 0.9 / 76) = exp(-0.00277265) = 0.9972312
    assert ct.teacher_decay(250) == pytest.approx(0.9972312, abs=1e-7)
    ict = ConsistencyTraining(ICT, total_steps=100_000, data_dim=2)
    assert [ict.num_scales(k) for k in (0, 12_499, 12_500, 87_500, 100_000)] == [11, 11, 21, 1281, 1281]
    assert ict.teacher_decay(0) is None  # stop-gradient teacher
    fixed = ConsistencyTraining(dataclasses.replace(CT, curriculum="fixed", s1=40), 1000, 2)
    assert fixed.num_scales(0) == fixed.num_scales(999) == 41
    # the grid the sampler draws from has N(k) points
    pairs = ct.sample_pairs(4096, 2, 250, torch.device("cpu"))
    assert int(pairs.index.max()) <= 74 and int(pairs.index.min()) >= 0


# --------------------------------------------------------------------------------------------------
# noise-index sampling
# --------------------------------------------------------------------------------------------------
def test_uniform_indices_cover_zero_to_n_minus_two():
    g = torch.Generator().manual_seed(4)
    idx = uniform_indices(20_000, 5, g)
    assert set(idx.tolist()) == {0, 1, 2, 3}  # n in [0, N-2]: both sigma_n and sigma_{n+1} on the grid
    assert uniform_indices(1000, 2, g).eq(0).all()  # N = 2: only the pair (eps, T)


def test_lognormal_probs_by_hand():
    sig = t64(0.002, 0.1, 1.0, 80.0)
    # p_i proportional to erf((ln s_{i+1} + 1.1) / (2 sqrt 2)) - erf((ln s_i + 1.1) / (2 sqrt 2))
    #   ln: -6.214608, -2.302585, 0, 4.382027
    #   args: -1.808287, -0.425178, 0.388909, 1.938189
    #   erf: -0.989451, -0.452355, 0.417681, 0.993875
    cdf = [math.erf((math.log(s) + 1.1) / (2.0 * math.sqrt(2.0))) for s in (0.002, 0.1, 1.0, 80.0)]
    assert cdf == pytest.approx([-0.989451, -0.452355, 0.417681, 0.993875], abs=2e-6)
    mass = [b - a for a, b in zip(cdf[:-1], cdf[1:])]  # 0.537096, 0.870035, 0.576194 (sum 1.983326)
    expected = [m / sum(mass) for m in mass]  # 0.270806, 0.438675, 0.290519
    assert expected == pytest.approx([0.270806, 0.438675, 0.290519], abs=2e-6)
    p = lognormal_index_probs(sig, -1.1, 2.0)
    assert p.shape == (3,)
    assert p.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert p.tolist() == pytest.approx(expected, abs=1e-9)


def test_lognormal_sampling_frequencies_match_probabilities():
    cfg = dataclasses.replace(ICT)
    obj = ConsistencyTraining(cfg, total_steps=100_000, data_dim=1)
    n = 200_000
    torch.manual_seed(5)
    pairs = obj.sample_pairs(n, 1, step=0, device=torch.device("cpu"))  # N = 11, 10 pairs
    sigmas = karras_sigmas(11, EPS, T, RHO)
    # expected probabilities from the erf formula written out here
    cdf = [math.erf((math.log(s) + 1.1) / (2.0 * math.sqrt(2.0))) for s in sigmas.tolist()]
    mass = [b - a for a, b in zip(cdf[:-1], cdf[1:])]
    probs = [m / sum(mass) for m in mass]
    counts = torch.bincount(pairs.index, minlength=10).tolist()
    assert len(counts) == 10
    chi2 = sum((c - n * p) ** 2 / (n * p) for c, p in zip(counts, probs))
    assert chi2 < 35.0  # chi-square with 9 dof: the 0.9999 quantile is about 33.7
    # and the pairs really sit on the grid, adjacent
    assert torch.allclose(pairs.sigma.squeeze(-1).double(), sigmas[pairs.index].float().double())
    assert torch.allclose(pairs.sigma_next.squeeze(-1).double(), sigmas[pairs.index + 1].float().double())


def test_noise_pairs_share_z():
    obj = ConsistencyTraining(CT, total_steps=100, data_dim=3)
    torch.manual_seed(6)
    pairs = obj.sample_pairs(512, 3, step=60, device=torch.device("cpu"))
    assert isinstance(pairs, NoisePairs)
    assert pairs.z.shape == (512, 3) and pairs.sigma.shape == (512, 1) and pairs.sigma_next.shape == (512, 1)
    assert bool((pairs.sigma_next > pairs.sigma).all())
    x0 = torch.rand(512, 3) * 2 - 1
    dz_student = (pairs.student_input(x0) - x0) / pairs.sigma_next
    dz_teacher = (pairs.teacher_input(x0) - x0) / pairs.sigma
    assert torch.allclose(dz_student, pairs.z, atol=1e-4)
    assert torch.allclose(dz_teacher, pairs.z, rtol=1e-3, atol=1e-2)  # eps = 0.002 amplifies rounding
    assert torch.allclose(pairs.student_input(x0), x0 + pairs.sigma_next * pairs.z)
    assert torch.allclose(pairs.teacher_input(x0), x0 + pairs.sigma * pairs.z)


# --------------------------------------------------------------------------------------------------
# metrics and weights
# --------------------------------------------------------------------------------------------------
def test_squared_l2_by_hand():
    x = torch.tensor([[1.0, 2.0], [0.5, -0.5]])
    y = torch.tensor([[0.0, 0.0], [0.0, 0.5]])
    # row 1: 1 + 4 = 5; row 2: 0.25 + 1 = 1.25
    assert squared_l2(x, y).tolist() == pytest.approx([5.0, 1.25])


def test_pseudo_huber_by_hand():
    # d = 4: c = 0.00054 * sqrt(4) = 0.00108
    assert default_huber_c(4) == pytest.approx(0.00108, rel=1e-12)
    assert default_huber_c(3) == pytest.approx(0.00054 * 1.7320508, rel=1e-7)
    x = t64(0.3, 0.0, 0.0, 0.4).view(1, 4)
    y = torch.zeros(1, 4, dtype=torch.float64)
    # ||x - y||^2 = 0.25; sqrt(0.25 + 0.00108^2) - 0.00108 = 0.5000011664 - 0.00108 = 0.4989211664
    assert pseudo_huber(x, y, 0.00108).item() == pytest.approx(0.4989211664, abs=1e-9)
    assert pseudo_huber(y, y, 0.00108).item() == 0.0
    # c = 1: sqrt(0.25 + 1) - 1 = 0.1180340
    assert pseudo_huber(x, y, 1.0).item() == pytest.approx(0.1180340, abs=1e-7)


def test_inverse_delta_weight_by_hand():
    # 1 / (1.5 - 1.0) = 2; 1 / (80 - 40) = 0.025
    w = inverse_delta_weight(t64(1.0, 40.0), t64(1.5, 80.0))
    assert w.tolist() == pytest.approx([2.0, 0.025])


def _pairs(sigma: float, sigma_next: float) -> NoisePairs:
    return NoisePairs(z=torch.zeros(1, 2), sigma=torch.tensor([[sigma]]), sigma_next=torch.tensor([[sigma_next]]),
                      index=torch.zeros(1, dtype=torch.long))


@pytest.mark.parametrize(
    "metric,weighting,huber_c,expected",
    [
        ("l2", "uniform", None, 0.25),  # ||(0.3, 0.4)||^2 = 0.25
        ("l2", "inverse_delta", None, 1.0),  # 0.25 / (1.25 - 1.0)
        ("pseudo_huber", "uniform", 0.1, 0.4099020),  # sqrt(0.25 + 0.01) - 0.1 = 0.5099020 - 0.1
        ("pseudo_huber", "inverse_delta", 0.1, 1.6396078),  # 0.4099020 * 4
        # default c for data_dim 2: 0.00054 sqrt 2 = 0.000763675; sqrt(0.25 + 5.832e-7) - c = 0.499236908
        ("pseudo_huber", "uniform", None, 0.499236908),
    ],
)
def test_objective_loss_by_hand(metric, weighting, huber_c, expected):
    cfg = dataclasses.replace(CT, metric=metric, weighting=weighting, huber_c=huber_c)
    obj = ConsistencyTraining(cfg, total_steps=10, data_dim=2)
    student = torch.tensor([[0.3, 0.4]], requires_grad=True)
    teacher = torch.zeros(1, 2, requires_grad=True)
    loss = obj.loss(student, teacher, _pairs(1.0, 1.25))
    assert loss.shape == (1,)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    loss.sum().backward()
    assert teacher.grad is None  # theta^- gets no gradient
    assert student.grad is not None and student.grad.abs().sum() > 0


def test_consistency_config_validate_names_the_key():
    with pytest.raises(ValueError, match=r"consistency\.metric"):
        ConsistencyConfig(metric="l1").validate()
    with pytest.raises(ValueError, match=r"consistency\.teacher_mu0"):
        ConsistencyConfig(teacher_mu0=1.0).validate()
    with pytest.raises(ValueError, match="sigma_min"):
        ConsistencyConfig(sigma_min=100.0).validate()
    ICT.validate()
    CT.validate()
    # the presets hold the papers' settings
    assert (ICT.s0, ICT.s1, ICT.p_mean, ICT.p_std, ICT.teacher) == (10, 1280, -1.1, 2.0, "stopgrad")
    assert (CT.s0, CT.s1, CT.teacher_mu0, CT.teacher, CT.metric) == (2, 150, 0.9, "ema", "l2")


# --------------------------------------------------------------------------------------------------
# sampling
# --------------------------------------------------------------------------------------------------
def test_default_sampling_sigmas_by_hand():
    mid = ((EPS ** (1 / 7) + T ** (1 / 7)) / 2) ** 7  # 2.5149, see test_karras_grid_middle_point_by_hand
    assert default_sampling_sigmas(1, EPS, T, RHO) == [T]
    two = default_sampling_sigmas(2, EPS, T, RHO)
    assert len(two) == 2 and two[0] == T and two[1] == pytest.approx(mid, rel=1e-12)
    with pytest.raises(ValueError):
        default_sampling_sigmas(0, EPS, T, RHO)


def _fake_f(calls: list):
    def f(x, sigma):
        calls.append((x.clone(), sigma.clone()))
        return 0.1 * x + sigma.tanh() * 0.3  # any deterministic function of (x, sigma)
    return f


def test_one_step_sample_is_f_of_scaled_noise():
    calls: list = []
    out = multistep_sample(_fake_f(calls), (5, 3), [T], EPS, generator=torch.Generator().manual_seed(7))
    z = torch.randn(5, 3, generator=torch.Generator().manual_seed(7))
    assert out.shape == (5, 3)
    assert len(calls) == 1
    assert torch.allclose(calls[0][0], T * z)
    assert calls[0][1].shape == (5, 1) and bool((calls[0][1] == T).all())
    assert torch.allclose(out, 0.1 * T * z + math.tanh(T) * 0.3)


def test_two_step_sample_follows_algorithm_1_by_hand():
    # tau_2 = 0.004, close to eps so that sqrt(tau^2 - eps^2) differs clearly from tau:
    # sqrt(0.004^2 - 0.002^2) = sqrt(1.6e-5 - 4e-6) = sqrt(1.2e-5) = 0.00346410
    for tau2, scale in ((0.004, 0.00346410), (2.0, 1.999999)):  # sqrt(4 - 4e-6) = 1.999999
        calls: list = []
        out = multistep_sample(_fake_f(calls), (4, 2), [T, tau2], EPS, dtype=torch.float64,
                               generator=torch.Generator().manual_seed(8))
        g = torch.Generator().manual_seed(8)
        z1 = torch.randn(4, 2, generator=g, dtype=torch.float64)
        z2 = torch.randn(4, 2, generator=g, dtype=torch.float64)
        x1 = 0.1 * (T * z1) + math.tanh(T) * 0.3  # x <- f(T z, T)
        x_hat = x1 + scale * z2  # x_hat = x + sqrt(tau^2 - eps^2) z
        x2 = 0.1 * x_hat + math.tanh(tau2) * 0.3  # x <- f(x_hat, tau)
        assert len(calls) == 2
        torch.testing.assert_close(calls[1][0], x_hat, rtol=0, atol=1e-7)
        assert bool((calls[1][1] == tau2).all())
        torch.testing.assert_close(out, x2, rtol=0, atol=1e-7)


def test_multistep_sample_is_differentiable_and_checks_sigmas():
    w = torch.tensor(0.5, requires_grad=True)
    out = multistep_sample(lambda x, s: w * x, (3, 1), [T, 1.0], EPS)
    out.sum().backward()
    assert w.grad is not None and w.grad.abs() > 0
    with pytest.raises(ValueError):
        multistep_sample(lambda x, s: x, (3, 1), [T, EPS], EPS)
    with pytest.raises(ValueError):
        multistep_sample(lambda x, s: x, (3, 1), [], EPS)
