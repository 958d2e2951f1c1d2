r"""A rotating disk of tracer stars in a Miyamoto-Nagai potential, phase-mixed to stationarity.

Units are galpy's natural units (:math:`G = 1`; with ro = 8 kpc, vo = 220 km/s they read as
kpc and km/s): the circular speed is ``vc_sun`` at :math:`R = 1`. The potential
(Miyamoto & Nagai 1975) and its density are

.. math::
    \Phi = -\frac{GM}{D}, \quad D^2 = R^2 + (a + \zeta)^2, \quad \zeta = \sqrt{z^2 + b^2},
    \qquad
    \rho = \frac{b^2 M}{4\pi}\,\frac{a R^2 + (a + 3\zeta)(a + \zeta)^2}{D^5 \zeta^3}.

The defaults (a = 3 kpc, b = 280 pc) are the disk of galpy's ``MWPotential2014``.

No closed-form DF is used. Stars are drawn in two steps:

1. *Near-equilibrium initial conditions* (Binney & Tremaine 2008, sec. 4.8): surface density
   :math:`\Sigma \propto e^{-R/R_d}`, Gaussian heights of dispersion ``h_z``;
   :math:`\sigma_R = \sigma_{R,\odot} e^{-(R - 1)/2R_d}` (capped at :math:`v_c/2`),
   :math:`\sigma_\phi^2 = \sigma_R^2 \kappa^2 / 4\Omega^2` (epicycles), the mean rotation from
   the asymmetric-drift equation
   :math:`\bar v_\phi^2 = v_c^2 + \sigma_R^2(1 - 2R/R_d - \kappa^2/4\Omega^2)` (clipped at 0),
   and :math:`\sigma_z^2(R) = \nu_0^{-1}\int_0^\infty \nu(z)\,\partial_z\Phi\,dz` from the
   vertical Jeans equation for the Gaussian layer.
2. *Phase mixing*: each orbit is integrated with galpy's C integrator (``dop853_c``) to its own
   random time :math:`t_i \sim U(t_{burn}, t_{burn} + t_{mix})`. The snapshot is then the time
   average of the evolving ensemble over that window, so evolving it on by :math:`\Delta` changes
   any binned count by at most :math:`(\Delta / t_{mix}) \max_{s,s'} |n(s) - n(s')|` (the average
   is over a window shifted by :math:`\Delta`); the burn-in lets the initial conditions' fast
   vertical relaxation pass first. The result is stationary up to sampling noise, which
   ``tests/test_mocks_disk.py`` checks by integrating a snapshot forward.

The cost is ~0.6 ms per star on one core at the defaults (~80 s for :math:`2^{17}` stars).
"""

from __future__ import annotations

import numpy as np

from ..phasespace import PhaseSpace
from .base import MockSystem

__all__ = ["MiyamotoNagaiDisk"]


class MiyamotoNagaiDisk(MockSystem):
    """Tracer disk (scale length ``R_d``) in ``MiyamotoNagaiPotential(amp=M, a, b)``, G = 1.

    ``sigma_R_sun`` is the radial dispersion at R = 1 and ``h_z`` the initial dispersion of
    heights; ``t_burn``, ``t_mix`` set the phase-mixing window (one orbit at R = 1 takes 2 pi).
    """

    name = "mn_disk"
    r_range = (0.1, 2.0)
    solar_radius = 1.0

    def __init__(
        self,
        a: float = 3.0 / 8.0,
        b: float = 0.28 / 8.0,
        vc_sun: float = 1.0,
        R_d: float = 3.0 / 8.0,
        sigma_R_sun: float = 0.15,
        h_z: float = 0.3 / 8.0,
        t_burn: float = 10.0,
        t_mix: float = 50.0,
    ):
        if min(a, b, vc_sun, R_d, sigma_R_sun, h_z, t_mix) <= 0 or t_burn < 0:
            raise ValueError("disk parameters must be positive (t_burn >= 0)")
        self.a, self.b, self.vc_sun = float(a), float(b), float(vc_sun)
        self.R_d, self.sigma_R_sun, self.h_z = float(R_d), float(sigma_R_sun), float(h_z)
        self.t_burn, self.t_mix = float(t_burn), float(t_mix)
        # v_c^2(R=1, z=0) = GM / (1 + (a + b)^2)^{3/2}
        self.M = vc_sun**2 * (1.0 + (a + b) ** 2) ** 1.5

    @property
    def params(self) -> dict:
        keys = ("a", "b", "vc_sun", "M", "R_d", "sigma_R_sun", "h_z", "t_burn", "t_mix")
        return {k: getattr(self, k) for k in keys}

    def galpy_potential(self):
        from galpy.potential import MiyamotoNagaiPotential

        return MiyamotoNagaiPotential(amp=self.M, a=self.a, b=self.b)

    # ---- the potential -------------------------------------------------------------------
    def _parts(self, x: np.ndarray):
        R2 = x[..., 0] ** 2 + x[..., 1] ** 2
        zeta = np.sqrt(x[..., 2] ** 2 + self.b**2)
        D = np.sqrt(R2 + (self.a + zeta) ** 2)
        return R2, zeta, D

    def potential(self, x: np.ndarray) -> np.ndarray:
        return -self.M / self._parts(x)[2]

    def acceleration(self, x: np.ndarray) -> np.ndarray:
        _, zeta, D = self._parts(x)
        g = -self.M / D**3
        return np.stack([g * x[..., 0], g * x[..., 1], g * x[..., 2] * (self.a + zeta) / zeta], -1)

    def density(self, x: np.ndarray) -> np.ndarray:
        R2, zeta, D = self._parts(x)
        a = self.a
        num = a * R2 + (a + 3.0 * zeta) * (a + zeta) ** 2
        return self.b**2 * self.M / (4.0 * np.pi) * num / (D**5 * zeta**3)

    # ---- sampling ------------------------------------------------------------------------
    def initial_conditions(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Near-equilibrium (R, vR, vT, z, vz, phi), (n, 6), before phase mixing."""
        from galpy.potential import epifreq, evaluatezforces, omegac, vcirc

        pot = self.galpy_potential()
        R = self.R_d * rng.gamma(2.0, 1.0, n)  # Sigma ~ exp(-R/R_d): R e^{-R/R_d} in R
        # Smooth radial functions on a grid, interpolated (galpy's are scalar-friendly only).
        Rg = np.geomspace(1e-3 * self.R_d, max(R.max(), 1.0) * 1.01, 256)
        vc = np.asarray(vcirc(pot, Rg, use_physical=False))
        k2_4o2 = np.asarray(epifreq(pot, Rg, use_physical=False)) ** 2 / (
            4.0 * np.asarray(omegac(pot, Rg, use_physical=False)) ** 2
        )
        # sigma_z^2 nu_0 = int_0^inf nu dPhi/dz dz for nu ~ exp(-z^2 / 2 h^2): Gauss-Hermite.
        t, w = np.polynomial.hermite_e.hermegauss(48)
        t, w = t[t > 0], w[t > 0]
        Kz = np.asarray(
            evaluatezforces(
                pot, np.repeat(Rg, len(t)), np.tile(self.h_z * t, len(Rg)), use_physical=False
            )
        ).reshape(len(Rg), len(t))
        sz = np.sqrt(-self.h_z * (Kz * w).sum(1))
        sR = np.minimum(self.sigma_R_sun * np.exp(-(Rg - 1.0) / (2.0 * self.R_d)), 0.5 * vc)
        vphi = np.sqrt(np.clip(vc**2 + sR**2 * (1.0 - 2.0 * Rg / self.R_d - k2_4o2), 0.0, None))
        sR, sz, vphi, k = (np.interp(R, Rg, q) for q in (sR, sz, vphi, np.sqrt(k2_4o2)))
        return np.stack(
            [
                R,
                sR * rng.standard_normal(n),
                vphi + sR * k * rng.standard_normal(n),
                self.h_z * rng.standard_normal(n),
                sz * rng.standard_normal(n),
                rng.uniform(0.0, 2.0 * np.pi, n),
            ],
            axis=1,
        )

    def sample(self, n: int, seed: int) -> PhaseSpace:
        from galpy.orbit import Orbit

        rng = np.random.default_rng(seed)
        ic = self.initial_conditions(n, rng)
        t_end = self.t_burn + self.t_mix * rng.uniform(size=n)
        orbits = Orbit(ic)
        # One time grid per orbit, [0, t_i]: galpy integrates each to its own end time.
        orbits.integrate(
            np.stack([np.zeros(n), t_end], axis=1),
            self.galpy_potential(),
            method="dop853_c",
            rtol=1e-6,  # energy conserved to ~1e-6, far below what a fit resolves
            atol=1e-9,
            numcores=1,
            progressbar=False,
        )
        R, vR, vT, z, vz, phi = orbits.getOrbit()[:, -1].T
        c, s = np.cos(phi), np.sin(phi)
        x = np.stack([R * c, R * s, z], axis=1)
        v = np.stack([vR * c - vT * s, vR * s + vT * c, vz], axis=1)
        return PhaseSpace(x, v, self.units, {"mock": self.describe(), "seed": seed})
