r"""Weak-form Jeans equations from the stars: an unbiased check on the force amplitude.

Multiplying the stationary collisionless Boltzmann equation by :math:`v_j\,\psi(\vec x)` and
integrating by parts over phase space (the test function :math:`\psi` vanishes where the
sample is incomplete) gives, for every :math:`\psi` and axis :math:`j`,

.. math:: \langle \psi\,\partial_j\Phi \rangle_\star = \langle v_j\, \vec v\cdot\nabla\psi \rangle_\star ,

averages over the stars themselves. Unlike the CBE loss, this needs no density model and no
gradient of f, so it carries none of the flows' smoothing or noise: it pins the amplitude of
the force averaged over each test function (the flows' gradient errors otherwise bias
:math:`|\vec a|` low by a few per cent). The test functions are Gaussians
:math:`\psi_m = \exp(-|\vec x - \vec c_m|^2 / 2 s_m^2)` centred on random stars, their widths
set by the local star density (the distance to the k-th nearest of the subsample) and kept
well inside the stars' region.

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
    """Precomputed Jeans moments A_mj over a subsample of the stars, and the loss term."""

    def __init__(
        self,
        x: np.ndarray,
        v: np.ndarray,
        region: dict,
        n_functions: int = 96,
        n_stars: int = 2**15,
        neighbours: float = 0.05,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ):
        rng = np.random.default_rng(seed)
        idx = rng.choice(len(x), min(n_stars, len(x)), replace=False)
        x, v = x[idx], v[idx]
        center = np.asarray(region["center"])
        tree = cKDTree(x)
        k = max(8, int(neighbours * len(x)))
        cand = x[rng.choice(len(x), 4 * n_functions, replace=False)]
        width = tree.query(cand, k=k)[0][:, -1]
        inside = np.linalg.norm(cand - center, axis=1) + 2.5 * width < region["r_max"]
        self.centers, self.widths = cand[inside][:n_functions], width[inside][:n_functions]
        if len(self.centers) < 8:
            raise ValueError("too few Jeans test functions fit inside the stars' region")
        d = x[:, None, :] - self.centers[None]  # (N, M, 3)
        psi = np.exp(-0.5 * np.sum(d**2, -1) / self.widths**2)  # (N, M)
        grad_psi = -psi[..., None] * d / self.widths[:, None] ** 2  # (N, M, 3)
        vdg = np.einsum("nk,nmk->nm", v, grad_psi)  # v . grad psi
        A = np.einsum("nj,nm->mj", v, vdg) / len(x)  # <v_j v.grad psi_m>
        self.x = torch.as_tensor(x, dtype=torch.float32, device=device)
        self.psi = torch.as_tensor(psi, dtype=torch.float32, device=device)
        self.A = torch.as_tensor(A, dtype=torch.float32, device=device)
        self.norm = float(np.sum(A**2))

    def loss(self, grad_phi_fn, batch_size: int, generator: torch.Generator) -> Tensor:
        """Unbiased squared relative violation, from two disjoint minibatches of stars."""
        idx = torch.randperm(len(self.x), generator=generator)[: 2 * batch_size].to(self.x.device)
        g = grad_phi_fn(self.x[idx])  # (2B, 3)
        psi = self.psi[idx]
        b1 = psi[:batch_size].T @ g[:batch_size] / batch_size
        b2 = psi[batch_size:].T @ g[batch_size:] / batch_size
        return ((b1 - self.A) * (b2 - self.A)).sum() / self.norm

    def violation(self, grad_phi: np.ndarray) -> float:
        """Relative rms violation for grad Phi evaluated at this object's stars (all of them)."""
        B = self.psi.T.double().numpy() @ grad_phi / len(grad_phi)
        A = self.A.double().numpy()
        return float(np.sqrt(np.sum((B - A) ** 2) / np.sum(A**2)))
