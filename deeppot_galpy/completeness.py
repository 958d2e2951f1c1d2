r"""A catalog's completeness S(x): the fraction of the stars at x that it holds.

A magnitude-limited catalog holds the stars at x with probability :math:`S(\vec x)`, so its
stars sample :math:`S(\vec x) f(\vec x, \vec v)`, not the DF f. The velocities at a place are
not selected (S does not depend on v), so :math:`\nabla_v\ln f` is unchanged and only the
spatial gradient picks up a term the potential must not explain:

.. math:: \nabla_x\ln f = \nabla_x\ln(S f) - \nabla\ln S .

The CBE points subtract :math:`\nabla\ln S` from the flows' spatial gradient, and the weak-form
Jeans moments take the test function :math:`S\psi`, which adds
:math:`\psi\,\vec v\cdot\nabla\ln S` to :math:`\vec v\cdot\nabla\psi` (no division by S, so
sparse, faint places are not up-weighted).

For a magnitude limit :math:`m \le m_{\max}` and a luminosity function :math:`\phi(M)` that does
not depend on position, :math:`S(d) = \Phi(m_{\max} - \mu(d)) / \Phi(\infty)` with
:math:`\mu = 5\log_{10}(d / 10\,{\rm pc})` the distance modulus and :math:`\Phi` the cumulative
luminosity function. :math:`\Phi` up to a constant, all that :math:`\nabla\ln S` needs, comes
from the catalog itself by Lynden-Bell's (1971) C- method, the non-parametric estimate for
truncated data: for star k, :math:`C_k` counts the stars brighter than it that would still be
in the catalog at its absolute magnitude (:math:`M_j < M_k`, :math:`M_{\lim,j} \ge M_k`), and
:math:`\ln\Phi` rises by :math:`\ln(1 + 1/C_k)` at :math:`M_k`. The rises are smoothed by a
Gaussian of Silverman's width into :math:`d\ln\Phi/dM`, and

.. math:: \frac{d\ln S}{d\ln d} = -\frac{5}{\ln 10}\,
          \frac{d\ln\Phi}{dM}\Big|_{M = m_{\max} - \mu(d)} .

Extinction is taken as already removed from m (or negligible): S then depends on distance alone.

References:
    Lynden-Bell 1971, MNRAS 155, 95; Efron & Petrosian 1992, ApJ 399, 345.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .kde import kernel_sums, silverman_width

__all__ = ["Completeness"]

_GRID = 256  # points of the tabulated d ln S / d ln d
_MOD = 5.0 / np.log(10.0)  # d mu / d ln d


def distance_modulus(d_kpc: np.ndarray) -> np.ndarray:
    """mu = 5 log10(d / 10 pc) for d in kpc."""
    return 5.0 * np.log10(np.asarray(d_kpc) * 100.0)


@dataclass(frozen=True)
class Completeness:
    """S as a function of the distance d from ``center`` [kpc], tabulated as d ln S / d ln d.

    Build it with :meth:`from_magnitude_limit`; ``description`` says where it came from.
    """

    center: tuple[float, float, float]
    ln_d: tuple[float, ...]
    slope: tuple[float, ...]  # d ln S / d ln d at ln_d
    description: str

    @classmethod
    def from_magnitude_limit(
        cls, m: np.ndarray, d_kpc: np.ndarray, m_max: float, center: np.ndarray
    ) -> Completeness:
        """From the catalog's apparent magnitudes m <= ``m_max`` and distances [kpc]."""
        m, d = np.asarray(m, dtype=float), np.asarray(d_kpc, dtype=float)
        if len(m) < 100 or len(m) != len(d):
            raise ValueError("the completeness needs >= 100 stars with a magnitude and a distance")
        if np.any(m > m_max) or not np.all(d > 0):
            raise ValueError("every star must have m <= m_max and a distance > 0")
        mu = distance_modulus(d)
        M, M_lim = m - mu, m_max - mu
        M_sorted, lim_sorted = np.sort(M), np.sort(M_lim)
        # C_k = #{M_j < M_k} - #{M_lim_j < M_k}: every j with M_lim_j < M_k has M_j < M_k too
        c = np.searchsorted(M_sorted, M, "left") - np.searchsorted(lim_sorted, M, "left")
        rise = np.log1p(1.0 / np.maximum(c, 1))
        width = silverman_width(M)
        ln_d = np.linspace(np.log(d.min() / 2), np.log(d.max() * 1.2), _GRID)
        rate = kernel_sums(M, m_max - distance_modulus(np.exp(ln_d)), width, rise)[0]
        dlnphi = rate / (width * np.sqrt(2 * np.pi))
        text = (
            f"magnitude limit m <= {m_max:g}; luminosity function from {len(m):,} stars "
            f"(Lynden-Bell C-, smoothing {width:.3f} mag)"
        )
        return cls(tuple(map(float, center)), tuple(ln_d), tuple(-_MOD * dlnphi), text)

    def dlnS_dlnd(self, d_kpc: np.ndarray) -> np.ndarray:
        """d ln S / d ln d at distances d [kpc] (constant beyond the table's ends)."""
        return np.interp(np.log(d_kpc), self.ln_d, self.slope)

    def log_relative(self, d_kpc: np.ndarray) -> np.ndarray:
        """ln S(d) - ln S(d_min), d_min the table's nearest distance (S is known up to a
        constant; at small d it is complete, so this is ln S there)."""
        ln_d, slope = np.asarray(self.ln_d), np.asarray(self.slope)
        cum = np.concatenate([[0.0], np.cumsum(0.5 * (slope[1:] + slope[:-1]) * np.diff(ln_d))])
        return np.interp(np.log(d_kpc), ln_d, cum)

    def grad_log(self, x: np.ndarray) -> np.ndarray:
        """grad ln S at positions x [kpc] (N, 3), in kpc^-1."""
        r = np.asarray(x, dtype=float) - np.asarray(self.center)
        d = np.linalg.norm(r, axis=1)
        return (self.dlnS_dlnd(d) / d**2)[:, None] * r

    def to_dict(self) -> dict:
        return {
            "center_kpc": list(self.center),
            "ln_d_kpc": list(self.ln_d),
            "dlnS_dlnd": list(self.slope),
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Completeness:
        return cls(
            tuple(d["center_kpc"]), tuple(d["ln_d_kpc"]), tuple(d["dlnS_dlnd"]), d["description"]
        )

    @classmethod
    def from_meta(cls, meta: dict) -> Completeness | None:
        """The completeness recorded in a PhaseSpace's ``meta["completeness"]``, or None."""
        record = meta.get("completeness")
        return cls.from_dict(record) if record else None
