"""The EDM maths (Karras et al. 2022) and the CD teacher input, against hand computations: the
preconditioning, the loss weight, the noise levels, and the PF-ODE's Euler and Heun steps with
denoisers known in closed form (single-point and Gaussian data), where the ODE is solved exactly."""
from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from cmrl.consistency import (
    CT,
    ConsistencyConfig,
    ConsistencyDistillation,
    ConsistencyTraining,
    DiffusionConfig,
    c_in,
    c_noise,
    c_out,
    c_skip,
    edm,
    make_objective,
)
from cmrl.errors import ConfigError

MU, S = 0.3, 0.5  # the Gaussian data N(mu, s^2)


def gaussian_denoiser(x: Tensor, sigma: Tensor) -> Tensor:
    """The exact D for data N(mu, s^2): E[y | y + sigma n = x] = mu + s^2 / (s^2 + sigma^2) (x - mu)."""
    return MU + S ** 2 / (S ** 2 + sigma ** 2) * (x - MU)


def gaussian_trajectory(x: Tensor | float, sigma_from: float, sigma_to: float) -> Tensor | float:
    """The exact PF-ODE solution for N(mu, s^2):

        x(sigma) = mu + (x(sigma') - mu) sqrt((s^2 + sigma^2) / (s^2 + sigma'^2))
    """
    return MU + (x - MU) * math.sqrt((S ** 2 + sigma_to ** 2) / (S ** 2 + sigma_from ** 2))


def test_edm_scalings_by_hand():
    sigma = torch.tensor([[0.5], [2.0]], dtype=torch.float64)
    # sigma_data 0.5, sigma 0.5: c_skip 0.25/0.5, c_out 0.25/sqrt(0.5), c_in 1/sqrt(0.5), lambda 0.5/0.0625
    # sigma 2: c_skip 0.25/4.25, c_out 1/sqrt(4.25), c_in 1/sqrt(4.25), lambda 4.25/1
    assert edm.edm_c_skip(sigma, 0.5).flatten().tolist() == pytest.approx([0.5, 0.0588235294])
    assert edm.edm_c_out(sigma, 0.5).flatten().tolist() == pytest.approx([0.3535533906, 0.4850712501])
    assert c_in(sigma, 0.5).flatten().tolist() == pytest.approx([1.4142135624, 0.4850712501])
    assert c_noise(sigma).flatten().tolist() == pytest.approx([-0.1732867951, 0.1732867951])
    assert edm.edm_weight(sigma, 0.5).flatten().tolist() == pytest.approx([8.0, 4.25])
    # lambda = 1 / c_out^2, and the consistency scalings are EDM's shifted by sigma_min (equal at 0)
    torch.testing.assert_close(edm.edm_weight(sigma, 0.5), edm.edm_c_out(sigma, 0.5) ** -2)
    torch.testing.assert_close(c_skip(sigma, 0.0, 0.5), edm.edm_c_skip(sigma, 0.5))
    torch.testing.assert_close(c_out(sigma, 0.0, 0.5), edm.edm_c_out(sigma, 0.5))


def test_denoising_loss_by_hand():
    denoised, clean = torch.tensor([[0.1, 0.2], [1.0, -1.0]]), torch.tensor([[0.0, 0.0], [0.5, -0.5]])
    sigma = torch.tensor([[0.5], [2.0]])
    # 8 (0.01 + 0.04) = 0.4; 4.25 (0.25 + 0.25) = 2.125
    assert edm.denoising_loss(denoised, clean, sigma, 0.5).tolist() == pytest.approx([0.4, 2.125])


def test_lognormal_sigmas_have_the_configured_log_moments():
    sigma = edm.lognormal_sigmas(200_000, -1.2, 1.2, generator=torch.Generator().manual_seed(0))
    assert sigma.shape == (200_000, 1) and (sigma > 0).all()
    assert sigma.log().mean().item() == pytest.approx(-1.2, abs=0.01)
    assert sigma.log().std().item() == pytest.approx(1.2, abs=0.01)


def test_edm_sampling_sigmas_by_hand():
    # N = 3, rho 7: t_1 = (0.5 (0.002^(1/7) + 80^(1/7)))^7, computed by hand below
    mid = (0.5 * (0.002 ** (1 / 7) + 80 ** (1 / 7))) ** 7
    assert edm.edm_sampling_sigmas(3, 0.002, 80.0, 7.0) == pytest.approx([80.0, mid, 0.002, 0.0])
    assert edm.edm_sampling_sigmas(1, 0.002, 80.0, 7.0) == [80.0, 0.0]
    with pytest.raises(ValueError, match=">= 1"):
        edm.edm_sampling_sigmas(0, 0.002, 80.0, 7.0)


@pytest.mark.parametrize("solver", ["euler", "heun"])
def test_ode_step_is_exact_for_single_point_data(solver):
    """Data = one point a0: D = a0, dx/dsigma = (x - a0)/sigma, x(sigma) = a0 + (x' - a0) sigma / sigma'."""
    a0 = torch.tensor([[0.25, -0.5]], dtype=torch.float64)

    def denoiser(x: Tensor, sigma: Tensor) -> Tensor:
        return a0.expand_as(x)

    x = torch.tensor([[2.25, 1.5]], dtype=torch.float64)  # x - a0 = (2, 2) at sigma' = 4
    out = edm.ode_step(denoiser, x, 4.0, 1.0, solver)
    assert out.flatten().tolist() == pytest.approx([0.75, 0.0])  # a0 + 2 / 4


def test_euler_and_heun_steps_by_hand_on_gaussian_data():
    """mu 0.3, s 0.5, x' = 1.3 at sigma' = 1, one step to sigma = 0.5:
    D(1.3, 1) = 0.3 + 0.25/1.25 * 1 = 0.5, d = 0.8, Euler: 1.3 - 0.5 * 0.8 = 0.9;
    D(0.9, 0.5) = 0.3 + 0.25/0.5 * 0.6 = 0.6, d' = 0.6, Heun: 1.3 - 0.5 (0.8 + 0.6)/2 = 0.95;
    exact: 0.3 + sqrt(0.5 / 1.25) = 0.9324555."""
    x = torch.tensor([[1.3]], dtype=torch.float64)
    euler = edm.euler_step(gaussian_denoiser, x, 1.0, 0.5).item()
    heun = edm.heun_step(gaussian_denoiser, x, 1.0, 0.5).item()
    exact = gaussian_trajectory(1.3, 1.0, 0.5)
    assert euler == pytest.approx(0.9, abs=1e-12)
    assert heun == pytest.approx(0.95, abs=1e-12)
    assert exact == pytest.approx(0.9324555320, abs=1e-9)
    assert abs(heun - exact) < abs(euler - exact)
    # per-row sigmas as (B, 1) tensors, as the CD objective passes them
    rows = torch.tensor([[1.3], [1.3]], dtype=torch.float64)
    sigmas = torch.tensor([[1.0], [1.0]], dtype=torch.float64)
    assert edm.heun_step(gaussian_denoiser, rows, sigmas, sigmas / 2).flatten().tolist() == pytest.approx([0.95, 0.95])


def test_heun_sampler_follows_the_exact_ode_and_counts_2n_minus_1_evaluations():
    calls = []

    def denoiser(x: Tensor, sigma: Tensor) -> Tensor:
        calls.append(1)
        return gaussian_denoiser(x, sigma)

    x_max = torch.tensor([[80.0], [-40.0]], dtype=torch.float64)
    out = edm.heun_sample(denoiser, x_max, edm.edm_sampling_sigmas(18, 0.002, 80.0, 7.0))
    assert len(calls) == 2 * 18 - 1
    exact = gaussian_trajectory(x_max, 80.0, 0.0)
    error_18 = (out - exact).abs().max().item()
    fine = edm.heun_sample(gaussian_denoiser, x_max, edm.edm_sampling_sigmas(72, 0.002, 80.0, 7.0))
    error_72 = (fine - exact).abs().max()
    assert error_18 < 0.03  # 0.0275 measured (x - mu = 79.7 at sigma_max)
    assert error_72 < error_18 / 10  # second order: 4x the steps, ~16x less error
    # by hand: mu + (x - mu) s / sqrt(s^2 + sigma_max^2)
    scale = S / math.hypot(S, 80)
    assert exact.flatten().tolist() == pytest.approx([MU + 79.7 * scale, MU - 40.3 * scale])


def test_cd_teacher_input_is_one_ode_step_and_ct_draws_the_same_pairs():
    """CD's pairs are CT's to the bit (the ODE step draws nothing); its teacher input is the solver step
    from a + sigma_{n+1} z to sigma_n, CT's is a + sigma_n z."""
    cd_cfg = ConsistencyConfig(objective="cd", solver="euler", teacher_checkpoint="teacher.pt")
    cd = make_objective(cd_cfg, 100, 1)
    ct = make_objective(CT, 100, 1)
    assert type(cd) is ConsistencyDistillation and type(ct) is ConsistencyTraining
    pairs = cd.sample_pairs(64, 1, 50, torch.device("cpu"), torch.Generator().manual_seed(3))
    same = ct.sample_pairs(64, 1, 50, torch.device("cpu"), torch.Generator().manual_seed(3))
    for a, b in zip(pairs, same):
        assert torch.equal(a, b)
    x0 = torch.full((64, 1), 0.4)
    student_x = pairs.student_input(x0)
    slope = (student_x - gaussian_denoiser(student_x, pairs.sigma_next)) / pairs.sigma_next
    expected = student_x + (pairs.sigma - pairs.sigma_next) * slope
    torch.testing.assert_close(cd.teacher_input(pairs, x0, gaussian_denoiser), expected)
    torch.testing.assert_close(ct.teacher_input(pairs, x0, gaussian_denoiser), pairs.teacher_input(x0))
    with pytest.raises(ValueError, match="teacher denoiser"):
        cd.teacher_input(pairs, x0)


@pytest.mark.parametrize("kw,message", [
    (dict(objective="cd"), r"consistency\.objective=cd distils a diffusion_bc policy: set consistency\.teacher_che"),
    (dict(objective="ctm"), r"consistency\.objective must be one of ct, cd"),
    (dict(objective="cd", solver="rk4", teacher_checkpoint="x"), r"consistency\.solver must be one of euler, heun"),
])
def test_cd_config_errors_name_the_key(kw, message):
    with pytest.raises(ConfigError, match=message):
        ConsistencyConfig(**kw).validate()


@pytest.mark.parametrize("kw,message", [
    (dict(sigma_data=0.0), r"diffusion\.sigma_data must be > 0"),
    (dict(p_std=-1.0), r"diffusion\.p_std must be > 0"),
    (dict(sigma_min=100.0), r"diffusion: need 0 < sigma_min < sigma_max"),
])
def test_diffusion_config_errors_name_the_key(kw, message):
    with pytest.raises(ConfigError, match=message):
        DiffusionConfig(**kw).validate()
