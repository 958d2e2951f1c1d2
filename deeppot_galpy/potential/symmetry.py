r"""Invariant inputs of the potential network: how a symmetry is imposed exactly.

A potential with a symmetry is a function of the invariants of that symmetry alone, so the
MLP reads them instead of the Cartesian position. With :math:`\vec u = \vec x / L` (the
network's length scale :math:`L`) and a softening :math:`\epsilon` (in units of :math:`L`):

* ``"none"``: :math:`\vec a = \vec u` (3 inputs);
* ``"spherical"`` about the origin: :math:`a = s_3 = \sqrt{\epsilon^2 + |\vec u|^2}`;
* ``"axisymmetric"`` about the z axis through the origin:
  :math:`\vec a = (s_2, u_z)` with :math:`s_2 = \sqrt{\epsilon^2 + u_x^2 + u_y^2}`;
* ``"mirror"``: axisymmetric and symmetric about the plane z = 0 (a disk in equilibrium):
  :math:`\vec a = (s_2, u_z^2)`.

The softened radius is analytic in :math:`r^2` (or :math:`R^2`), so the potential stays smooth,
with a finite Laplacian, on the symmetry axis or centre, and equals the radius beyond
:math:`\epsilon`, so a cusp stays within reach. Across a disk's plane the potential is smooth
(no mass sheet), and a smooth even function of z is a smooth function of :math:`z^2` (Whitney
1943, Duke Math. J. 10, 159): with :math:`u_z^2` as its input the network's vertical force
rises linearly through the plane at the slope the stars near it set. The softened
:math:`s_z = \sqrt{\epsilon^2 + u_z^2}` that mirror fits used before (``vertical =
"softened"``, kept so that their files load unchanged) let each fit put its own bend into
the force within :math:`\epsilon` of the plane, and the local density scattered with the CBE
points drawn (RESULTS.md, section 16).

The origin is the centre of the coordinates: the Galactic centre for Galactocentric catalogs,
the system's centre for N-body mocks. The network sees
:math:`\vec a - \vec a(\vec x_0)` about the data centre :math:`\vec x_0`.

The forward Laplacian (:mod:`.network`) needs each input's gradient and Laplacian in
:math:`\vec u`: for :math:`s_n` over :math:`n` coordinates,
:math:`\partial_i s_n = u_i / s_n` and :math:`\nabla^2 s_n = (n - 1)/s_n + \epsilon^2/s_n^3`;
:math:`\partial_z u_z^2 = 2 u_z` and :math:`\nabla^2 u_z^2 = 2`.
The code takes numpy arrays or torch tensors alike (the numpy path serves galpy's one-point
orbit integration).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["SYMMETRIES", "SYMMETRY_CHOICES", "VERTICAL_INPUTS", "invariant_inputs", "n_inputs"]

SYMMETRIES = ("none", "axisymmetric", "mirror", "spherical")
# what a config may say: a symmetry, or "auto", chosen from the stars (deeppot_galpy.shape)
SYMMETRY_CHOICES = (*SYMMETRIES, "auto")


# each input: ("norm", axes) a softened norm over those axes, ("axis", i) u_i itself, or
# ("square", i) u_i^2; a mirror fit's vertical input is u_z^2, or the softened |u_z| of fits
# saved before it
VERTICAL_INPUTS = {"square": ("square", 2), "softened": ("norm", (2,))}
_INPUTS = {
    "axisymmetric": (("norm", (0, 1)), ("axis", 2)),
    "mirror": (("norm", (0, 1)), VERTICAL_INPUTS["square"]),
    "spherical": (("norm", (0, 1, 2)),),
}


def n_inputs(symmetry: str) -> int:
    """How many inputs the network reads under ``symmetry``."""
    return 3 if symmetry == "none" else len(_INPUTS[symmetry])


def invariant_inputs(
    u: Any, symmetry: str, softening: float, vertical: str = "square"
) -> tuple[Any, Any, Any]:
    """(inputs a (N, k), Jacobian da/du (N, 3, k), Laplacian lap_u a (N, k)) at u (N, 3).

    ``u`` is a numpy array or a torch tensor; the results are of the same kind. Without a
    symmetry the inputs are ``u`` itself and the Jacobian and Laplacian are None (identity).
    ``vertical`` is a mirror fit's input across the plane (:data:`VERTICAL_INPUTS`).
    """
    if symmetry == "none":
        return u, None, None  # the identity: the network's first layer needs no chain rule
    if symmetry not in _INPUTS:
        raise ValueError(f"unknown symmetry {symmetry!r}; use one of {SYMMETRIES}")
    if vertical not in VERTICAL_INPUTS:
        raise ValueError(f"unknown vertical input {vertical!r}; use one of {list(VERTICAL_INPUTS)}")
    inputs = _INPUTS[symmetry]
    if symmetry == "mirror":
        inputs = (inputs[0], VERTICAL_INPUTS[vertical])
    xp = torch if isinstance(u, torch.Tensor) else np
    zero = xp.zeros_like(u[:, 0])
    values, grads, laps = [], [], []
    for kind, axes in inputs:
        if kind == "square":
            values.append(u[:, axes] ** 2)
            grads.append(xp.stack([2 * u[:, axes] if i == axes else zero for i in range(3)], -1))
            laps.append(zero + 2.0)
            continue
        if kind == "axis":
            values.append(u[:, axes])
            grads.append(xp.stack([zero + (i == axes) for i in range(3)], -1))
            laps.append(zero)
            continue
        s = (softening**2 + sum(u[:, i] ** 2 for i in axes)) ** 0.5
        values.append(s)
        grads.append(xp.stack([u[:, i] / s if i in axes else zero for i in range(3)], -1))
        laps.append((len(axes) - 1) / s + softening**2 / s**3)
    return xp.stack(values, -1), xp.stack(grads, -1), xp.stack(laps, -1)
