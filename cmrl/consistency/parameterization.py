"""The consistency function f_theta(x, sigma) built from a free network output F_theta.

Unbounded (Song et al. 2023, Eq. 5):

    f(x, sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, c_noise(sigma))

Bounded, for data in [-1, 1] such as normalised actions:

    f(x, sigma) = c_skip(sigma) x + (1 - c_skip(sigma)) tanh(F(c_in(sigma) x, c_noise(sigma)))

Both satisfy the boundary condition exactly: c_skip(sigma_min) = 1 in floating point, so
f(x, sigma_min) = x to the bit. The bounded form squashes only the network's output, never the noisy
input (which c_in scales to unit variance, so nothing saturates at sigma_max), and a clean x in
[-1, 1] stays in [-1, 1] because the output is a convex combination of x and tanh(F). Using
1 - c_skip instead of c_out lets the output reach the whole interval (c_out tends to sigma_data).
"""
from __future__ import annotations

from torch import Tensor

from .karras import c_in, c_noise, c_out, c_skip


def network_inputs(x: Tensor, sigma: Tensor, sigma_data: float) -> tuple[Tensor, Tensor]:
    """(c_in(sigma) x, c_noise(sigma)): what the network F sees. sigma broadcasts against x[..., :1]."""
    return c_in(sigma, sigma_data) * x, c_noise(sigma)


def consistency_output(x: Tensor, sigma: Tensor, net_out: Tensor, sigma_min: float, sigma_data: float,
                       bounded: bool) -> Tensor:
    """Combine the noisy input x and the network output F into f(x, sigma) (see the module docstring)."""
    skip = c_skip(sigma, sigma_min, sigma_data)
    if bounded:
        return skip * x + (1.0 - skip) * net_out.tanh()
    return skip * x + c_out(sigma, sigma_min, sigma_data) * net_out
