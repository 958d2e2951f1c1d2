r"""Invariant inputs of the potential network: how a symmetry is imposed exactly.

A potential with a symmetry is a function of the invariants of that symmetry alone, so the
MLP reads them instead of the Cartesian position. With :math:`\vec u = \vec x / L` (the
network's length scale :math:`L`) and a softening :math:`\epsilon` (in units of :math:`L`):

* ``"none"``: :math:`\vec a = \vec u` (3 inputs);
* ``"spherical"`` about the origin: :math:`a = s_3 = \sqrt{\epsilon^2 + |\vec u|^2}`;
* ``"axisymmetric"`` about the z axis through the origin:
  :math:`\vec a = (s_2, u_z)` with :math:`s_2 = \sqrt{\epsilon^2 + u_x^2 + u_y^2}`.

The softened radius is analytic in :math:`r^2` (or :math:`R^2`), so the potential stays smooth,
with a finite Laplacian, on the symmetry axis or centre, and equals the radius beyond
:math:`\epsilon`. The origin is the centre of the coordinates: the Galactic centre for
Galactocentric catalogs, the system's centre for N-body mocks. The network sees
:math:`\vec a - \vec a(\vec x_0)` about the data centre :math:`\vec x_0`.

The forward Laplacian (:mod:`.network`) needs each input's gradient and Laplacian in
:math:`\vec u`: for :math:`s_n` over :math:`n` coordinates,
:math:`\partial_i s_n = u_i / s_n` and :math:`\nabla^2 s_n = (n - 1)/s_n + \epsilon^2/s_n^3`.
The code takes numpy arrays or torch tensors alike (the numpy path serves galpy's one-point
orbit integration).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["SYMMETRIES", "invariant_inputs", "n_inputs"]

SYMMETRIES = ("none", "axisymmetric", "spherical")


def n_inputs(symmetry: str) -> int:
    """How many inputs the network reads under ``symmetry``."""
    return {"none": 3, "axisymmetric": 2, "spherical": 1}[symmetry]


def invariant_inputs(u: Any, symmetry: str, softening: float) -> tuple[Any, Any, Any]:
    """(inputs a (N, k), Jacobian da/du (N, 3, k), Laplacian lap_u a (N, k)) at u (N, 3).

    ``u`` is a numpy array or a torch tensor; the results are of the same kind. Without a
    symmetry the inputs are ``u`` itself and the Jacobian and Laplacian are None (identity).
    """
    if symmetry == "none":
        return u, None, None  # the identity: the network's first layer needs no chain rule
    xp = torch if isinstance(u, torch.Tensor) else np
    zero = xp.zeros_like(u[:, 0])
    n = 3 if symmetry == "spherical" else 2
    s = (softening**2 + (u[:, :n] ** 2).sum(-1)) ** 0.5
    grad_s = [u[:, i] / s for i in range(n)] + [zero] * (3 - n)
    lap_s = (n - 1) / s + softening**2 / s**3
    if symmetry == "spherical":
        return s[:, None], xp.stack(grad_s, -1)[:, :, None], lap_s[:, None]
    if symmetry == "axisymmetric":
        e_z = xp.stack([zero, zero, zero + 1], -1)
        return (
            xp.stack([s, u[:, 2]], -1),
            xp.stack([xp.stack(grad_s, -1), e_z], -1),
            xp.stack([lap_s, zero], -1),
        )
    raise ValueError(f"unknown symmetry {symmetry!r}; use one of {SYMMETRIES}")
