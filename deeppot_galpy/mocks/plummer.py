r"""The isotropic Plummer sphere, in units :math:`G = M = b = 1`.

.. math::
    \Phi(r) = -\frac{1}{\sqrt{1 + r^2}}, \qquad
    \rho(r) = \frac{3}{4\pi} (1 + r^2)^{-5/2}, \qquad
    f(E) = \frac{24\sqrt2}{7\pi^3} (-E)^{7/2},

with :math:`E = v^2/2 + \Phi`. Sampling is exact: radii by inverting the enclosed mass
:math:`M(<r) = r^3 (1 + r^2)^{-3/2}`, speeds :math:`v = q\,v_{esc}(r)` with
:math:`q` drawn by rejection from :math:`g(q) \propto q^2 (1 - q^2)^{7/2}` and isotropic
directions (Aarseth, Hénon & Wielen 1974; Binney & Tremaine 2008, eq. 4.83).
"""

from __future__ import annotations

import numpy as np

from ..phasespace import PhaseSpace
from .base import MockSystem

__all__ = ["Plummer"]

_F0 = 24.0 * np.sqrt(2.0) / (7.0 * np.pi**3)


def _isotropic(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors uniform on the sphere, (n, 3)."""
    cos_t = rng.uniform(-1.0, 1.0, n)
    phi = rng.uniform(0.0, 2.0 * np.pi, n)
    sin_t = np.sqrt(1.0 - cos_t**2)
    return np.stack([sin_t * np.cos(phi), sin_t * np.sin(phi), cos_t], axis=1)


def _speed_fraction(n: int, rng: np.random.Generator) -> np.ndarray:
    """q = v / v_esc from g(q) = q^2 (1 - q^2)^{7/2} by vectorised rejection."""
    g_max = (2.0 / 9.0) * (7.0 / 9.0) ** 3.5  # at q^2 = 2/9
    out = np.empty(0)
    while out.size < n:
        m = int(1.3 * (n - out.size)) + 64  # acceptance is ~0.29 x 3.5; batch to finish fast
        q = rng.uniform(0.0, 1.0, 4 * m)
        y = rng.uniform(0.0, g_max, 4 * m)
        out = np.concatenate([out, q[y < q**2 * (1.0 - q**2) ** 3.5]])
    return out[:n]


class Plummer(MockSystem):
    """Isotropic Plummer sphere with G = M = b = 1 (galpy: ``PlummerPotential(amp=1, b=1)``)."""

    name = "plummer"

    def sample(self, n: int, seed: int) -> PhaseSpace:
        rng = np.random.default_rng(seed)
        m = rng.uniform(0.0, 1.0, n)
        r = 1.0 / np.sqrt(m ** (-2.0 / 3.0) - 1.0)
        v = _speed_fraction(n, rng) * np.sqrt(2.0) * (1.0 + r**2) ** -0.25
        x = r[:, None] * _isotropic(n, rng)
        vel = v[:, None] * _isotropic(n, rng)
        return PhaseSpace(x, vel, self.units, {"mock": self.describe(), "seed": seed})

    def potential(self, x: np.ndarray) -> np.ndarray:
        return -1.0 / np.sqrt(1.0 + np.sum(x**2, axis=-1))

    def acceleration(self, x: np.ndarray) -> np.ndarray:
        r2 = np.sum(x**2, axis=-1, keepdims=True)
        return -x / (1.0 + r2) ** 1.5

    def density(self, x: np.ndarray) -> np.ndarray:
        return 3.0 / (4.0 * np.pi) * (1.0 + np.sum(x**2, axis=-1)) ** -2.5

    def energy(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        return 0.5 * np.sum(v**2, axis=-1) + self.potential(x)

    def log_df(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        e = self.energy(x, v)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(e < 0, np.log(_F0) + 3.5 * np.log(-e), -np.inf)

    def grad_log_df(self, x: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # ln f = 7/2 ln(-E): grad = (7/2) grad E / E, grad_x E = grad Phi, grad_v E = v.
        e = self.energy(x, v)[:, None]
        return 3.5 * (-self.acceleration(x)) / e, 3.5 * v / e

    def galpy_potential(self):
        from galpy.potential import PlummerPotential

        return PlummerPotential(amp=1.0, b=1.0)
