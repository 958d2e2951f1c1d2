r"""Symmetry augmentation of the flows' training stars.

A system in equilibrium in a potential with a symmetry has a distribution function with that
symmetry too, if its stars show it: :math:`f(R\vec x, R\vec v) = f(\vec x, \vec v)` for every
rotation :math:`R` of a spherical system, every rotation about the z axis of an axisymmetric
one, and :math:`f(x, y, -z, v_x, v_y, -v_z) = f` for a disk even in z. Training a flow on
stars each moved by a random element of the group (drawn afresh for every batch) teaches it
the group average of the sample, at no extra cost per step: every star is seen at every
orientation in turn, as if the sample were that many times larger.

Only the transformations that map the data's volume onto itself are used: rotations about the
origin for a whole system centred on it; for a volume away from the origin (a survey volume
around the Sun, :func:`~deeppot_galpy.compare.is_centred` false) only the reflection
z -> -z of ``mirror``, which maps a heliocentric volume onto itself up to the Sun's height
above the plane (20.8 pc in astropy's frame), inside the rim the potential fit leaves out.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["Augmentation", "symmetry_augmentation"]

Augmentation = Callable[[Tensor, torch.Generator], Tensor]


def _random_rotations(n: int, gen: torch.Generator) -> Tensor:
    """n rotation matrices (n, 3, 3) uniform on SO(3): unit quaternions from 4D normals."""
    q = torch.randn(n, 4, generator=gen)
    w, x, y, z = (q / q.norm(dim=1, keepdim=True)).unbind(1)
    return torch.stack(
        [
            torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], 1),
            torch.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], 1),
            torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], 1),
        ],
        1,
    )


def _z_rotations(n: int, gen: torch.Generator) -> Tensor:
    """n rotations about the z axis (n, 3, 3) by uniform angles."""
    a = 2 * torch.pi * torch.rand(n, generator=gen)
    c, s, zero, one = torch.cos(a), torch.sin(a), torch.zeros(n), torch.ones(n)
    return torch.stack(
        [
            torch.stack([c, -s, zero], 1),
            torch.stack([s, c, zero], 1),
            torch.stack([zero, zero, one], 1),
        ],
        1,
    )


def _rotate(eta: Tensor, rot: Tensor) -> Tensor:
    rot = rot.to(eta)
    x = torch.einsum("nij,nj->ni", rot, eta[:, :3])
    v = torch.einsum("nij,nj->ni", rot, eta[:, 3:])
    return torch.cat([x, v], dim=1)


def _flip_z(eta: Tensor, gen: torch.Generator) -> Tensor:
    sign = torch.where(torch.rand(len(eta), generator=gen) < 0.5, -1.0, 1.0).to(eta)
    return eta * torch.stack([torch.ones_like(sign)] * 2 + [sign], 1).repeat(1, 2)


def symmetry_augmentation(symmetry: str, centred: bool) -> Augmentation | None:
    """The random group element applied to each training batch (N, 6) for a potential of
    ``symmetry`` about the origin, or None where there is nothing to apply; ``centred``: the
    data's volume is centred on the origin (whole system), so rotations map it onto itself."""
    if symmetry == "spherical" and centred:
        return lambda eta, gen: _rotate(eta, _random_rotations(len(eta), gen))
    if symmetry == "axisymmetric" and centred:
        return lambda eta, gen: _rotate(eta, _z_rotations(len(eta), gen))
    if symmetry == "mirror":
        if centred:
            return lambda eta, gen: _flip_z(_rotate(eta, _z_rotations(len(eta), gen)), gen)
        return _flip_z
    return None
