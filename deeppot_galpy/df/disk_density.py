r"""The stars' number density :math:`\nu(R, z)` in a disk's survey volume, from their positions.

For stars even in z and round about the z axis (``symmetry`` resolved to ``mirror``) seen in a
survey volume around the Sun, the spatial factor of :math:`f = n(\vec x)\,p(\vec v\mid\vec x)`
is :math:`\nu(R, z)`, a smooth function of two variables. A 3D position flow ripples: on the
local-disk mock its :math:`d\ln n/dz` at the Sun swings by 20-50% from one 0.1 kpc to the next,
and what the smooth potential does not average away leaves :math:`K_z` 7-12% strong from 0.25
to 1.1 kpc (``benchmarks/RESULTS.md``, sections 13 and 25). Here

.. math:: \ln\nu(R, z) = \sum_{k=0}^{2} c_k\!\left(\frac{z^2}{s_z^2}\right)
          \left(\frac{R - R_c}{s_R}\right)^k,

the coefficients :math:`c_k` a small smooth (SiLU) MLP of :math:`z^2`, so :math:`\nu` is even
in z and flat through the plane by construction, free in its vertical profile and quadratic in
R at every height. A disk's density changes in R over its scale length (2-3 kpc, and a flare's
several), so across a survey volume of a kpc or two ln nu is close to linear in R; a network
free in both R and z let 2^17 stars' noise bend the radial log-slope by up to 0.1 kpc^-1 near a
small volume's side. The quadratic misses it by 2-5 times less there, and on one of two samples
of stars it also lowered the mid-plane density's deficit, -8% -> -2% (``benchmarks/RESULTS.md``,
section 28). What it smooths is a thin disk that bends faster near the plane than a sech^2:
on the local-disk mock the vertical log-slope at 0.05 kpc is 0.92 +- 0.03 of the truth over six
samples of 2^17 stars (unbiased on an exact sech^2 disk); half the height scale removes that on
average but lets the stars' noise swing it from 0.48 to 1.39 (section 29).

It is fitted by maximum likelihood of the stars' positions, with the volume's
edge and the catalog's completeness S (a magnitude limit, :mod:`deeppot_galpy.completeness`)
in the model, so :math:`\nu` is the density before the selection:

.. math:: \mathcal L(\theta, R_e, s) = \bigl\langle g(\vec x_i) + \ln E(d_i)\bigr\rangle_i
          - \ln\bigl\langle e^{g(\vec u_j)}\, E(d_j)\, S(\vec u_j)\bigr\rangle_j ,
          \qquad E(d) = \Phi\!\left(\frac{R_e - d}{s}\right),

d the distance from the volume's centre :math:`\vec c_e`, :math:`\vec u_j` fresh uniform points
every step in a ball a quarter wider than the volume (stars beyond it are left out, which keeps
the likelihood exact). E is the volume's edge, a ball of radius :math:`R_e` cut in true
distance and blurred by the parallax errors, which move stars along the line of sight, i.e.
radially (s fitted; a cut in measured distance gives s -> 0). Its centre is fitted too. For
stars cut to a cylinder (:class:`~deeppot_galpy.phasespace.FilledVolume`, ``region["z_fit"]``)
E is the product of a side and a top-and-bottom edge,
:math:`\Phi((R_e - R_\odot)/s)\,\Phi((H_e - |z - z_c|)/s_z)`, :math:`R_\odot` the
distance from the cylinder's axis, with :math:`H_e` and the faces' own blur :math:`s_z` fitted
too (distance errors move stars along lines of sight that cross the faces at other angles
than the side), and the uniform points fill a cylinder a quarter wider and taller.

Why the edge is in the model: a hard ball at the stars' 99th-percentile radius read the blur
of DR3-like parallax errors as a density falling with height (the vertical log-slope at the Sun
5-11% steep at 0.95-1.05 kpc, K_z 22% strong at 1.1 kpc); a flow smears the edge into a false
gradient instead. Why its centre: the middle of the stars' extent sits 30 pc from the Sun,
towards the denser inner side, and an edge misplaced by that much was absorbed by nu as a
radial slope at the rim, off by up to 0.5 kpc^-1 (the truth's is -0.41) and worst in the plane
at the volume's radial ends. With all three fitted (the mock's 1.5 kpc cut found at 1.490-1.499
kpc, within 2 pc of the Sun, blurred by 3 pc noiseless and 72 pc with DR3-like errors, whose
parallax blur there is 67 pc) the radial log-slope is within 0.05 kpc^-1 across the volume and
the vertical one within 3% from 0.25 to 0.85 kpc and 4.4% up to 1.05 kpc on two samples of
stars (``benchmarks/RESULTS.md``, sections 25-26).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import trange

from ..completeness import Completeness
from ..phasespace import FilledVolume

__all__ = ["DiskDensity"]

_RADIAL_DEGREE = 2  # ln nu's polynomial degree in R (module doc)
_REACH = 1.25  # the uniform points' ball over the volume's 99th-percentile radius


class DiskDensity:
    """ln nu(R, z) (up to a constant) of a mirror-symmetric disk; fit with :meth:`fit`, which
    also sets the volume's fitted ``edge`` radius, its blur ``edge_width``, its ``edge_center``
    and, for a cylinder, its ``edge_half_height`` and the faces' blur ``edge_faces_width``
    (NaN for a ball)."""

    def __init__(self, net: nn.Module, R_c: float, s_R: float, s_z: float):
        self.net, self.R_c, self.s_R, self.s_z = net, R_c, s_R, s_z
        self._powers = torch.arange(_RADIAL_DEGREE + 1, dtype=torch.float64)
        self.edge = self.edge_width = self.edge_half_height = self.edge_faces_width = math.nan
        self.edge_center = np.full(3, math.nan)

    def _log_nu(self, x: Tensor) -> Tensor:
        R = torch.sqrt(x[:, 0] ** 2 + x[:, 1] ** 2)
        coefficients = self.net((x[:, 2:] / self.s_z) ** 2)
        return (coefficients * ((R - self.R_c) / self.s_R)[:, None] ** self._powers).sum(1)

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        region: dict,
        seed: int,
        completeness: Completeness | None = None,
        steps: int = 3000,
        batch: int = 8192,
        lr: float = 3e-3,
        hidden: int = 64,
        progress: bool = False,
    ) -> DiskDensity:
        """Fit to the star positions x (N, 3) about the middle of ``region``
        (:meth:`PhaseSpace.region <deeppot_galpy.phasespace.PhaseSpace.region>`): Adam with a
        one-cycle rate, ``batch`` stars and as many uniform points per step. A cylinder's
        volume (``region["z_fit"]``) has an edge on its side and one on its top and bottom, at
        a fitted radius and half-height, each with its own blur."""
        volume = FilledVolume.of(region)
        center, edge, height = volume.center, volume.radius, volume.half_height
        x = np.asarray(x, dtype=np.float64)
        offset = x - center
        if height is None:
            reach = FilledVolume(
                center, min(float(np.linalg.norm(offset, axis=1).max()) * (1 + 1e-6), _REACH * edge)
            )
        else:
            reach = FilledVolume(
                center,
                min(float(np.hypot(offset[:, 0], offset[:, 1]).max()) * (1 + 1e-6), _REACH * edge),
                min(float(np.abs(offset[:, 2]).max()) * (1 + 1e-6), _REACH * height),
            )
        x = x[reach.depth(x) > 0]
        if len(x) < 100:
            raise ValueError(f"the disk density needs >= 100 stars in its volume, got {len(x)}")
        R = np.hypot(x[:, 0], x[:, 1])
        gen = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng():  # the network's initialisation, from the seed alone
            torch.manual_seed(seed)
            net = (
                nn.Sequential(nn.Linear(1, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU())
                .append(nn.Linear(hidden, _RADIAL_DEGREE + 1))
                .double()
            )
        out = cls(net, float(np.median(R)), float(R.std()), float(np.sqrt(np.mean(x[:, 2] ** 2))))
        # the edge: radius R_e, blur s (as ln s), centre offset, and a cylinder's half-height
        # and the blur of its faces, which distance errors move along lines of sight that
        # meet them at other angles than the side, from the stars' own extent
        edge_shape = torch.tensor(
            [edge, math.log(0.02 * edge), 0.0, 0.0, 0.0, height or math.nan]
            + [math.log(0.02 * (height or edge))],
            dtype=torch.float64,
            requires_grad=True,
        )
        stars, c = torch.as_tensor(x), torch.as_tensor(center, dtype=torch.float64)

        def log_edge(points: Tensor) -> Tensor:
            width = torch.exp(edge_shape[1]).clamp(min=1e-3 * edge)
            d = points - c - edge_shape[2:5]
            if height is None:
                return torch.special.log_ndtr((edge_shape[0] - torch.linalg.norm(d, dim=1)) / width)
            side = torch.special.log_ndtr(
                (edge_shape[0] - torch.linalg.norm(d[:, :2], dim=1)) / width
            )
            faces = torch.exp(edge_shape[6]).clamp(min=1e-3 * height)
            return side + torch.special.log_ndtr((edge_shape[5] - d[:, 2].abs()) / faces)

        def uniform(n: int) -> Tensor:
            if height is None:
                g = torch.randn(n, 3, generator=gen, dtype=torch.float64)
                r = reach.radius * torch.rand(n, 1, generator=gen, dtype=torch.float64) ** (1 / 3)
                return c + g / g.norm(dim=1, keepdim=True) * r
            u = torch.rand(n, 3, generator=gen, dtype=torch.float64)
            r, phi = reach.radius * torch.sqrt(u[:, 0]), 2 * math.pi * u[:, 1]
            z = reach.half_height * (2 * u[:, 2] - 1)
            return c + torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], 1)

        sun = None if completeness is None else torch.as_tensor(completeness.center)
        opt = torch.optim.Adam([*net.parameters(), edge_shape], lr=lr)
        schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
        for _ in trange(steps, desc="stars' nu(R, z)", disable=not progress, leave=False):
            rows = torch.randint(len(stars), (batch,), generator=gen)
            u = uniform(batch)
            log_norm = out._log_nu(u) + log_edge(u)
            if completeness is not None:
                d_sun = torch.linalg.norm(u - sun, dim=1)
                log_norm = log_norm + torch.as_tensor(completeness.log_relative(d_sun.numpy()))
            log_like = out._log_nu(stars[rows]) + log_edge(stars[rows])
            loss = torch.logsumexp(log_norm, 0) - math.log(batch) - log_like.mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
        edge_radius, log_width, *offset, half_height, log_faces = edge_shape.detach().tolist()
        out.edge, out.edge_width = edge_radius, max(math.exp(log_width), 1e-3 * edge)
        if height is not None:
            out.edge_faces_width = max(math.exp(log_faces), 1e-3 * height)
        out.edge_center = center + np.asarray(offset)
        out.edge_half_height = half_height
        net.requires_grad_(False)
        return out

    def log_density(self, x: np.ndarray) -> np.ndarray:
        """ln nu at x (N, 3), up to a constant."""
        return self._log_nu(torch.as_tensor(np.asarray(x, dtype=np.float64))).numpy()

    def grad_log(self, x: np.ndarray) -> np.ndarray:
        """grad ln nu at x (N, 3), in the positions' inverse length unit."""
        t = torch.as_tensor(np.asarray(x, dtype=np.float64)).requires_grad_(True)
        with torch.enable_grad():
            return torch.autograd.grad(self._log_nu(t).sum(), t)[0].numpy()
