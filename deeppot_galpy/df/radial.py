r"""The stars' number density :math:`\nu(r)` of a round system, from their radii alone.

For a system whose stars are round about the origin (``symmetry`` resolved to ``spherical``),
the spatial factor of :math:`f = n(\vec x)\,p(\vec v\mid\vec x)` is :math:`\nu(r)`, a function
of one variable that :math:`2^{17}` radii pin far better than a 3D flow does: the position
flow smooths a cusp (on the Osipkov-Merritt Hernquist sphere its :math:`d\ln n/dr` is 40-50% of
the truth at :math:`r = 0.3a`) and ripples by 10-15% at a few :math:`a`; this estimate is within
2-3% from :math:`0.1a` to :math:`60a`. In a core it is noisier than the flow (the slope
vanishes there, and the innermost 1% of the radii set it): on the Plummer sphere the fit's force
error rose from 0.5% to 1.7%, so ``[fit] radial_density`` is off by default
(``benchmarks/RESULTS.md``, section 9).

The radii's density in :math:`s = \ln r` is a Gaussian kernel estimate, renormalised at the
outermost star (so a sample truncated at some radius is not read as a falling density there;
the inner end needs nothing, the kernel being unbiased for the power law of a core or cusp),

.. math:: \hat p(s) = \frac{K_0(s)}{Z(s)}, \qquad Z(s) = \Phi\!\left(\frac{s_{\max} - s}{h}\right),

and since :math:`dN = \hat p\,ds = 4\pi r^3\nu\,ds`,

.. math:: \frac{d\ln\nu}{d\ln r} = \frac{K_1}{K_0} - \frac{Z'}{Z} - 3 ,
          \qquad \nabla\ln\nu = \frac{d\ln\nu}{d\ln r}\,\frac{\vec x}{r^2}.

A kernel in :math:`\ln r` is unbiased for a power law (a cusp or a tail), so only the profile's
bends are smoothed; the width is Silverman's rule for a slope, :math:`\propto N^{-1/7}`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from ..kde import kernel_sums, silverman_width

__all__ = ["RadialProfile"]

_GRID = 512


@dataclass(frozen=True)
class RadialProfile:
    """ln nu (up to a constant) and d ln nu / d ln r, tabulated on a grid of ln r."""

    ln_r: np.ndarray
    ln_nu: np.ndarray
    slope: np.ndarray
    width: float

    @classmethod
    def from_radii(cls, r: np.ndarray) -> RadialProfile:
        s = np.log(np.asarray(r, dtype=float))
        if len(s) < 100 or not np.all(np.isfinite(s)):
            raise ValueError("the radial profile needs >= 100 finite radii > 0")
        h = silverman_width(s, power=1.0 / 7.0)
        grid = np.linspace(s.min(), s.max(), _GRID)
        k0, k1 = kernel_sums(s, grid, h)
        z = norm.cdf((s.max() - grid) / h)
        dz = -norm.pdf((s.max() - grid) / h) / h
        ln_nu = np.log(k0 / z) - 3 * grid
        return cls(grid, ln_nu, k1 / k0 - dz / z - 3, h)

    def grad_log(self, x: np.ndarray) -> np.ndarray:
        """grad ln nu at positions x (N, 3) about the origin."""
        r2 = np.sum(x * x, axis=1)
        return (np.interp(0.5 * np.log(r2), self.ln_r, self.slope) / r2)[:, None] * x

    def log_density(self, x: np.ndarray) -> np.ndarray:
        """ln nu at x (N, 3), up to a constant."""
        return np.interp(0.5 * np.log(np.sum(x * x, axis=1)), self.ln_r, self.ln_nu)
