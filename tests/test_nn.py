"""Tests of cmrl.nn: Mish, MLPs, the sinusoidal embedding, batched ensembles and EMA updates."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cmrl.nn import EnsembleLayerNorm, EnsembleLinear, Mish, SinusoidalEmbedding, ema_update, ensemble_mlp, mish, mlp


# --------------------------------------------------------------------------------------------------
# Mish
# --------------------------------------------------------------------------------------------------
def _mish_reference_points() -> torch.Tensor:
    return torch.cat([
        torch.linspace(-120.0, 120.0, 4001),
        torch.tensor([-1e4, -88.0, -30.0, -20.0, -1e-6, 0.0, 1e-6, 19.99, 20.0, 20.01, 25.0, 88.0, 89.0, 1e4]),
    ])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mish_values_match_torch(dtype):
    x = _mish_reference_points().to(dtype)
    got, ref = mish(x), F.mish(x)
    assert torch.isfinite(got).all()
    tol = dict(rtol=2e-6, atol=1e-7) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(got, ref, **tol)
    assert torch.equal(Mish()(x), got)


def test_mish_by_hand():
    # Mish(x) = x tanh(ln(1 + e^x)): x = 1 -> tanh(1.3132617) = 0.8650984; x = -1 -> -tanh(0.3132617) = -0.3034014
    got = mish(torch.tensor([1.0, -1.0, 0.0], dtype=torch.float64))
    assert got.tolist() == pytest.approx([0.8650984, -0.3034014, 0.0], abs=1e-7)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mish_gradients_match_torch(dtype):
    x1 = _mish_reference_points().to(dtype).requires_grad_(True)
    x2 = x1.detach().clone().requires_grad_(True)
    mish(x1).sum().backward()
    F.mish(x2).sum().backward()
    assert torch.isfinite(x1.grad).all()  # no NaN from the unused branch of the where, even at |x| = 1e4
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(x1.grad, x2.grad, **tol)
    # Mish'(0) = tanh(ln 2) = 0.6; Mish'(x) -> 1 for large x and -> 0 for very negative x
    g = x1.grad
    assert g[(x1 == 0).nonzero()[0]].item() == pytest.approx(0.6, abs=1e-6)
    assert g[-1].item() == pytest.approx(1.0, abs=1e-6)  # x = 1e4
    assert g[-14].item() == pytest.approx(0.0, abs=1e-12)  # x = -1e4


# --------------------------------------------------------------------------------------------------
# MLP and embedding
# --------------------------------------------------------------------------------------------------
def test_mlp_structure():
    net = mlp(5, [7, 11], 3)
    linears = [m for m in net if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(5, 7), (7, 11), (11, 3)]
    assert sum(isinstance(m, Mish) for m in net) == 2
    assert not isinstance(net[-1], Mish)  # no output activation
    assert net(torch.randn(4, 5)).shape == (4, 3)


def test_sinusoidal_embedding_by_hand():
    emb = SinusoidalEmbedding(4)  # half = 2: w = 10000^(-j/1) for j = 0, 1 -> 1, 1e-4
    t = torch.tensor([[0.5], [-1.0]], dtype=torch.float32)
    out = emb(t)
    assert out.shape == (2, 4)
    expected = [[math.sin(0.5), math.sin(5e-5), math.cos(0.5), math.cos(5e-5)],
                [math.sin(-1.0), math.sin(-1e-4), math.cos(-1.0), math.cos(-1e-4)]]
    torch.testing.assert_close(out, torch.tensor(expected), rtol=1e-6, atol=1e-7)
    assert SinusoidalEmbedding(16)(t).shape == (2, 16)
    for bad in (2, 5):
        with pytest.raises(ValueError):
            SinusoidalEmbedding(bad)
    # the frequencies are not saved in checkpoints (a constant buffer)
    assert "freqs" not in emb.state_dict()



# --------------------------------------------------------------------------------------------------
# ensembles
# --------------------------------------------------------------------------------------------------
def test_ensemble_linear_equals_separate_linears():
    torch.manual_seed(0)
    K, B, i, o = 3, 6, 4, 5
    layer = EnsembleLinear(i, o, K)
    assert layer.weight.shape == (K, i, o) and layer.bias.shape == (K, 1, o)
    x = torch.randn(K, B, i)  # a different input per member
    out = layer(x)
    assert out.shape == (K, B, o)
    for k in range(K):
        lin = nn.Linear(i, o)
        with torch.no_grad():
            lin.weight.copy_(layer.weight[k].T)
            lin.bias.copy_(layer.bias[k, 0])
        torch.testing.assert_close(out[k], lin(x[k]), rtol=1e-6, atol=1e-6)
    # members are initialised independently, within nn.Linear's bound 1/sqrt(in) = 0.5
    assert not torch.equal(layer.weight[0], layer.weight[1])
    assert layer.weight.abs().max() <= 0.5 and layer.bias.abs().max() <= 0.5


def test_ensemble_mlp_equals_separate_mlps():
    torch.manual_seed(1)
    K = 4
    ens = ensemble_mlp(3, [8, 8], 2, K)
    x = torch.randn(K, 5, 3)
    out = ens(x)
    assert out.shape == (K, 5, 2)
    ens_linears = [m for m in ens if isinstance(m, EnsembleLinear)]
    for k in range(K):
        single = mlp(3, [8, 8], 2)
        with torch.no_grad():
            for lin, e in zip([m for m in single if isinstance(m, nn.Linear)], ens_linears):
                lin.weight.copy_(e.weight[k].T)
                lin.bias.copy_(e.bias[k, 0])
        torch.testing.assert_close(out[k], single(x[k]), rtol=1e-5, atol=1e-6)


def test_ensemble_layer_norm_equals_separate_layer_norms():
    torch.manual_seed(3)
    K, B, d = 3, 5, 6
    norm = EnsembleLayerNorm(d, K)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = 4.0 + 3.0 * torch.randn(K, B, d)
    out = norm(x)
    for k in range(K):
        single = nn.LayerNorm(d)
        with torch.no_grad():
            single.weight.copy_(norm.weight[k, 0])
            single.bias.copy_(norm.bias[k, 0])
        torch.testing.assert_close(out[k], single(x[k]), rtol=1e-5, atol=1e-6)
    # by hand for one row: (x - mean) / sqrt(var + eps) * gain + bias, biased variance
    row = x[0, 0]
    expected = (row - row.mean()) / torch.sqrt(row.var(unbiased=False) + 1e-5) * norm.weight[0, 0] + norm.bias[0, 0]
    torch.testing.assert_close(out[0, 0], expected, rtol=1e-5, atol=1e-5)


def test_layer_norm_bounds_the_features_of_far_inputs():
    """With LayerNorm each hidden layer's output has unit scale, so a far input cannot inflate Q."""
    torch.manual_seed(4)
    plain, normed = ensemble_mlp(3, [16, 16], 1, 2), ensemble_mlp(3, [16, 16], 1, 2, layer_norm=True)
    near, far = torch.randn(2, 64, 3), 1000.0 * torch.randn(2, 64, 3)
    assert plain(far).abs().max() > 100 * plain(near).abs().max()
    assert normed(far).abs().max() < 10 * normed(near).abs().max() + 1.0


def test_ensemble_members_get_independent_gradients():
    torch.manual_seed(2)
    layer = EnsembleLinear(2, 1, 3)
    x = torch.randn(3, 4, 2)
    layer(x)[1].sum().backward()  # a loss on member 1 only
    assert layer.weight.grad[0].abs().sum() == 0 and layer.weight.grad[2].abs().sum() == 0
    assert layer.weight.grad[1].abs().sum() > 0


# --------------------------------------------------------------------------------------------------
# EMA
# --------------------------------------------------------------------------------------------------
def _scalar_linear(w: float, b: float) -> nn.Linear:
    lin = nn.Linear(1, 1)
    with torch.no_grad():
        lin.weight.fill_(w)
        lin.bias.fill_(b)
    return lin


def test_ema_update_by_hand():
    target, source = _scalar_linear(1.0, 0.0), _scalar_linear(3.0, 2.0)
    ema_update(target, source, 0.9)
    # 0.9 * 1 + 0.1 * 3 = 1.2; 0.9 * 0 + 0.1 * 2 = 0.2
    assert target.weight.item() == pytest.approx(1.2, abs=1e-6)
    assert target.bias.item() == pytest.approx(0.2, abs=1e-6)
    ema_update(target, source, 0.5)  # 0.5 * 1.2 + 0.5 * 3 = 2.1; 0.5 * 0.2 + 0.5 * 2 = 1.1
    assert target.weight.item() == pytest.approx(2.1, abs=1e-6)
    assert target.bias.item() == pytest.approx(1.1, abs=1e-6)
    assert source.weight.item() == 3.0 and source.bias.item() == 2.0  # the source is untouched


def test_ema_update_extremes_are_exact():
    torch.manual_seed(3)
    target, source = mlp(3, [5], 2), mlp(3, [5], 2)
    before = [p.detach().clone() for p in target.parameters()]
    ema_update(target, source, 1.0)  # decay 1: nothing moves
    assert all(torch.equal(a, p) for a, p in zip(before, target.parameters()))
    ema_update(target, source, 0.0)  # decay 0: an exact copy
    assert all(torch.equal(a, b) for a, b in zip(target.parameters(), source.parameters()))


def test_ema_update_with_requires_grad_target():
    # works under autograd (the acting EMA and teachers are frozen copies, but a trainable target must not break)
    target, source = _scalar_linear(0.0, 0.0), _scalar_linear(1.0, 1.0)
    ema_update(target, source, 0.75)
    assert target.weight.item() == pytest.approx(0.25, abs=1e-7)
    assert target.weight.grad is None
