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
* ``cubic``: :math:`\hat h = w_k |\vec w|^2` (third moments, contracted): the force times
  the second-moment tensor (:math:`\delta_{jk}\langle w^2\rangle + 2\langle w_j w_k\rangle`)
  against the divergence of fourth moments. They weigh the velocity
  ellipsoid's shape (the anisotropy) into the force, at the price of fourth-moment noise.
* ``windows``: :math:`\hat h = \exp(-|\vec w - \vec o|^2/2)` for 7 velocity offsets
  :math:`\vec o \in \{0, \pm\hat e_x, \pm\hat e_y, \pm\hat e_z\}`: the CBE seen through
  Gaussian windows in velocity (the limit of narrow windows is the CBE itself), which
  resolves the velocity distribution's structure beyond moments. The offsets are Cartesian,
  so no galaxy centre is assumed.

Measured (``benchmarks/weakform.py``, 2^16 stars, 1500 steps, no flows at all): on Plummer
``linear`` is best (force error 5.9%; ``linear+cubic`` 6.1%, ``linear+windows`` 7.6%); on the
Osipkov-Merritt Hernquist ``linear+cubic`` lowers it from 24.5% to 17.3% (median bias -15% ->
+8%) while ``linear+windows`` is unstable (41%). ``linear`` stays the default; see
``benchmarks/results_weakform.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["FAMILIES", "VelocityFamily", "parse_families"]

_OFFSETS = [[0.0, 0.0, 0.0]] + [[s * (i == j) for j in range(3)] for i in range(3) for s in (1, -1)]


@dataclass(frozen=True)
class VelocityFamily:
    """A set of ``size`` velocity factors h_k.

    From the velocities v (n, 3), the relative velocities w (n, M, 3) and the dispersions
    s (M,): ``value(v, w, s)`` gives h (n, M, size); ``moments(psi, w, g)`` gives
    sum_n psi_nm grad_v h_nmk . g_n (M, size) for the test functions psi (n, M) and a vector
    g (n, 3) at each star (the force), differentiable in g; ``sums(v, relative, s, weight)``
    gives sum_n weight_nm h_nmk (M, size), ``relative()`` computing w only for the families
    that need it (the linear factors are the velocities: one matrix product).
    """

    name: str
    size: int
    value: Callable[[Tensor, Tensor, Tensor], Tensor]
    moments: Callable[[Tensor, Tensor, Tensor], Tensor]
    sums: Callable[[Tensor, Callable[[], Tensor], Tensor, Tensor], Tensor]


def _sums_of(value: Callable[[Tensor, Tensor, Tensor], Tensor]):
    """``sums`` from ``value``: the (n, M, size) factors weighted and summed over the stars."""

    def sums(v: Tensor, relative: Callable[[], Tensor], s: Tensor, weight: Tensor) -> Tensor:
        return torch.einsum("nmk,nm->mk", value(v, relative(), s), weight)

    return sums


def _linear_sums(v: Tensor, relative: Callable[[], Tensor], s: Tensor, weight: Tensor) -> Tensor:
    return weight.T @ v


def _linear_value(v: Tensor, w: Tensor, s: Tensor) -> Tensor:
    return v.unsqueeze(1).expand(w.shape)


def _linear_moments(psi: Tensor, w: Tensor, g: Tensor) -> Tensor:
    return psi.T @ g  # grad_v v_k = e_k


def _cubic_value(v: Tensor, w: Tensor, s: Tensor) -> Tensor:
    return s[:, None] * w * w.square().sum(-1, keepdim=True)


def _cubic_moments(psi: Tensor, w: Tensor, g: Tensor) -> Tensor:
    # grad_w(w_k |w|^2) . g = g_k |w|^2 + 2 w_k (w . g) (h = s h_hat and dw/dv = 1/s cancel)
    wg = torch.einsum("nmj,nj->nm", w, g)
    with torch.no_grad():
        psi_w2, psi_w = psi * w.square().sum(-1), psi.unsqueeze(-1) * w
    return psi_w2.T @ g + 2.0 * torch.einsum("nmk,nm->mk", psi_w, wg)


def _window_offsets(w: Tensor) -> Tensor:
    return torch.as_tensor(_OFFSETS, dtype=w.dtype, device=w.device)


def _windows(w: Tensor) -> Tensor:
    """exp(-|w - o_k|^2 / 2), (n, M, 7), as |w|^2 - 2 w.o + |o|^2 (no (n, M, 7, 3) array)."""
    o = _window_offsets(w)
    d2 = w.square().sum(-1, keepdim=True) - 2.0 * w @ o.T + o.square().sum(-1)
    return torch.exp(-0.5 * d2)


def _windows_value(v: Tensor, w: Tensor, s: Tensor) -> Tensor:
    return s[:, None] * _windows(w)


def _windows_moments(psi: Tensor, w: Tensor, g: Tensor) -> Tensor:
    # grad_w exp(-|w - o|^2 / 2) . g = -(w . g - o . g) exp(...) (h = s h_hat and dw/dv = 1/s
    # cancel)
    with torch.no_grad():
        weight = psi.unsqueeze(-1) * _windows(w)  # (n, M, 7)
    wg = torch.einsum("nmj,nj->nm", w, g)
    og = g @ _window_offsets(w).T  # (n, 7)
    return torch.einsum("nmk,nk->mk", weight, og) - torch.einsum("nmk,nm->mk", weight, wg)


FAMILIES: dict[str, VelocityFamily] = {
    f.name: f
    for f in (
        VelocityFamily("linear", 3, _linear_value, _linear_moments, _linear_sums),
        VelocityFamily("cubic", 3, _cubic_value, _cubic_moments, _sums_of(_cubic_value)),
        VelocityFamily(
            "windows",
            len(_OFFSETS),
            _windows_value,
            _windows_moments,
            _sums_of(_windows_value),
        ),
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
