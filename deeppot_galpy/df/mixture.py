r"""p(v | x) as a mixture of Gaussian velocity ellipsoids that change with position.

.. math:: p(\vec u \mid \vec y) = \sum_{k=1}^K w_k(\vec y)\,
          \mathcal N\bigl(\vec u;\ \vec m_k(\vec y),\ (L_k L_k^{\mathsf T})^{-1}\bigr),
          \qquad
          \ln \mathcal N = -\tfrac32 \ln 2\pi + \sum_i \ln L_{k,ii}
          - \tfrac12 \bigl|L_k^{\mathsf T} (\vec u - \vec m_k)\bigr|^2,

with u and y the standardised velocity and position, and the weights w_k (a softmax), means
m_k and lower-triangular Cholesky factors L_k of the precision all outputs of one smooth MLP
of position: a mixture density network (Bishop 1994). A disk's thin and thick populations
are a few ellipsoids whose sizes, tilts and shares change smoothly with place; how a
dispersion follows height is then an output of the network, not something a flow's couplings
must learn through a spline's knots. grad ln p comes by autograd, smooth in x and v. With a
mirror fit's z^2 input it lowers the local disk mock's force and density errors (RESULTS.md,
section 17), so the DF model ``"auto"`` takes it for a disk's survey volume; a sphere's
velocities (their escape-speed edge, a radial anisotropy) and a whole disk, hot at its centre,
it fits worse than the conditional flow (sections 15 and 17), which they keep.

References:
    Bishop 1994, "Mixture density networks", Aston University NCRG/94/004.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .flows import position_features, position_mlp

__all__ = ["VelocityMixture"]

_LOG_L_MAX = 4.0  # bound on ln L_ii: each ellipsoid's axes within e^(+-4) of the standardisation


class VelocityMixture(nn.Module):
    """p(u | y): ``components`` Gaussian ellipsoids whose parameters are an MLP of position."""

    def __init__(self, components: int, hidden: tuple[int, ...]):
        super().__init__()
        self.components = components
        # per component: weight logit, mean (3), ln diag L (3), below-diagonal L (3); the default
        # small random initialisation breaks the symmetry between the components
        self.net = position_mlp(hidden, components * 10)
        rows, cols = torch.tril_indices(3, 3, offset=-1)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)

    def forward(self, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Log-weights (N, K), means (N, K, 3) and precision Cholesky factors (N, K, 3, 3)."""
        out = self.net(position_features(y)).view(len(y), self.components, 10)
        log_w = torch.log_softmax(out[..., 0], dim=1)
        log_diag = _LOG_L_MAX * torch.tanh(out[..., 4:7] / _LOG_L_MAX)
        chol = torch.diag_embed(torch.exp(log_diag))
        chol[..., self.rows, self.cols] = out[..., 7:10]
        return log_w, out[..., 1:4], chol

    def log_prob(self, u: Tensor, y: Tensor) -> Tensor:
        """ln p(u | y) (N,) in standardised units."""
        log_w, mean, chol = self(y)
        # |L^T (u - m)|^2, L^T (u - m) as a batched product
        white = ((u[:, None, :] - mean)[..., :, None] * chol).sum(-2)
        log_det = torch.diagonal(chol, dim1=-2, dim2=-1).log().sum(-1)
        log_n = log_det - 0.5 * (white * white).sum(-1) - 1.5 * math.log(2 * math.pi)
        return torch.logsumexp(log_w + log_n, dim=1)

    @torch.no_grad()
    def sample(self, y: Tensor) -> Tensor:
        """One velocity u (N, 3) from p(u | y) at each standardised position y (N, 3)."""
        log_w, mean, chol = self(y)
        k = torch.multinomial(log_w.exp(), 1)[:, 0]
        rows = torch.arange(len(y), device=y.device)
        eps = torch.randn(len(y), 3, 1, device=y.device, dtype=y.dtype)
        # u = m + L^-T eps has covariance L^-T L^-1 = (L L^T)^-1
        step = torch.linalg.solve_triangular(chol[rows, k].transpose(1, 2), eps, upper=True)
        return mean[rows, k] + step[..., 0]
