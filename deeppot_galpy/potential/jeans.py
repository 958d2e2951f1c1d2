r"""Weak-form Jeans equations from the stars: an unbiased check on the force amplitude.

Multiplying the stationary collisionless Boltzmann equation by :math:`v_j\,\psi(\vec x)` and
integrating by parts over phase space (the test function :math:`\psi` vanishes where the
sample is incomplete) gives, for every :math:`\psi` and axis :math:`j`,

.. math::
    \langle \psi\,\partial_j\Phi \rangle_\star
    = \langle v_j\, \vec v\cdot\nabla\psi \rangle_\star ,

averages over the stars themselves. Unlike the CBE loss, this needs no density model and no
gradient of f, so it carries none of the flows' smoothing or noise: it pins the amplitude of
the force averaged over each test function (the flows' gradient errors otherwise bias
:math:`|\vec a|` low by a few per cent). The test functions are Gaussians
:math:`\psi_m = \exp(-|\vec x - \vec c_m|^2 / 2 s_m^2)` centred on random stars, their widths
set by the local star density (the distance to the k-th nearest of the subsample, k a fixed
fraction of the stars or, to mix scales, log-uniform in a range of fractions) and kept well
inside the stars' region. Smaller functions reach further into a core, where a wide Gaussian
centred near the middle averages a force that changes sign; they are noisier, being sums
over fewer stars.

The loss is the cross product of two independent minibatch estimates of the violation,
:math:`\sum_{m,j} (B^{(1)}_{mj} - A_{mj})(B^{(2)}_{mj} - A_{mj}) / \sum_{m,j} A_{mj}^2`, which is
unbiased for the squared violation (a single estimate's square would add its variance).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor

__all__ = ["JeansMoments"]


class JeansMoments:
    """Precomputed Jeans moments A_mj over (a subsample of) the stars, and the loss term."""

    def __init__(
        self,
        x: np.ndarray,
        v: np.ndarray,
        region: dict,
        n_functions: int = 192,
        n_stars: int = 2**17,
        neighbours: float | tuple[float, float] = 0.02,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ):
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(len(x), min(n_stars, len(x)), replace=False))
        x, v = np.asarray(x[idx], dtype=np.float64), np.asarray(v[idx], dtype=np.float64)
        center = np.asarray(region["center"])
        f_lo, f_hi = (neighbours, neighbours) if np.isscalar(neighbours) else neighbours
        cand = x[rng.choice(len(x), min(len(x), 4 * n_functions), replace=False)]
        # each function's neighbour count, log-uniform in [lo, hi] (a range mixes scales)
        k = np.maximum(8, np.exp(rng.uniform(np.log(f_lo), np.log(f_hi), len(cand))) * len(x))
        k = np.minimum(k.astype(int), len(x))
        dist = cKDTree(x).query(cand, k=int(k.max()))[0]
        width = dist[np.arange(len(cand)), k - 1]
        # 2.5 widths inside the region: psi ~ 4e-2 there, and falls as a Gaussian beyond
        inside = np.linalg.norm(cand - center, axis=1) + 2.5 * width < region["r_max"]
        self.centers, self.widths = cand[inside][:n_functions], width[inside][:n_functions]
        if len(self.centers) < 8:
            raise ValueError("too few Jeans test functions fit inside the stars' region")
        A = np.zeros((len(self.centers), 3))
        for lo in range(0, len(x), 8192):  # chunks: the (N, M, 3) offsets would not fit at 2^21
            d = x[lo : lo + 8192, None, :] - self.centers[None]
            p = np.exp(-0.5 * np.sum(d**2, -1) / self.widths**2)
            vdg = -np.einsum("nk,nmk->nm", v[lo : lo + 8192], d) * p / self.widths**2
            A += np.einsum("nj,nm->mj", v[lo : lo + 8192], vdg)
        self.x = torch.as_tensor(x, dtype=torch.float32, device=device)
        self.A = torch.as_tensor(A / len(x), dtype=torch.float32, device=device)
        self.norm = float(torch.sum(self.A**2))
        self._c = torch.as_tensor(self.centers, dtype=torch.float32, device=device)
        self._inv_w2 = torch.as_tensor(self.widths**-2.0, dtype=torch.float32, device=device)

    def psi(self, x: Tensor) -> Tensor:
        """The test functions at x (N, 3) -> (N, M), computed when needed (not stored for all
        the stars: N x M floats would dominate the memory of a fit with many functions)."""
        d2 = (x.unsqueeze(1) - self._c).square().sum(-1)
        return torch.exp(-0.5 * d2 * self._inv_w2)

    def __len__(self) -> int:
        return len(self.x)

    def draw(self, batch_size: int, generator: torch.Generator) -> Tensor:
        """Indices of two disjoint minibatches of stars (2 * batch_size)."""
        perm = torch.randperm(len(self.x), generator=generator)[: 2 * batch_size]
        return perm.to(self.x.device)

    def loss(self, grad_phi: Tensor, idx: Tensor) -> Tensor:
        """Unbiased squared relative violation from grad Phi at the stars ``idx`` (see draw)."""
        half = len(idx) // 2
        psi = self.psi(self.x[idx])
        b1 = psi[:half].T @ grad_phi[:half] / half
        b2 = psi[half:].T @ grad_phi[half:] / (len(idx) - half)
        return ((b1 - self.A) * (b2 - self.A)).sum() / self.norm

    def violation(self, grad_phi: np.ndarray) -> float:
        """Relative rms violation for grad Phi evaluated at all of this object's stars."""
        B = sum(
            self.psi(self.x[lo : lo + 8192]).T.double().cpu().numpy() @ grad_phi[lo : lo + 8192]
            for lo in range(0, len(self.x), 8192)
        ) / len(grad_phi)
        A = self.A.double().cpu().numpy()
        return float(np.sqrt(np.sum((B - A) ** 2) / np.sum(A**2)))
