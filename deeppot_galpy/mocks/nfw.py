r"""An isotropic, energy-truncated NFW halo, in units :math:`G = a = 1` and galpy ``amp = 1``.

The potential is the full NFW potential (Navarro, Frenk & White 1997),

.. math::
    \Phi(r) = -\frac{\ln(1 + r)}{r}, \qquad
    \rho(r) = \frac{1}{4\pi\, r (1 + r)^2}, \qquad
    M(<r) = \ln(1 + r) - \frac{r}{1 + r},

whose mass diverges logarithmically, so the stars cannot follow :math:`\rho` to infinity. They
are tracers with the *lowered* Eddington distribution function

.. math:: f(E) = f_{\rm Edd}(E)\;\Theta\big(\Phi(r_{\max}) - E\big),

:math:`f_{\rm Edd}` the Eddington inversion of the NFW density in its own potential (galpy's
``eddingtondf``, with its cut at :math:`E = \Phi(r_{\max})`). Cutting in energy, not radius,
keeps the system exactly stationary: :math:`f` is a function of :math:`E` alone, every star is
bound inside :math:`r_{\max}`, and the tracer density

.. math:: \nu(r) = 4\pi \int_0^{v_{\max}(r)} v^2 f\big(\Phi(r) + v^2/2\big)\,dv, \qquad
          v_{\max} = \sqrt{2[\Phi(r_{\max}) - \Phi(r)]},

equals :math:`\rho` in the cusp and falls to zero at :math:`r_{\max}` (``tracer_density``).
The truth a fit is scored against is the NFW :math:`\Phi`, forces and :math:`\rho` above.

Sampling is exact by rejection. galpy's ``eddingtondf.sample`` draws radii from :math:`\rho`
inside :math:`r_{\max}` and velocities from :math:`p(v\,|\,r) \propto v^2 f` below
:math:`v_{\max}`, i.e. the joint density :math:`\propto r^2\rho\,v^2 f/\nu`; keeping a star with
probability :math:`\nu(r)/\rho(r) \leq 1` leaves :math:`\propto r^2 v^2 f`, the target.
:math:`\ln f` and :math:`d\ln f/dE` come from a cubic spline of galpy's exact :math:`f(E)` in
:math:`\ln(E - \Phi(0))` (which absorbs the cusp's :math:`f \propto (E - \Phi(0))^{-5/2}`).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import integrate
from scipy.interpolate import CubicSpline

from ..phasespace import PhaseSpace
from .base import MockSystem
from .hernquist import sample_galpy_df

__all__ = ["NFW"]


class NFW(MockSystem):
    """Isotropic NFW tracers (galpy ``NFWPotential(amp=1, a=1)``), energy-truncated at ``rmax``."""

    name = "nfw"

    def __init__(self, rmax: float = 10.0):
        if rmax <= 0.1:
            raise ValueError("rmax must be well outside the scale radius (a = 1)")
        self.rmax = float(rmax)
        self.r_range = (0.1, 0.8 * self.rmax)  # scored inside the truncation's fall-off
        self._df = None
        self._lnf: CubicSpline | None = None
        self._accept: CubicSpline | None = None
        self._mass: float | None = None

    @property
    def params(self) -> dict:
        return {"amp": 1.0, "a": 1.0, "rmax": self.rmax, "truncation": "energy"}

    def galpy_potential(self):
        from galpy.potential import NFWPotential

        return NFWPotential(amp=1.0, a=1.0)

    @property
    def e_max(self) -> float:
        """The truncation energy Phi(rmax)."""
        return float(-np.log1p(self.rmax) / self.rmax)

    # ---- the distribution function -------------------------------------------------------
    def _build(self) -> None:
        from galpy.df import eddingtondf

        self._df = eddingtondf(self.galpy_potential(), rmax=self.rmax)
        # ln f as a spline in u = ln(E - Phi(0)), Phi(0) = -1, as f ~ (E + 1)^(-5/2) in the cusp;
        # nodes log-spaced there and linear above, where ln f bends as E nears the cut. galpy's
        # f(E) is 0 at the cut itself, so the grid ends a hair below it. Measured: |d ln f| <
        # 2e-6 between nodes, d ln f / dE to ~1e-8 (relative) for E + 1 > 1e-8.
        top = (self.e_max + 1.0) * (1.0 - 1e-9)
        w = np.concatenate([np.geomspace(1e-10, 0.05, 100), np.linspace(0.05, top, 100)[1:]])
        with warnings.catch_warnings():  # galpy's quad warns near the cusp; the values are fine
            warnings.simplefilter("ignore", integrate.IntegrationWarning)
            self._lnf = CubicSpline(np.log(w), np.log(self._df.fE(w - 1.0)))
        # Acceptance nu(r) / rho(r) = s^3 H(ln r) with s^2 = (e_max - Phi) / (e_max + 1):
        # nu ~ f(e_max) v_max^3 at r_max, so H is smooth up to r_max, where nu / rho is not.
        ln_r = np.linspace(np.log(1e-6 * self.rmax), np.log(self.rmax * (1.0 - 1e-6)), 120)
        r = np.exp(ln_r)
        nu = np.array([self._nu_unnormalised(ri) for ri in r])
        self._accept = CubicSpline(ln_r, nu / (self._rho(r) * self._s3(r)))
        self._mass = integrate.quad(
            lambda lr: 4.0 * np.pi * np.exp(3 * lr) * self._rho(np.exp(lr)) * self._acceptance(lr),
            np.log(1e-8 * self.rmax),
            np.log(self.rmax),
            limit=200,
        )[0]

    def _s3(self, r: np.ndarray) -> np.ndarray:
        return np.clip((self.e_max + np.log1p(r) / r) / (self.e_max + 1.0), 0.0, None) ** 1.5

    def _acceptance(self, ln_r: np.ndarray) -> np.ndarray:
        """nu / rho at ln r, clipped to [0, 1] against spline error (~1e-6)."""
        ln_r = np.minimum(ln_r, np.log(self.rmax))
        return np.clip(self._s3(np.exp(ln_r)) * self._accept(ln_r), 0.0, 1.0)

    def _ensure_built(self) -> None:
        if self._lnf is None:
            self._build()

    def _ln_fe(self, e: np.ndarray) -> np.ndarray:
        """ln f_Edd(E) (mass-normalised to the untruncated NFW) for E in (-1, e_max)."""
        return self._lnf(np.log(e + 1.0))

    def _nu_unnormalised(self, r: float) -> float:
        phi = float(-np.log1p(r) / r)
        if phi >= self.e_max:
            return 0.0

        # nu = 4 pi int sqrt(2 (E - Phi)) f(E) dE over [Phi, e_max], in s = ln(E - Phi).
        def integrand(s: float) -> float:
            de = np.exp(s)
            return de * np.sqrt(2.0 * de) * np.exp(self._ln_fe(phi + de))

        lo = np.log(1e-12 * (self.e_max - phi))
        return 4.0 * np.pi * integrate.quad(integrand, lo, np.log(self.e_max - phi), limit=200)[0]

    @property
    def tracer_mass(self) -> float:
        """Mass of the truncated tracer population in units of the NFW amp (< M(<rmax))."""
        self._ensure_built()
        return float(self._mass)

    def tracer_density(self, x: np.ndarray) -> np.ndarray:
        """Number density nu(r) of the stars, normalised to unit total mass."""
        self._ensure_built()
        r = np.linalg.norm(x, axis=-1)
        inside = r < self.rmax
        out = np.zeros(r.shape)
        out[inside] = self._rho(r[inside]) * self._acceptance(np.log(r[inside])) / self._mass
        return out

    def sample(self, n: int, seed: int) -> PhaseSpace:
        self._ensure_built()
        rng = np.random.default_rng(seed)
        xs, vs, have = [], [], 0
        batch_seed = seed
        while have < n:
            # Acceptance is tracer_mass / M(<rmax) (~0.8 for rmax = 10): oversample a little.
            m = int(1.3 * (n - have) * self._mass_rho() / self._mass) + 64
            x, v = sample_galpy_df(self._df, m, batch_seed)
            batch_seed = int(rng.integers(2**31))
            r = np.linalg.norm(x, axis=1)
            keep = rng.uniform(size=m) < self._acceptance(np.log(r))
            xs.append(x[keep])
            vs.append(v[keep])
            have += int(keep.sum())
        x, v = np.concatenate(xs)[:n], np.concatenate(vs)[:n]
        return PhaseSpace(x, v, self.units, {"mock": self.describe(), "seed": seed})

    def _mass_rho(self) -> float:
        return float(np.log1p(self.rmax) - self.rmax / (1.0 + self.rmax))

    def energy(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        return 0.5 * np.sum(v**2, axis=-1) + self.potential(x)

    def log_df(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        self._ensure_built()
        e = self.energy(x, v)
        inside = (e > -1.0) & (e < self.e_max)
        out = np.full(e.shape, -np.inf)
        out[inside] = self._ln_fe(e[inside]) - np.log(self._mass)
        return out

    def grad_log_df(self, x: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._ensure_built()
        e = self.energy(x, v)
        # d ln f / dE = (d ln f / du) / (E + 1); grad_x E = grad Phi, grad_v E = v.
        dlnf = (self._lnf(np.log(e + 1.0), 1) / (e + 1.0))[:, None]
        return dlnf * (-self.acceleration(x)), dlnf * v

    # ---- the potential -------------------------------------------------------------------
    @staticmethod
    def _rho(r: np.ndarray) -> np.ndarray:
        return 1.0 / (4.0 * np.pi * r * (1.0 + r) ** 2)

    def potential(self, x: np.ndarray) -> np.ndarray:
        r = np.linalg.norm(x, axis=-1)
        return -np.log1p(r) / r

    def acceleration(self, x: np.ndarray) -> np.ndarray:
        r = np.linalg.norm(x, axis=-1, keepdims=True)
        return -(np.log1p(r) - r / (1.0 + r)) * x / r**3

    def density(self, x: np.ndarray) -> np.ndarray:
        return self._rho(np.linalg.norm(x, axis=-1))

    def enclosed_mass(self, r: np.ndarray) -> np.ndarray:
        """M(<r) of the NFW density (the potential's source, not the tracers)."""
        return np.log1p(r) - r / (1.0 + r)
