r"""The stationarity residual of the collisionless Boltzmann equation and the training losses.

For a stationary :math:`f` in a potential :math:`\Phi`,

.. math:: \frac{d f}{d t} = \vec v\cdot\nabla_x f - \nabla\Phi\cdot\nabla_v f = 0 .

Dividing by :math:`f` gives the same condition for :math:`\ln f`,
:math:`r = \vec v\cdot\nabla_x\ln f - \nabla\Phi\cdot\nabla_v\ln f`, which is better conditioned
(it does not vanish in the tails where :math:`f` does). The paper's loss (Green & Ting 2020,
eq. 3) is

.. math:: \mathcal L = \left\langle \operatorname{asinh}\left|\frac{df}{dt}\right|
          + \lambda\,\operatorname{asinh}\big(\max(-\nabla^2\Phi, 0)\big)\right\rangle ,

the second term penalising negative densities. Here both terms are made dimensionless with the
potential's own scales (time :math:`L/\sigma_v`, phase-space volume), so one :math:`\lambda`
serves N-body and Galactic units alike.

``crossfit`` uses two independent estimates :math:`r_A, r_B` of the residual (from two groups
of flow members, whose gradient errors are nearly independent):
:math:`\langle\operatorname{asinh} r_A\,\operatorname{asinh} r_B\rangle`.
Noise in :math:`\nabla_v \ln f` enters :math:`|r|^2` quadratically and biases the force low
(attenuation); it averages out of the cross product when the two estimates' errors are
independent.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["LOSSES", "cbe_residual", "stationarity_loss", "negative_density_penalty"]

LOSSES = ("lnf", "f", "crossfit")


def cbe_residual(v: Tensor, grad_phi: Tensor, gx: Tensor, gv: Tensor) -> Tensor:
    """v . grad_x g - grad Phi . grad_v g, with (gx, gv) the gradients of g = ln f (or f)."""
    return (v * gx).sum(-1) - (grad_phi * gv).sum(-1)


def negative_density_penalty(lap: Tensor, lap_scale: Tensor | float) -> Tensor:
    """asinh(max(-lap Phi, 0)), lap Phi in units of ``lap_scale`` (per point)."""
    return torch.asinh(torch.clamp(-lap / lap_scale, min=0.0))


def stationarity_loss(
    kind: str,
    v: Tensor,
    grad_phi: Tensor,
    gx: Tensor,
    gv: Tensor,
    time_scale: Tensor | float,
    f_scale: Tensor | None = None,
    gx_b: Tensor | None = None,
    gv_b: Tensor | None = None,
) -> Tensor:
    """Per-point stationarity term of the loss (before the density penalty).

    ``kind``: ``lnf`` (asinh |d ln f/dt|), ``f`` (the paper's asinh |df/dt|; ``f_scale`` is f at
    the points in units of the standardised phase-space volume) or ``crossfit`` (needs the second
    copy ``gx_b``, ``gv_b`` of grad ln f).
    """
    r = cbe_residual(v, grad_phi, gx, gv) * time_scale
    if kind == "lnf":
        return torch.asinh(r.abs())
    if kind == "f":
        if f_scale is None:
            raise ValueError("the f-space loss needs f at the points (f_scale)")
        return torch.asinh((r * f_scale).abs())
    if kind == "crossfit":
        if gx_b is None or gv_b is None:
            raise ValueError("the crossfit loss needs a second, independent grad ln f estimate")
        r_b = cbe_residual(v, grad_phi, gx_b, gv_b) * time_scale
        return torch.asinh(r) * torch.asinh(r_b)
    raise ValueError(f"unknown loss {kind!r}; use one of {LOSSES}")
