r"""Velocity factors of the weak-form test functions: how much of the CBE the stars' moments see.

Multiplying the stationary collisionless Boltzmann equation by any test function
:math:`g(\vec x, \vec v)` that vanishes where the sample is incomplete and integrating by parts
over phase space gives, averaged over the stars themselves,

.. math::
    \langle \vec v\cdot\nabla_x g \rangle_\star = \langle \nabla\Phi\cdot\nabla_v g \rangle_\star .

:mod:`~deeppot_galpy.potential.jeans` uses :math:`g_{mk} = \psi_m(\vec x)\,h_{mk}(\vec v)`, a
spatial window :math:`\psi_m` times a velocity factor that depends on the function only through
constants, so :math:`\nabla_x h = 0` and the identity reads

.. math::
    \langle h_{mk}\,\vec v\cdot\nabla\psi_m \rangle_\star
    = \langle \psi_m\,\nabla_v h_{mk}\cdot\nabla\Phi \rangle_\star .

The left side is a fixed number per equation (computed once from the stars), the right side
is linear in the force at the stars, so a set of factors costs one (stars x functions x
factors) contraction per minibatch. Each family writes its factors in the velocity
:math:`\vec w = (\vec v - \vec u_m)/s_m` relative to the stars' mean velocity :math:`\vec u_m`
and dispersion :math:`s_m` (per axis, rms) inside :math:`\psi_m`, scaled as
:math:`h = s_m \hat h(\vec w)` so every family's equations carry the units of today's:

* ``linear``: :math:`h = v_k` (raw velocities), the weak-form Jeans equations (first velocity
  moments of the CBE: the force against the divergence of the second moments). Three
  equations per window; all a smooth isotropic or anisotropic system needs in the limit of
  many windows, but each window sees only the second moments.
* ``cubic``: :math:`\hat h = w_a w_b w_c` (the 10 distinct third moments): the force times
  the second moments against the divergence of the fourth moments. They weigh the velocity
  ellipsoid's shape (the anisotropy) into the force, at the price of fourth-moment noise.
* ``windows``: :math:`\hat h = \exp(-|\vec w - \vec o|^2/2)` for 7 velocity offsets
  :math:`\vec o \in \{0, \pm\hat e_x, \pm\hat e_y, \pm\hat e_z\}`: the CBE seen through
  Gaussian windows in velocity (the limit of narrow windows is the CBE itself), which
  resolves the velocity distribution's structure beyond moments. The offsets are Cartesian,
  so no galaxy centre is assumed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["FAMILIES", "VelocityFamily", "parse_families"]

_CUBES = [(a, b, c) for a in range(3) for b in range(a, 3) for c in range(b, 3)]
_OFFSETS = [[0.0, 0.0, 0.0]] + [[s * (i == j) for j in range(3)] for i in range(3) for s in (1, -1)]


@dataclass(frozen=True)
class VelocityFamily:
    """A set of ``size`` velocity factors h_k.

    ``value(v, w, s)`` gives h (n, M, size) from the velocities v (n, 3), the relative
    velocities w (n, M, 3) and the dispersions s (M,); ``project(w, g)`` gives
    grad_v h . g (n, M, size) for a vector g (n, 3) at each star (the force, or the axis).
    """

    name: str
    size: int
    value: Callable[[Tensor, Tensor, Tensor], Tensor]
    project: Callable[[Tensor, Tensor], Tensor]


def _linear_value(v: Tensor, w: Tensor, s: Tensor) -> Tensor:
    return v.unsqueeze(1).expand(w.shape)


def _linear_project(w: Tensor, g: Tensor) -> Tensor:
    return g.unsqueeze(1).expand(w.shape)


def _cube_index(w: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    idx = torch.as_tensor(_CUBES, device=w.device).T
    return idx[0], idx[1], idx[2]


def _cubic_value(v: Tensor, w: Tensor, s: Tensor) -> Tensor:
    a, b, c = _cube_index(w)
    return s[:, None] * w[..., a] * w[..., b] * w[..., c]


def _cubic_project(w: Tensor, g: Tensor) -> Tensor:
    a, b, c = _cube_index(w)
    g = g.unsqueeze(1)
    wa, wb, wc = w[..., a], w[..., b], w[..., c]
    return g[..., a] * wb * wc + wa * g[..., b] * wc + wa * wb * g[..., c]


def _window_offsets(w: Tensor) -> Tensor:
    return torch.as_tensor(_OFFSETS, dtype=w.dtype, device=w.device)


def _windows_value(v: Tensor, w: Tensor, s: Tensor) -> Tensor:
    d = w.unsqueeze(2) - _window_offsets(w)  # (n, M, 7, 3)
    return s[:, None] * torch.exp(-0.5 * d.square().sum(-1))


def _windows_project(w: Tensor, g: Tensor) -> Tensor:
    d = w.unsqueeze(2) - _window_offsets(w)
    # grad_w of exp(-|d|^2 / 2) is -d exp(-|d|^2 / 2); h = s h_hat and dw/dv = 1/s cancel
    return -torch.exp(-0.5 * d.square().sum(-1)) * (d * g[:, None, None, :]).sum(-1)


FAMILIES: dict[str, VelocityFamily] = {
    f.name: f
    for f in (
        VelocityFamily("linear", 3, _linear_value, _linear_project),
        VelocityFamily("cubic", len(_CUBES), _cubic_value, _cubic_project),
        VelocityFamily("windows", len(_OFFSETS), _windows_value, _windows_project),
    )
}


def parse_families(spec: str | Sequence[str]) -> tuple[VelocityFamily, ...]:
    """Families from ``"linear"``, ``"linear+windows"`` or a sequence of names."""
    names = spec.split("+") if isinstance(spec, str) else list(spec)
    unknown = [n for n in names if n not in FAMILIES]
    if not names or unknown or len(set(names)) != len(names):
        raise ValueError(
            f"velocity test functions {spec!r}: give distinct names from {sorted(FAMILIES)}"
        )
    return tuple(FAMILIES[n] for n in names)
