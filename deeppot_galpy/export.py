r"""Export a learned potential to galpy potentials that integrate orbits in C.

All three exports start from ONE batched evaluation of the network's potential and gradient on
a spherical grid about the origin: radii :math:`r_i` (log-spaced), Gauss-Legendre nodes in
:math:`\cos\theta` and uniform :math:`\phi`. Projecting onto real spherical harmonics,

.. math::
    \Phi(r,\theta,\phi) = \sum_{l,m} \left[\Phi^c_{lm}(r)\cos m\phi + \Phi^s_{lm}(r)\sin m\phi
    \right] P_l^m(\cos\theta), \qquad
    \Phi^c_{lm} = \frac{(2l+1)(2-\delta_{m0})}{4\pi}\frac{(l-m)!}{(l+m)!}
    \oint \Phi\,P_l^m\cos m\phi\,d\Omega ,

and likewise :math:`D_{lm}` for the radial derivative :math:`\partial_r\Phi = \hat r\cdot\nabla
\Phi`, which autograd gives exactly. Then

* ``interp_spherical``: galpy's ``interpSphericalPotential`` from the monopole force
  :math:`-D_{00}(r)` (exact for a spherical network; cheapest).
* ``multipole``: galpy's ``MultipoleExpansionPotential`` from the density multipoles, obtained
  from the *force* multipoles by the radial Poisson equation,

  .. math:: \rho_{lm} = \frac{1}{4\pi r^2}\left[\frac{d}{dr}\left(r^2 D_{lm}\right)
            - l(l+1)\,\Phi_{lm}\right],

  rather than by projecting the autograd Laplacian: galpy integrates :math:`r^{l+2}\rho_{lm}`
  back, so the exported monopole force is :math:`D_{00}` itself up to spline error, while the
  Laplacian of a network is its noisiest derivative. The part of :math:`\Phi_{lm}` sourced
  outside the grid (:math:`\propto r^l`, no :math:`\rho_{lm}` inside) is kept by a density
  shell just beyond the grid (:func:`_exterior_shell`): without it a multipole of the network
  is *less* faithful than its monopole, because a network's outer structure and its tidal
  field inside largely cancel. Beyond the data region the export, like the network, is not
  constrained by stars.
* ``scf``: galpy's ``SCFPotential.from_multipole`` of the multipole without exterior shells
  (Hernquist-Ostriker basis, 40 radial functions, scale ``a`` the monopole's half-mass radius).

A network fitted with a symmetry (:mod:`~deeppot_galpy.potential.symmetry`) has an export that
is exact in angle: ``interp_spherical`` for a spherical one centred on the data, and
``interp_rz`` for an axisymmetric one, which needs no expansion centre and so serves a survey
volume far from the origin too: galpy's ``interpRZPotential`` of the network's potential and
forces on an (R, z) grid over the data region (``n_r`` x ``n_z`` nodes, R log-spaced when the
region holds the axis), 2D cubic splines evaluated in C, wrapped in galpy's
``RotateAndTiltWrapperPotential`` as an offset in z (see :func:`_interp_rz`).

Every export is checked against the network at
:func:`~deeppot_galpy.compare.check_points` inside the data region (log-uniform radius between
``r_min`` and ``r_max``, quasi-uniform directions): the report gives the median, 90th
percentile and maximum relative force error :math:`|\vec a_{exp} - \vec a_{net}| /
|\vec a_{net}|`. ``method="auto"`` takes the symmetry's export, or for a network without a
symmetry builds all three expansions and keeps the most accurate (median error).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from galpy.potential import (
    Potential,
    RotateAndTiltWrapperPotential,
    evaluatePotentials,
    evaluateRforces,
    evaluatezforces,
)
from scipy.interpolate import InterpolatedUnivariateSpline, make_interp_spline
from scipy.special import gammaln, lpmv, roots_legendre

from .compare import (
    CHECK_POINTS,
    by_radius,
    check_points,
    is_centred,
    relative_error,
    summarize,
)
from .galpy_potential import DeepPotential
from .units import cartesian_to_galpy

__all__ = [
    "EXPANSIONS",
    "EXPORT_METHODS",
    "c_accelerations",
    "ExportGrid",
    "export_galpy",
    "export_report",
    "expansion",
    "multipole_coefficients",
]

EXPANSIONS = ("interp_spherical", "multipole", "scf")
EXPORT_METHODS = ("auto", *EXPANSIONS, "interp_rz")


@dataclass(frozen=True)
class ExportGrid:
    """Where the expansion is sampled: ``n_r`` radii log-spaced over [r_lo, r_hi] (natural
    units; default from the data region), ``L`` harmonic degrees (l < L), angular nodes; for
    ``interp_rz``, ``n_r`` x ``n_z`` nodes in (R, z) over the data region."""

    L: int = 12
    n_r: int = 301
    n_z: int = 301
    r_lo: float | None = None
    r_hi: float | None = None
    n_costheta: int | None = None
    n_phi: int | None = None

    def radii(self, source: Any) -> np.ndarray:
        if self.r_hi is not None:
            r_hi = self.r_hi
        else:  # the check points reach r_max from the data centre
            reg = source.natural_region()
            r_hi = reg["r_max"] + np.linalg.norm(reg["center"])
        # The centre holds stars (checked in export_galpy), so the network is trusted there.
        r_lo = self.r_lo if self.r_lo is not None else 1e-3 * r_hi
        return np.geomspace(r_lo, r_hi, self.n_r)

    def angles(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(cos theta nodes, their Gauss-Legendre weights, phi nodes)."""
        # More nodes than the 2L needed for exactness keeps the network's small-scale
        # (l >= L) structure from aliasing into the kept multipoles.
        n_ct = self.n_costheta or max(24, 2 * self.L + 4)
        n_phi = self.n_phi or max(24, 2 * self.L + 4)
        ct, w = roots_legendre(n_ct)
        return ct, w, np.linspace(0.0, 2.0 * np.pi, n_phi, endpoint=False)


def _legendre_table(L: int, ct: np.ndarray) -> np.ndarray:
    """P_l^m(ct) (L, L, n) with the Condon-Shortley phase, as galpy uses; zero for m > l."""
    table = np.zeros((L, L, len(ct)))
    for l in range(L):
        for m in range(l + 1):
            table[l, m] = lpmv(m, l, ct)
    return table


def _projection_norm(L: int) -> np.ndarray:
    """(2l+1)(2 - delta_m0)/(4 pi) (l-m)!/(l+m)! (L, L): the coefficient of
    P_l^m cos(m phi) in an expansion is this times the integral of f P_l^m cos(m phi)."""
    l, m = np.meshgrid(np.arange(L), np.arange(L), indexing="ij")
    with np.errstate(invalid="ignore"):
        norm = (2 * l + 1) / (4 * np.pi) * np.exp(gammaln(l - m + 1) - gammaln(l + m + 1))
    norm = np.where(m <= l, norm * np.where(m == 0, 1.0, 2.0), 0.0)
    return norm


def multipole_coefficients(source: Any, grid: ExportGrid = ExportGrid()) -> dict:
    r"""Multipoles of Phi and d Phi/dr on ``grid`` from one batched evaluation of ``source``.

    ``source`` is a :class:`DeepPotential` or any object whose ``cartesian(x)`` gives
    (Phi (N,), grad Phi (N, 3)) at natural-unit positions x (N, 3) (and, unless ``grid.r_hi``
    is set, ``natural_region()``). Returns ``r`` (n_r,) and ``phi_cos``, ``phi_sin``,
    ``dphi_cos``, ``dphi_sin`` of shape (L, L, n_r) (index [l, m]; zero for m > l).
    """
    r = grid.radii(source)
    ct, w_ct, ph = grid.angles()
    st = np.sqrt(1.0 - ct**2)
    # (n_r, n_ct, n_phi, 3) unit vectors times radii, flattened into one network call
    n_hat = np.stack(
        [
            st[:, None] * np.cos(ph)[None],
            st[:, None] * np.sin(ph)[None],
            np.broadcast_to(ct[:, None], (len(ct), len(ph))),
        ],
        axis=-1,
    )
    x = r[:, None, None, None] * n_hat[None]
    phi, grad = source.cartesian(x.reshape(-1, 3))[:2]
    shape = (len(r), len(ct), len(ph))
    phi = phi.reshape(shape)
    dphi_dr = np.einsum("abcj,bcj->abc", grad.reshape(shape + (3,)), n_hat)
    P = _legendre_table(grid.L, ct)
    m = np.arange(grid.L)
    cos_m, sin_m = np.cos(np.outer(m, ph)), np.sin(np.outer(m, ph))
    dphi = 2.0 * np.pi / len(ph)
    norm = _projection_norm(grid.L)[..., None]
    out = {"r": r}
    for name, f in (("phi", phi), ("dphi", dphi_dr)):
        for kind, trig in (("cos", cos_m), ("sin", sin_m)):
            # integral over the sphere: sum_ct w_ct P_lm(ct) sum_phi f trig(m phi) dphi
            azim = np.einsum("rtp,mp->rtm", f, trig) * dphi
            out[f"{name}_{kind}"] = norm * np.einsum("t,lmt,rtm->lmr", w_ct, P, azim)
    return out


def _exterior_shell(r: np.ndarray, l: int, rho_edge: float, phi_edge: float, d_edge: float):
    """Radii beyond the grid and a density there that reproduces the network's field from
    outside the grid.

    At the grid edge :math:`r_e` any multipole splits into an interior and an exterior part,
    :math:`\\Phi_{lm} = Q r^{-(l+1)} + A r^l` with :math:`r D_{lm} = -(l+1) Q r^{-(l+1)} + l A r^l`,
    so :math:`A r_e^l = (r_e D_{lm} + (l+1)\\Phi_{lm}) / (2l+1)`. galpy sets the density to zero
    beyond its grid, which would drop :math:`A r^l`. Mass at :math:`r > r_e` only adds
    :math:`-\frac{4\\pi}{2l+1} r^l \\int a^{1-l}\rho\\,da` inside, so the grid is extended to
    :math:`2 r_e` with the edge density tapered to zero plus a bump scaled to give exactly A.
    """
    edge = r[-1]
    n_ext = max(8, math.ceil(math.log(2.0) / math.log(r[-1] / r[-2])))  # the grid's spacing
    u = np.arange(n_ext + 1) / n_ext  # ln(r / r_e) / ln 2: 0 at the edge, 1 at 2 r_e
    grid = edge * 2.0**u
    taper, bump = 0.5 * (1.0 + np.cos(np.pi * u)), np.sin(np.pi * u) ** 2
    # the integral of a^(1-l) rho beyond the edge that gives A: -(2l+1) A / 4 pi
    target = -(edge * d_edge + (l + 1) * phi_edge) / (4 * np.pi * edge**l)

    def outer_integral(rho: np.ndarray) -> float:
        return InterpolatedUnivariateSpline(grid, grid ** (1 - l) * rho, k=3).integral(
            edge, grid[-1]
        )

    amplitude = (target - outer_integral(rho_edge * taper)) / outer_integral(bump)
    return grid[1:], (rho_edge * taper + amplitude * bump)[1:]


def _density_splines(coef: dict, exterior: bool) -> tuple[list, list, np.ndarray]:
    """galpy's rho_cos/rho_sin splines [l][m] from the force multipoles (radial Poisson) and
    their radial grid, extended by :func:`_exterior_shell` if ``exterior``."""
    r = coef["r"]
    L = coef["phi_cos"].shape[0]
    lnr = np.log(r)
    splines: dict[str, list] = {"cos": [], "sin": []}
    r_all = r
    for kind in ("cos", "sin"):
        for l in range(L):
            row = []
            for m in range(L):
                phi, d = coef[f"phi_{kind}"][l, m], coef[f"dphi_{kind}"][l, m]
                # d/dr (r^2 D) from a quintic spline in ln r, exact for smooth multipoles
                dflux = make_interp_spline(lnr, r**2 * d, k=5).derivative()(lnr) / r
                rho = (dflux - l * (l + 1) * phi) / (4 * np.pi * r**2)
                if exterior:
                    r_ext, rho_ext = _exterior_shell(r, l, rho[-1], phi[-1], d[-1])
                    r_all, rho = np.concatenate([r, r_ext]), np.concatenate([rho, rho_ext])
                row.append(InterpolatedUnivariateSpline(r_all, rho, k=3))
            splines[kind].append(row)
    return splines["cos"], splines["sin"], r_all


def _match_units(exported, pot: DeepPotential):
    """Give the export the source's ro, vo and physical-output switch (natural units agree)."""
    exported.turn_physical_on(ro=pot._ro, vo=pot._vo)
    if not (pot._roSet and pot._voSet):
        exported.turn_physical_off()
    return exported


def _interp_spherical(coef: dict):
    from galpy.potential import interpSphericalPotential

    r = coef["r"]
    fr = -coef["dphi_cos"][0, 0]
    # galpy samples rforce at each rgrid node; interpolating the table there returns it exactly
    return interpSphericalPotential(
        rforce=lambda s: np.interp(s, r, fr), rgrid=r, Phi0=coef["phi_cos"][0, 0, 0]
    )


def _multipole(coef: dict, exterior: bool = True):
    from galpy.potential import MultipoleExpansionPotential

    rho_cos, rho_sin, rgrid = _density_splines(coef, exterior)
    return MultipoleExpansionPotential(
        rho_cos_splines=rho_cos, rho_sin_splines=rho_sin, rgrid=rgrid
    )


def _half_mass_radius(coef: dict) -> float:
    """r with half the monopole's enclosed mass M(<r) = -r^2 F_r(r) (G = 1) at the grid edge."""
    r = coef["r"]
    mass = r**2 * coef["dphi_cos"][0, 0]
    mass = np.maximum.accumulate(np.clip(mass, 0.0, None))
    return float(np.interp(0.5 * mass[-1], mass, r))


def _scf(coef: dict, n_radial: int = 40):
    from galpy.potential import SCFPotential

    # The exterior shells are left out: a global basis cannot follow their sharp edges and
    # rings through the whole volume (measured: 20% force errors with them, 0.3% without).
    # Scale a = r_half, not the Hernquist r_half / 2.4: measured more accurate for cores.
    a = _half_mass_radius(coef)
    return SCFPotential.from_multipole(_multipole(coef, exterior=False), N=n_radial, a=a)


class _RaisedPotential(Potential):
    """An axisymmetric potential seen from ``dz`` below its plane z = 0: Phi(R, z + dz)."""

    def __init__(self, pot: DeepPotential, dz: float):
        Potential.__init__(self, amp=1.0)
        self._pot, self._dz = pot, dz

    def _evaluate(self, R, z, phi=0.0, t=0.0):
        return self._pot(R, z + self._dz, use_physical=False)

    def _Rforce(self, R, z, phi=0.0, t=0.0):
        return self._pot.Rforce(R, z + self._dz, use_physical=False)

    def _zforce(self, R, z, phi=0.0, t=0.0):
        return self._pot.zforce(R, z + self._dz, use_physical=False)


class _LoweredTable(RotateAndTiltWrapperPotential):
    """``table`` (an interpRZPotential of Phi(R, z + dz)) moved back down by dz: galpy's C-backed
    offset wrapper, with a Python path that takes arrays (a shift in z rotates nothing)."""

    def __init__(self, table: Any, dz: float):
        super().__init__(pot=table, offset=[0.0, 0.0, -dz])
        self.isNonAxi, self._dz = False, dz

    def _evaluate(self, R, z, phi=0.0, t=0.0):
        return evaluatePotentials(self._pot, R, z - self._dz, use_physical=False)

    def _Rforce(self, R, z, phi=0.0, t=0.0):
        return evaluateRforces(self._pot, R, z - self._dz, use_physical=False)

    def _zforce(self, R, z, phi=0.0, t=0.0):
        return evaluatezforces(self._pot, R, z - self._dz, use_physical=False)

    def _phitorque(self, R, z, phi=0.0, t=0.0):
        return 0.0 * R


def _interp_rz(pot: DeepPotential, grid: ExportGrid):
    # galpy's C interpRZPotential reads its grid at |z| (it assumes a potential symmetric
    # about z = 0), so the grid starts at the bottom of the data region, z_lo: it holds
    # Phi(R, z' + z_lo) for z' >= 0, and a C-backed offset moves it back into place.
    from galpy.potential import interpRZPotential

    reg = pot.natural_region()
    c, r = reg["center"], reg["r_max"]
    R_c, z_lo = math.hypot(c[0], c[1]), c[2] - r
    on_axis = R_c <= r
    rgrid = (
        (math.log(max(reg["r_min"], 1e-3 * r)), math.log(R_c + r), grid.n_r)
        if on_axis
        else (R_c - r, R_c + r, grid.n_r)
    )
    table = interpRZPotential(
        _RaisedPotential(pot, z_lo),
        rgrid=rgrid,
        zgrid=(0.0, 2 * r, grid.n_z),
        logR=on_axis,
        interpPot=True,
        interpRforce=True,
        interpzforce=True,
        zsym=True,
        enable_c=True,
        numcores=1,
    )
    return _LoweredTable(table, z_lo)


def expansion(coef: dict, method: str) -> Any:
    """The galpy potential of ``method`` (``interp_spherical``, ``multipole``, ``scf``) built
    from :func:`multipole_coefficients` output, in natural units with physical output off."""
    if method == "interp_spherical":
        return _interp_spherical(coef)
    if method == "multipole":
        return _multipole(coef)
    if method == "scf":
        return _scf(coef)
    raise ValueError(f"unknown expansion {method!r}; use one of {EXPORT_METHODS[1:]}")


def c_accelerations(exported: Any, x: np.ndarray) -> np.ndarray:
    """Accelerations (N, 3) of a C-backed galpy potential at natural-unit positions x (N, 3),
    evaluated by galpy's C code: one ``leapfrog_c`` step of length h from rest gives
    v(h) = a h to O(h^2) relative, and galpy runs all N "orbits" in C at once. galpy's
    Python evaluation of a multipole expansion costs ~5 ms per point; this ~1 us.
    """
    from galpy.orbit import Orbit
    from galpy.util import galpyWarningVerbose
    from galpy.util.conversion import get_physical

    h = 1e-8
    phys = get_physical(exported)
    o = Orbit(cartesian_to_galpy(x, np.zeros_like(x)), ro=phys["ro"], vo=phys["vo"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", galpyWarningVerbose)  # "using C": what we want
        o.integrate(np.array([0.0, h]), exported, method="leapfrog_c", dt=h, progressbar=False)
    kw = {"use_physical": False}
    return np.stack([o.vx(h, **kw), o.vy(h, **kw), o.vz(h, **kw)], axis=-1).reshape(-1, 3) / h


def export_report(exported: Any, pot: DeepPotential, n_check: int = 2000) -> dict:
    """Force errors of ``exported`` (evaluated in C) against the network at ``n_check``
    :func:`~deeppot_galpy.compare.check_points` of the data region (``check_points`` says how
    they are weighted): median, 90th percentile and maximum, and medians in four log-radius
    bins (``force_err_median_by_radius``: [r_lo, r_hi, median] from the data centre)."""
    reg = pot.natural_region()
    x = check_points(reg, n_check)
    err = relative_error(c_accelerations(exported, x), pot.acceleration(x))
    return summarize({"force": err}) | {
        "force_err_max": float(np.max(err)),
        "force_err_median_by_radius": by_radius(np.linalg.norm(x - reg["center"], axis=1), err),
        "n_check": int(n_check),
        "check_points": CHECK_POINTS,
    }


def export_galpy(
    pot: DeepPotential,
    method: str = "auto",
    grid: ExportGrid = ExportGrid(),
    n_check: int = 2000,
) -> tuple[Any, dict]:
    """A C-backed galpy potential approximating ``pot``, and a report of its accuracy.

    ``method``: ``interp_spherical``, ``multipole``, ``scf``, ``interp_rz`` (axisymmetric or
    spherical networks) or ``auto`` (see the module docstring). The report has ``method``, the
    force errors of the chosen export (``force_err_median``/``_p90``/``_max``),
    ``candidates`` (each method's errors and build seconds) and the grid used.
    """
    if method not in EXPORT_METHODS:
        raise ValueError(f"unknown export method {method!r}; use one of {EXPORT_METHODS}")
    reg = pot.natural_region()
    if reg is None:
        raise ValueError("the potential has no data region; cannot choose an export grid")
    symmetry = pot.network.config.symmetry
    centred = is_centred(reg)
    if method != "auto":
        names = [method]
    elif symmetry == "spherical" and centred:
        names = ["interp_spherical"]
    elif symmetry != "none":
        names = ["interp_rz"]
    else:
        names = list(EXPANSIONS)
    if "interp_rz" in names and symmetry == "none":
        raise ValueError(
            "interp_rz needs an axisymmetric (or spherical) network: fit with "
            "--symmetry axisymmetric, or use an expansion about the origin"
        )
    built, candidates, report = {}, {}, {}
    expansions = [n for n in names if n in EXPANSIONS]
    if expansions:
        if not centred:
            raise ValueError(
                "exports expand about the origin, but the data are centred "
                f"{np.linalg.norm(reg['center']):.3g} (natural units) away from it, beyond a "
                "quarter of their extent: the network is not constrained at the expansion "
                "centre (a fit with --symmetry axisymmetric exports to an (R, z) grid instead)"
            )
        t0 = time.perf_counter()
        coef = multipole_coefficients(pot, grid)
        t_coef = time.perf_counter() - t0
        report["grid"] = {
            "L": grid.L,
            "r_lo": float(coef["r"][0]),
            "r_hi": float(coef["r"][-1]),
            "n_r": grid.n_r,
        }
    for name in names:
        t0 = time.perf_counter()
        if name == "interp_rz":
            built[name] = _match_units(_interp_rz(pot, grid), pot)
            seconds = time.perf_counter() - t0
            table = built[name]._pot
            report["grid"] = {"R": table._rgrid[[0, -1]].tolist(), "n_r": grid.n_r}
            report["grid"] |= {"z": (table._zgrid[[0, -1]] - built[name]._offset[2]).tolist()}
            report["grid"]["n_z"] = grid.n_z
        else:
            built[name] = _match_units(expansion(coef, name), pot)
            seconds = time.perf_counter() - t0 + t_coef
        candidates[name] = export_report(built[name], pot, n_check) | {"build_s": seconds}
    best = min(candidates, key=lambda k: candidates[k]["force_err_median"])
    return built[best], {"method": best, **candidates[best], "candidates": candidates} | report
