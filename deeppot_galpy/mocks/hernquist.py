r"""Radially anisotropic Hernquist spheres, in units :math:`G = M = a = 1`: Osipkov-Merritt
(:class:`HernquistOM`) and constant anisotropy (:class:`HernquistBeta`).

.. math::
    \Phi(r) = -\frac{GM}{r + a}, \qquad
    \rho(r) = \frac{M a}{2\pi\, r\, (r + a)^3}, \qquad
    M(<r) = M \frac{r^2}{(r + a)^2}

(Hernquist 1990). The distribution function is of Osipkov-Merritt form (Osipkov 1979;
Merritt 1985), :math:`f = f(Q)` with

.. math:: Q = -E - \frac{L^2}{2 r_a^2}, \qquad E = \tfrac12 v^2 + \Phi,\quad
          L = |\vec x\times\vec v|,

whose anisotropy is :math:`\beta(r) = 1 - \sigma_t^2/2\sigma_r^2 = r^2 / (r^2 + r_a^2)`:
isotropic inside :math:`r_a`, radial outside. :math:`f(Q)` is closed form for the Hernquist
sphere (Baes & Dejonghe 2002) and non-negative for :math:`r_a \geq 0.2021\,a`; galpy's
``osipkovmerrittHernquistdf`` implements it, normalised to the mass density.

Sampling uses galpy's sampler: radii by the analytic inverse of :math:`M(<r)`, then the
velocity of each star from :math:`p(v\,|\,r)` by inverse-CDF interpolation on a fine grid in
:math:`(\log r, v/v_{esc})`, the velocity angle from the OM marginal. The gradients of
:math:`\ln f` are exact through :math:`\nabla Q` times :math:`d\ln f/dQ`, the latter by a
central difference of galpy's closed form (relative accuracy ~1e-9).

The constant-anisotropy sphere has :math:`f = L^{-2\beta} f_E(E)` (galpy's
``constantbetaHernquistdf``); with :math:`\beta = 1/2` and stars within :math:`200a` it is
the system of An, Naik et al. (2021, arXiv:2106.05981), whose metric is the median
:math:`|a_r / a_{r,true} - 1|` at 50 points along an axis between :math:`0.4a` and
:math:`20a` (:meth:`HernquistBeta.radial_force_error`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from ..phasespace import PhaseSpace
from .base import MockSystem

__all__ = ["HernquistBeta", "HernquistOM", "sample_galpy_df"]


@contextmanager
def _seeded_numpy_global(seed: int) -> Iterator[None]:
    """Seed numpy's global RNG (galpy's samplers draw from it) and restore it afterwards."""
    state = np.random.get_state()  # noqa: NPY002 - galpy samples from the legacy global RNG
    np.random.seed(seed)  # noqa: NPY002
    try:
        yield
    finally:
        np.random.set_state(state)  # noqa: NPY002


def sample_galpy_df(df, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` stars from a galpy spherical DF, reproducibly; Cartesian (x, v), (n, 3) each."""
    with _seeded_numpy_global(seed):
        R, vR, vT, z, vz, phi = df.sample(n=n, return_orbit=False)
    c, s = np.cos(phi), np.sin(phi)
    x = np.stack([R * c, R * s, z], axis=1)
    v = np.stack([vR * c - vT * s, vR * s + vT * c, vz], axis=1)
    return x, v


class _Hernquist(MockSystem):
    """The Hernquist sphere's potential, force, density and mass (M = a = 1); galpy's
    ``HernquistPotential(amp=2, a=1)`` (galpy's amp is 2M)."""

    r_range = (0.1, 10.0)  # 0.8% to 83% of the mass

    def galpy_potential(self):
        from galpy.potential import HernquistPotential

        return HernquistPotential(amp=2.0, a=1.0)

    def potential(self, x: np.ndarray) -> np.ndarray:
        return -1.0 / (1.0 + np.linalg.norm(x, axis=-1))

    def acceleration(self, x: np.ndarray) -> np.ndarray:
        r = np.linalg.norm(x, axis=-1, keepdims=True)
        return -x / (r * (1.0 + r) ** 2)

    def density(self, x: np.ndarray) -> np.ndarray:
        r = np.linalg.norm(x, axis=-1)
        return 1.0 / (2.0 * np.pi * r * (1.0 + r) ** 3)

    def enclosed_mass(self, r: np.ndarray) -> np.ndarray:
        """M(<r) = r^2 / (1 + r)^2."""
        return r**2 / (1.0 + r) ** 2


class HernquistBeta(_Hernquist):
    """Hernquist sphere (M = a = 1) with constant anisotropy ``beta``, stars within ``r_max``.

    galpy counterpart: ``constantbetaHernquistdf(pot, beta=beta)``. The defaults are An, Naik
    et al.'s (2021) system; their metric is :meth:`radial_force_error`.
    """

    name = "hernquist_beta"
    r_range = (0.4, 20.0)  # An et al.'s range

    def __init__(self, beta: float = 0.5, r_max: float = 200.0):
        if not -0.5 <= beta <= 0.5:
            raise ValueError(f"beta = {beta}: galpy's constant-beta Hernquist DF needs -1/2..1/2")
        self.beta, self.r_max = float(beta), float(r_max)
        self._df = None

    @property
    def params(self) -> dict:
        return {"M": 1.0, "a": 1.0, "beta": self.beta, "r_max": self.r_max}

    @property
    def df(self):
        """galpy's ``constantbetaHernquistdf`` for this system (built on first use)."""
        if self._df is None:
            from galpy.df import constantbetaHernquistdf

            self._df = constantbetaHernquistdf(pot=self.galpy_potential(), beta=self.beta)
        return self._df

    def sample(self, n: int, seed: int) -> PhaseSpace:
        # draw with margin, keep the first n within r_max: the truncation An et al. use
        x, v = sample_galpy_df(self.df, int(n / self.enclosed_mass(self.r_max) * 1.01) + 16, seed)
        keep = np.flatnonzero(np.linalg.norm(x, axis=1) <= self.r_max)[:n]
        if len(keep) < n:
            raise RuntimeError(f"drew {len(keep)} stars within r_max, fewer than {n}; reseed")
        return PhaseSpace(x[keep], v[keep], self.units, {"mock": self.describe(), "seed": seed})

    def radial_force_error(self, model, n: int = 50) -> float:
        """An et al.'s metric: median |a_r / a_r,true - 1| at ``n`` log-spaced points along the
        x axis over ``r_range``; ``model`` is anything with ``acceleration(x)`` (a field)."""
        x = np.zeros((n, 3))
        x[:, 0] = np.geomspace(*self.r_range, n)
        ratio = model.acceleration(x)[:, 0] / self.acceleration(x)[:, 0]
        return float(np.median(np.abs(ratio - 1)))


class HernquistOM(_Hernquist):
    """Hernquist sphere (M = a = 1) with Osipkov-Merritt anisotropy radius ``ra`` (in units of a).

    galpy counterpart: ``HernquistPotential(amp=2, a=1)`` (galpy's amp is 2M) and
    ``osipkovmerrittHernquistdf(pot, ra=ra)``.
    """

    name = "hernquist_om"

    def __init__(self, ra: float = 1.0):
        if ra < 0.2021:
            raise ValueError(f"ra = {ra} < 0.2021 a gives a negative Hernquist OM DF")
        self.ra = float(ra)
        self._df = None

    @property
    def params(self) -> dict:
        return {"M": 1.0, "a": 1.0, "ra": self.ra}

    @property
    def df(self):
        """galpy's ``osipkovmerrittHernquistdf`` for this system (built on first use)."""
        if self._df is None:
            from galpy.df import osipkovmerrittHernquistdf

            self._df = osipkovmerrittHernquistdf(self.galpy_potential(), ra=self.ra)
        return self._df

    def sample(self, n: int, seed: int) -> PhaseSpace:
        x, v = sample_galpy_df(self.df, n, seed)
        return PhaseSpace(x, v, self.units, {"mock": self.describe(), "seed": seed})

    def beta(self, r: np.ndarray) -> np.ndarray:
        """The velocity anisotropy beta(r) = r^2 / (r^2 + ra^2)."""
        return r**2 / (r**2 + self.ra**2)

    def q(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        """The Osipkov-Merritt variable Q = -E - L^2 / (2 ra^2) (positive for bound stars)."""
        L2 = np.sum(np.cross(x, v) ** 2, axis=-1)
        return -0.5 * np.sum(v**2, axis=-1) - self.potential(x) - 0.5 * L2 / self.ra**2

    def _log_fq(self, q: np.ndarray) -> np.ndarray:
        # Q lies in (0, Psi(0) = 1) for bound stars; f = 0 outside.
        inside = (q > 0.0) & (q < 1.0)
        out = np.full(q.shape, -np.inf)
        with np.errstate(divide="ignore"):
            out[inside] = np.log(self.df.fQ(q[inside]))
        return out

    def log_df(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        # galpy's f(Q) integrates to the mass, M = 1: already normalised to unit mass.
        return self._log_fq(self.q(x, v))

    def grad_log_df(self, x: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q = self.q(x, v)
        # Central difference in Q with a step well inside (0, 1): f(Q) is smooth there but has
        # sqrt(Q) and (1 - Q)^(-5/2) behaviour at the ends.
        h = 1e-5 * np.minimum(q, 1.0 - q)
        dlnf = (self._log_fq(q + h) - self._log_fq(q - h)) / (2.0 * h)
        r2 = np.sum(x**2, axis=-1, keepdims=True)
        v2 = np.sum(v**2, axis=-1, keepdims=True)
        xv = np.sum(x * v, axis=-1, keepdims=True)
        # grad L^2: d/dx (x^2 v^2 - (x.v)^2) = 2 (v^2 x - (x.v) v); symmetric in v.
        gq_x = self.acceleration(x) - (v2 * x - xv * v) / self.ra**2
        gq_v = -v - (r2 * v - xv * x) / self.ra**2
        return dlnf[:, None] * gq_x, dlnf[:, None] * gq_v
