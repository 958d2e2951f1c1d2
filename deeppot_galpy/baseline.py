r"""Classical baselines for context: a parametric galpy potential fitted to the same CBE loss,
and the spherical Jeans estimate of the enclosed mass.

**Parametric CBE fit** (:func:`fit_parametric`). The same stationarity loss the network
minimises (:func:`~deeppot_galpy.potential.stationarity_loss`, kind ``lnf``, with the same
time scale), on the same points and gradients,

.. math:: \mathcal L(\theta) = \Big\langle \operatorname{asinh}\big(T\,|\vec v\cdot\nabla_x\ln f
          - \nabla\Phi_\theta\cdot\nabla_v\ln f|\big)\Big\rangle ,

over a galpy potential family centred on the origin:

==================  ===========================  =============================================
family              galpy class                  :math:`\Phi` (G = 1)
==================  ===========================  =============================================
``plummer``         ``PlummerPotential``         :math:`-A / \sqrt{r^2 + b^2}`
``hernquist``       ``HernquistPotential``       :math:`-A / 2(r + a)` (mass :math:`A/2`)
``nfw``             ``NFWPotential``             :math:`-A \ln(1 + r/a) / r`
``miyamoto_nagai``  ``MiyamotoNagaiPotential``   :math:`-A / \sqrt{R^2 + (a + \sqrt{z^2 + b^2})^2}`
==================  ===========================  =============================================

The residual is linear in the amplitude :math:`A`, so a grid over the scale(s) with the
least-squares :math:`A` at each node starts a Nelder-Mead search in
:math:`(\ln A, \ln\text{scales})` (scipy). Fitting is done in the model's units; the returned
potential is in galpy natural units (``ro``, ``vo`` for physical models), where every family
is homogeneous: :math:`A_{nat} = A / (\ell\nu^2)`, scales :math:`/\ell`, with
:math:`(\ell, \nu)` = :meth:`Units.natural_scales <deeppot_galpy.units.Units.natural_scales>`.

**Spherical Jeans mass** (:func:`jeans_enclosed_mass`; Binney & Tremaine 2008, eq. 4.216),
from the stars alone, for a non-rotating sphere:

.. math:: M(<r) = -\frac{r\,\sigma_r^2}{G}\left[\frac{d\ln\nu}{d\ln r}
          + \frac{d\ln\sigma_r^2}{d\ln r} + 2\beta\right], \qquad
          \beta = 1 - \frac{\sigma_t^2}{2\sigma_r^2},

with :math:`\nu`, :math:`\sigma_r^2`, :math:`\sigma_t^2` binned in :math:`\ln r` and the
logarithmic slopes by finite differences between bins.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy import optimize

from .potential import CBEPoints, stationarity_loss
from .potential.fit import point_scales
from .units import Units

__all__ = ["FAMILIES", "fit_parametric", "jeans_enclosed_mass"]

#: family -> (galpy class name, names of its length parameters)
FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "plummer": ("PlummerPotential", ("b",)),
    "hernquist": ("HernquistPotential", ("a",)),
    "nfw": ("NFWPotential", ("a",)),
    "miyamoto_nagai": ("MiyamotoNagaiPotential", ("a", "b")),
}


def _make(family: str, amp: float, scales: np.ndarray, **kw: Any):
    import galpy.potential as gp

    cls_name, names = FAMILIES[family]
    return getattr(gp, cls_name)(amp=amp, **dict(zip(names, map(float, scales), strict=True)), **kw)


def _grad_phi(pot: Any, x: np.ndarray) -> np.ndarray:
    """grad Phi of an axisymmetric galpy potential at x (N, 3), in its natural units."""
    from galpy.potential import evaluateRforces, evaluatezforces

    R = np.hypot(x[:, 0], x[:, 1])
    fR = np.asarray(evaluateRforces(pot, R, x[:, 2], use_physical=False))
    fz = np.asarray(evaluatezforces(pot, R, x[:, 2], use_physical=False))
    with np.errstate(invalid="ignore", divide="ignore"):
        c, s = np.where(R > 0, x[:, 0] / R, 0.0), np.where(R > 0, x[:, 1] / R, 0.0)
    return -np.stack([fR * c, fR * s, fz], axis=1)


class _Loss:
    """The CBE loss of a family as a function of (ln A, ln scales), on fixed points."""

    def __init__(self, points: CBEPoints, family: str):
        self.family, self.x = family, points.x
        _, length, sigma = point_scales(points)
        self.time_scale = length / sigma
        arrays = {k: np.asarray(getattr(points, k), dtype=np.float64) for k in ("v", "gx", "gv")}
        self.gv = arrays["gv"]
        self.t = {k: torch.from_numpy(a) for k, a in arrays.items()}
        # v . grad_x ln f does not depend on Phi
        self.vgx = np.sum(arrays["v"] * arrays["gx"], axis=1)
        self.n_calls = 0

    def unit_term(self, scales: np.ndarray) -> np.ndarray:
        """grad Phi . grad_v ln f for amplitude 1."""
        return np.sum(_grad_phi(_make(self.family, 1.0, scales), self.x) * self.gv, axis=1)

    def ls_amp(self, scales: np.ndarray) -> float:
        """The amplitude minimising the squared residual at these scales."""
        b = self.unit_term(scales)
        return float(max(np.sum(self.vgx * b) / np.sum(b * b), 1e-12))

    def __call__(self, theta: np.ndarray) -> float:
        self.n_calls += 1
        amp, scales = np.exp(theta[0]), np.exp(theta[1:])
        grad = torch.from_numpy(amp * _grad_phi(_make(self.family, 1.0, scales), self.x))
        t = self.t
        per_point = stationarity_loss("lnf", t["v"], grad, t["gx"], t["gv"], self.time_scale)
        return float(per_point.mean())


def fit_parametric(
    points: CBEPoints,
    family: str,
    units: Units | None = None,
    ro: float = 8.0,
    vo: float = 220.0,
    n_grid: int = 12,
) -> tuple[Any, dict]:
    """The best-fitting potential of ``family`` (see :data:`FAMILIES`) for the CBE ``points``.

    ``points`` are in ``units`` (default N-body); the result is a galpy Potential in natural
    units (``ro`` kpc, ``vo`` km/s attached for physical units) and a dict with the
    parameters in natural and in model units, the loss at the optimum and the evaluations.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; use one of {sorted(FAMILIES)}")
    units = units or Units.nbody()
    loss = _Loss(points, family)
    names = FAMILIES[family][1]
    # The first scale on a grid over the stars' radial extent; a disk's b from 1% of its
    # inner end to 30% of its outer end.
    r = np.linalg.norm(points.x, axis=1)
    axis = np.geomspace(*np.percentile(r, [5.0, 95.0]), n_grid)
    grids = [axis] + [np.geomspace(axis[0] * 0.01, axis[-1] * 0.3, n_grid)] * (len(names) - 1)
    best = None
    for scales in np.array(np.meshgrid(*grids, indexing="ij")).reshape(len(names), -1).T:
        theta = np.concatenate([[np.log(loss.ls_amp(scales))], np.log(scales)])
        value = loss(theta)
        if best is None or value < best[0]:
            best = (value, theta)
    res = optimize.minimize(
        loss,
        best[1],
        method="Nelder-Mead",
        options={"xatol": 1e-6, "fatol": 1e-10, "maxiter": 4000},
    )
    amp_m, scales_m = float(np.exp(res.x[0])), np.exp(res.x[1:])
    lf, vf = units.natural_scales(ro, vo)
    amp_n, scales_n = amp_m / (lf * vf**2), scales_m / lf
    kw = {"ro": ro, "vo": vo} if units.is_physical else {}
    pot = _make(family, amp_n, scales_n, **kw)
    params = {
        "family": family,
        "amp": amp_n,
        **dict(zip(names, scales_n.tolist(), strict=True)),
        "model_units": {"amp": amp_m, **dict(zip(names, scales_m.tolist(), strict=True))},
        "loss": float(res.fun),
        "n_evaluations": loss.n_calls,
        "converged": bool(res.success),
    }
    return pot, params


def jeans_enclosed_mass(
    x: np.ndarray,
    v: np.ndarray,
    edges: np.ndarray,
    G: float = 1.0,
    center: np.ndarray | None = None,
) -> dict:
    """Spherical Jeans M(<r) at the geometric centres of radial bins ``edges``.


    Returns ``r``, ``mass`` (NaN in the two end bins, whose slopes are one-sided), and the
    binned ``nu`` (stars per volume, normalised to the sample), ``sigma_r2``, ``beta``; bins
    with fewer than 10 stars give NaN.
    """
    d = x - (0.0 if center is None else np.asarray(center))
    r = np.linalg.norm(d, axis=1)
    rhat = d / r[:, None]
    vr = np.sum(v * rhat, axis=1)
    vt2 = np.sum(v**2, axis=1) - vr**2
    idx = np.digitize(r, edges) - 1
    nb = len(edges) - 1
    counts = np.bincount(idx[(idx >= 0) & (idx < nb)], minlength=nb).astype(float)
    nu = counts / (4.0 / 3.0 * np.pi * np.diff(edges**3)) / len(x)
    sr2, st2 = np.full(nb, np.nan), np.full(nb, np.nan)
    for b in range(nb):
        sel = idx == b
        if sel.sum() >= 10:
            sr2[b] = np.var(vr[sel])
            st2[b] = np.mean(vt2[sel])
    beta = 1.0 - st2 / (2.0 * sr2)
    ln_mid = 0.5 * (np.log(edges[1:]) + np.log(edges[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.gradient(np.log(nu), ln_mid) + np.gradient(np.log(sr2), ln_mid)
    mid = np.exp(ln_mid)
    mass = -mid * sr2 / G * (slope + 2.0 * beta)
    mass[[0, -1]] = np.nan  # one-sided slopes at the end bins are too crude
    return {
        "r": mid.tolist(),
        "mass": mass.tolist(),
        "nu": nu.tolist(),
        "sigma_r2": sr2.tolist(),
        "beta": beta.tolist(),
    }
