r"""The distribution function as a density in space times a velocity distribution at each place.

.. math:: f(\vec x, \vec v) = n(\vec x)\, p(\vec v \mid \vec x), \qquad
          \ln f = \ln n(\vec x) + \ln p(\vec v \mid \vec x),

with n a flow on the positions and p a conditional flow on the velocities (its couplings read the
position), as Buckley et al. (2023) and Kalda & Green (2026) model Gaia stars. Before the
conditional flow, the velocities are centred and whitened by a smooth function of position,

.. math:: \vec w = e^{-S(\vec x)} \bigl(\vec u - \vec m(\vec x)\bigr), \qquad
          S = S_{\rm MLP}(\vec x) + b(\vec x)\,
              \frac{\vec y \vec y^{\mathsf T}}{|\vec y|^2 + \epsilon},
          \qquad \ln\lvert\det \partial\vec w/\partial\vec u\rvert = -\operatorname{tr} S,

where u and y are the standardised velocity and position, m the mean velocity (streaming,
rotation) and e^S, S symmetric, the velocity ellipsoid: its size and orientation at every
place. The radial term lets the ellipsoid point along the radius vector (the Osipkov-Merritt
"cigar", the tilt of a disk's ellipsoid) without a frame that is singular on an axis, so an
ellipsoid that turns with position is one fixed shape to the flow, which only learns what is
not Gaussian. With ``speed_profile`` a monotone spline T of the whitened speed's log comes
next (:class:`SpeedProfile`), :math:`\vec w \to \vec w\, e^{T(\ln|\vec w|) - \ln|\vec w|}`:
a sphere's velocity distribution is round but far from Gaussian in its radial profile (a
Plummer sphere's ends at the escape speed), which the coupling layers, each bending one or two
axes, followed only in part: below a fifth of the escape speed their d ln f / dv was 10-16%
steep, above nine tenths of it 11-24% shallow, the CBE read a force 4-10% weak, and only the
Jeans moments, few at the centre, pulled it back (``benchmarks/RESULTS.md``, section 30).
grad ln f comes by autograd through all of it.

With ``radial_context`` the networks of p also read the distance from the origin
(:func:`~deeppot_galpy.df.flows.position_features`), so the velocity ellipsoid can have a
kink at a spherical potential's centre. Tracers with a flat core in a halo with a cusp need
one: their Jeans equation there reads :math:`d\sigma_r^2/dr = -F_r(0) \neq 0`, a cone in
sigma that smooth functions of x round off, taking the central force with it. A core that
sources its own potential has :math:`d\sigma_r^2/dr = 0` at the centre, and there the extra
freedom costs accuracy (``benchmarks/RESULTS.md``, section 35), so it is off unless set.

With the ``"mixture"`` model, p is instead a mixture of Gaussian velocity ellipsoids whose
weights, means and shapes are an MLP of position (:mod:`.mixture`).

A spatial selection (magnitude limit, survey volume) changes n(x) but not p(v | x).

With ``axisymmetric`` (a survey volume of a disk) p is read in the frame of the data centre's
azimuth :math:`\phi_c`: each star's position and velocity are first rotated about the z axis
by :math:`\phi_c - \phi`,

.. math:: p(\vec v \mid \vec x) = p_\theta\bigl(\mathsf R_{\phi_c - \phi}\,\vec v \mid
          \mathsf R_{\phi_c - \phi}\,\vec x\bigr),

so p depends on (R, z) and the velocity's cylindrical components only, and is the same at
every azimuth by construction (a rotation keeps volumes, so no Jacobian enters). A survey
volume cannot be augmented by rotations about the Galactic centre (they move it off itself,
:mod:`.augment`), and without this the network must learn from the stars how the mean
velocity turns with azimuth across the volume, which is what holds the radial force through
the centrifugal term :math:`v_\phi^2 / R` of the CBE (``benchmarks/RESULTS.md``, section 28).

References:
    Buckley, Lim, Putney & Shih 2023, arXiv:2205.01129; Kalda & Green 2026, arXiv:2512.02115.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from zuko.transforms import MonotonicRQSTransform

from .flows import FlowConfig, build_flow, position_features, position_mlp
from .mixture import VelocityMixture

__all__ = ["FactorisedFlow", "VelocityEllipsoid"]

_EPS = 0.01  # softens the radial tensor y y^T / |y|^2 at the centre (standardised units^2)
_S_MAX = 4.0  # bound on each element of S: ellipsoid axes within e^(+-12) of the standardisation


class VelocityEllipsoid(nn.Module):
    """The mean velocity m(x) and log-ellipsoid S(x) (symmetric 3x3) at standardised positions."""

    def __init__(self, hidden: tuple[int, ...], features: int = 3):
        super().__init__()
        self.net = position_mlp(hidden, 3 + 6 + 1, features)
        # start at the identity: zero mean, unit ellipsoid (the standardisation's)
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        rows, cols = torch.triu_indices(3, 3)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)

    def forward(self, y: Tensor, features: Tensor) -> tuple[Tensor, Tensor]:
        """Mean (N, 3) and S (N, 3, 3) at standardised positions y (N, 3), whose
        :func:`position_features` are ``features``."""
        out = self.net(features)
        # bounded, so a star far outside the others cannot overflow the matrix exponential
        out = torch.cat([out[:, :3], _S_MAX * torch.tanh(out[:, 3:] / _S_MAX)], dim=1)
        upper = out.new_zeros(len(y), 3, 3)
        upper[:, self.rows, self.cols] = out[:, 3:9]
        s = 0.5 * (upper + upper.transpose(1, 2))
        radial = y[:, :, None] * y[:, None, :] / ((y * y).sum(1) + _EPS)[:, None, None]
        return out[:, :3], s + out[:, 9, None, None] * radial


class SpeedProfile(nn.Module):
    r"""A monotone spline T of the whitened speed's log, at each position:
    :math:`\vec w \mapsto \vec w\, e^{T(\ln|\vec w|) - \ln|\vec w|}`, with
    :math:`\ln|\det| = 3\,(T(s) - s) + \ln T'(s)`, s = ln|w|; the identity outside
    |s| <= ``bound`` (so smooth at w = 0) and at initialisation. A coupling flow in three axes
    reshapes a round distribution's radial profile poorly; this one does nothing else."""

    def __init__(self, hidden: tuple[int, ...], bins: int, bound: float = 3.0, features: int = 3):
        super().__init__()
        self.bins, self.bound = bins, bound
        self.net = position_mlp(hidden, 3 * bins - 1, features)
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def _spline(self, features: Tensor) -> MonotonicRQSTransform:
        p = self.net(features)
        k = self.bins
        return MonotonicRQSTransform(p[:, :k], p[:, k : 2 * k], p[:, 2 * k :], bound=self.bound)

    def forward(self, w: Tensor, features: Tensor) -> tuple[Tensor, Tensor]:
        """The reshaped w (N, 3) and ln|det| (N,) at positions whose :func:`position_features`
        are ``features``."""
        s = torch.log(w.norm(dim=1).clamp_min(1e-30))
        t, ladj = self._spline(features).call_and_ladj(s)
        return w * torch.exp(t - s)[:, None], ladj + 3 * (t - s)

    def inverse(self, w: Tensor, features: Tensor) -> Tensor:
        t = torch.log(w.norm(dim=1).clamp_min(1e-30))
        s = self._spline(features).inv(t)
        return w * torch.exp(s - t)[:, None]


class FactorisedFlow(nn.Module):
    """f = n(x) p(v | x) in the model's units; the interface of :class:`PhaseSpaceFlow`.

    p is the whitened conditional flow, or with ``config.model == "mixture"`` the mixture of
    velocity ellipsoids.

    ``mean`` and ``scale`` (6,) are the fixed standardisation of (x, v).
    """

    def __init__(self, mean: Tensor, scale: Tensor, config: FlowConfig = FlowConfig()):
        super().__init__()
        self.config = config
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))
        self.positions = build_flow(3, config)
        if config.model == "mixture":
            self.mixture = VelocityMixture(config.components, config.hidden)
        else:
            width = 4 if config.radial_context else 3
            self.ellipsoid = VelocityEllipsoid(config.hidden, width)
            self.velocities = build_flow(3, config, context=width)
            if config.speed_profile:
                self.speed = SpeedProfile(config.hidden, config.bins, features=width)

    def log_prob_parts(self, eta: Tensor) -> tuple[Tensor, Tensor]:
        """ln n(x) and ln p(v | x) in the model's units, eta (N, 6)."""
        y = (eta[:, :3] - self.mean[:3]) / self.scale[:3]
        log_n = self.positions().log_prob(y) - torch.log(self.scale[:3]).sum()
        z = (self._velocity_frame(eta, 1) - self.mean) / self.scale
        log_p = self._log_p_standardised(z[:, 3:], z[:, :3]) - torch.log(self.scale[3:]).sum()
        return log_n, log_p

    def _velocity_frame(self, eta: Tensor, sign: int) -> Tensor:
        """eta (N, 6), position and velocity, rotated about the z axis by sign (phi_c - phi),
        phi the azimuth of eta's position and phi_c the data centre's, when ``axisymmetric``
        (module doc); else eta itself. With the star's own position, ``sign`` -1 takes a
        velocity read in the centre's frame back to the star's."""
        if not self.config.axisymmetric:
            return eta
        angle = sign * (torch.atan2(self.mean[1], self.mean[0]) - torch.atan2(eta[:, 1], eta[:, 0]))
        c, s = torch.cos(angle), torch.sin(angle)

        def turn(a: Tensor) -> Tensor:
            return torch.stack([c * a[:, 0] - s * a[:, 1], s * a[:, 0] + c * a[:, 1], a[:, 2]], 1)

        return torch.cat([turn(eta[:, :3]), turn(eta[:, 3:])], 1)

    def context(self, y: Tensor) -> Tensor:
        """What p(v | x)'s networks read at standardised positions y: with ``radial_context``,
        the distance from the origin too (a spherical fit's centre)."""
        origin = -self.mean[:3] / self.scale[:3] if self.config.radial_context else None
        return position_features(y, origin)

    def _log_p_standardised(self, u: Tensor, y: Tensor) -> Tensor:
        if self.config.model == "mixture":
            return self.mixture.log_prob(u, y)
        features = self.context(y)
        m, s = self.ellipsoid(y, features)
        w = (torch.linalg.matrix_exp(-s) @ (u - m)[:, :, None])[:, :, 0]
        log_det = -torch.diagonal(s, dim1=1, dim2=2).sum(1)
        if self.config.speed_profile:
            w, ladj = self.speed(w, features)
            log_det = log_det + ladj
        return self.velocities(features).log_prob(w) + log_det

    def log_prob(self, eta: Tensor) -> Tensor:
        """ln f(eta) = ln n(x) + ln p(v | x) in the model's units, eta (N, 6)."""
        log_n, log_p = self.log_prob_parts(eta)
        return log_n + log_p

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        """n phase-space points (n, 6) in the model's units: x from n(x), then v from p(v | x)."""
        x = self.positions().sample((n,)) * self.scale[:3] + self.mean[:3]
        turned = self._velocity_frame(torch.cat([x, torch.zeros_like(x)], 1), 1)[:, :3]
        y = (turned - self.mean[:3]) / self.scale[:3]
        if self.config.model == "mixture":
            u = self.mixture.sample(y)
        else:
            features = self.context(y)
            w = self.velocities(features).sample()
            if self.config.speed_profile:
                w = self.speed.inverse(w, features)
            m, s = self.ellipsoid(y, features)
            u = m + (torch.linalg.matrix_exp(s) @ w[:, :, None])[:, :, 0]
        v = u * self.scale[3:] + self.mean[3:]
        back = self._velocity_frame(torch.cat([x, v], 1), -1)
        return torch.cat([x, back[:, 3:]], 1)
