r"""The solar neighbourhood's dynamical quantities from any galpy potential, with error bars.

At the Sun's position :math:`(R_0, z_0, \phi_0)` (Galactocentric cylindrical, :math:`z` from the
mid-plane of the frame):

* the circular speed in the plane :math:`v_c(R_0) = \sqrt{-R\,F_R(R_0, 0, \phi_0)}` and its
  slope :math:`dv_c/dR` (galpy's ``vcirc``, ``dvcircdR``),
* Oort's constants (Binney & Tremaine 2008, eq. 3.83; :math:`A \approx 15`,
  :math:`B \approx -12` km/s/kpc in the Milky Way, e.g. Bovy 2017)

  .. math::
      A = -\frac{R}{2}\frac{d}{dR}\frac{v_c}{R} = \frac12\Big(\frac{v_c}{R} - \frac{dv_c}{dR}\Big),
      \qquad
      B = -\frac12\Big(\frac{v_c}{R} + \frac{dv_c}{dR}\Big),

  so :math:`A - B = \Omega = v_c/R` and :math:`A + B = -dv_c/dR`,
* the vertical force :math:`K_z(z) = F_z = -\partial\Phi/\partial z` at :math:`(R_0, z, \phi_0)`
  for :math:`|z| \le` ``z_max`` (1.1 kpc, Kuijken & Gilmore 1989), negative above the plane;
  :math:`|K_z|/2\pi G` is the surface density (Msun/pc^2) of an infinite slab with that force,
* the total density :math:`\rho_0 = \nabla^2\Phi / 4\pi G` at the Sun and, given a baryonic
  galpy potential, the dark-matter density :math:`\rho_{DM} = \rho_0 - \rho_b(R_0, z_0)`.

The Sun's position defaults to the frame a run recorded (``run.json``, ``data.meta.frame``)
when given a run directory, else to astropy's Galactocentric "v4.0" frame (:math:`R_0` = 8.122
kpc, :math:`z_0` = 20.8 pc, :math:`\phi_0 = \pi`: astropy puts the Sun at :math:`x < 0`).
Numbers are read as galpy reads them (natural units of the potential's ``ro``, ``vo``; phi in
radians) or given as Quantities. With bootstrap replicates of a fit
(:meth:`DeepPotential.load_replicates
<deeppot_galpy.galpy_potential.DeepPotential.load_replicates>`) each quantity's
:math:`1\sigma` error is the replicates' standard deviation times the whole-system
calibration (:data:`LOCAL_CALIBRATION`), as in :mod:`deeppot_galpy.uncertainty`; the
baryonic model is taken as exact. The densities' error adds in quadrature
:data:`RHO0_SYSTEMATIC` of the fit's rho_0: the flows smooth the stars' density peak at a
disk's plane, a deficit every flow member shares and the replicates cannot see; v_c's slope
adds :data:`DVC_SYSTEMATIC` of the angular speed v_c / R0 (Oort's A and B half of it); K_z's adds
:data:`KZ_FLOOR` of K_z and :data:`KZ_SYSTEMATIC` of it per kpc of height, the misses
measured on the mocks: near the plane, where the density deficit lowers K_z, and towards the
top of a volume, where the stars thin out.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, fields
from functools import partial
from typing import Any

import astropy.units as u
import numpy as np
from astropy.constants import G as G_NEWTON

from ..phasespace import FilledVolume
from ..potential.replicates import SIGMA_CALIBRATION, replicate_std

__all__ = [
    "BARYONIC_MODELS",
    "LOCAL_CALIBRATION",
    "LocalQuantities",
    "DVC_SYSTEMATIC",
    "KZ_FLOOR",
    "KZ_SYSTEMATIC",
    "RHO0_SYSTEMATIC",
    "baryonic_model",
    "galpy_quantity",
    "load_run",
    "local_quantities",
    "outside_fit",
    "run_truth",
    "sun_cyl",
    "with_kz_systematic",
]

KMS = u.km / u.s
FREQ = KMS / u.kpc
FORCE = KMS**2 / u.kpc
DENS = u.Msun / u.pc**3
SURF = u.Msun / u.pc**2

#: galpy Milky Way models whose baryonic part (bulge, disks, gas: every component but the
#: dark halo, an NFW or Cautun20's contracted one) :func:`baryonic_model` returns
BARYONIC_MODELS = ("MWPotential2014", "McMillan17", "Cautun20")
_HALO_CLASSES = ("NFWPotential", "AdiabaticContractionWrapperPotential")


def baryonic_model(name: str) -> list:
    """The baryonic components of galpy's Milky Way model ``name`` (one of
    :data:`BARYONIC_MODELS`): every component except its NFW (or contracted) dark halo."""
    from galpy.potential import mwpotentials

    if name not in BARYONIC_MODELS:
        raise ValueError(f"unknown baryonic model {name!r}; use one of {list(BARYONIC_MODELS)}")
    return [p for p in getattr(mwpotentials, name) if type(p).__name__ not in _HALO_CLASSES]


def sun_cyl(frame: Any = None) -> tuple[u.Quantity, u.Quantity, u.Quantity]:
    """The Sun's Galactocentric (R0, z0, phi0) in ``frame`` (a
    :class:`~deeppot_galpy.data.FrameParameters` or its dict; None: astropy's "v4.0")."""
    from astropy.coordinates import galactocentric_frame_defaults

    from ..data.frames import FrameParameters, sun_position

    if frame is None:
        with galactocentric_frame_defaults.set("v4.0"):
            frame = FrameParameters()
    elif isinstance(frame, dict):
        frame = FrameParameters.from_dict(frame)
    x, y, z = sun_position(frame)
    return math.hypot(x, y) * u.kpc, z * u.kpc, math.atan2(y, x) * u.rad


@dataclass(frozen=True)
class LocalQuantities:
    """The local quantities (module docstring) as Quantities; ``sigma`` holds the 1-sigma
    error of each (same names) when replicates were given."""

    R0: u.Quantity
    z0: u.Quantity
    phi0: u.Quantity
    vc: u.Quantity
    dvc_dR: u.Quantity
    oort_A: u.Quantity
    oort_B: u.Quantity
    rho0: u.Quantity
    z: u.Quantity
    Kz: u.Quantity
    rho_dm: u.Quantity | None = None
    sigma: dict | None = None

    #: the scalar quantities, their labels and display units
    ROWS = (
        ("vc", "v_c(R0)", KMS),
        ("dvc_dR", "dv_c/dR", FREQ),
        ("oort_A", "Oort A", FREQ),
        ("oort_B", "Oort B", FREQ),
        ("rho0", "rho_0 (total)", DENS),
        ("rho_dm", "rho_DM (total - baryons)", DENS),
    )
    #: how :meth:`table` writes the units
    UNIT_NAMES = {KMS: "km/s", FREQ: "km/s/kpc", DENS: "Msun/pc^3", SURF: "Msun/pc^2"}
    #: heights at which :meth:`table` prints K_z / 2 pi G
    KZ_ROWS = (1.1, 0.5, -0.5, -1.1)

    def surface_density(self) -> u.Quantity:
        """:math:`|K_z(z)| / 2\\pi G` [Msun/pc^2] on the grid ``z``."""
        return (np.abs(self.Kz) / (2 * np.pi * G_NEWTON)).to(SURF)

    def _kz_index(self, z_kpc: float) -> int | None:
        i = int(np.argmin(np.abs(self.z.to_value(u.kpc) - z_kpc)))
        return i if abs(self.z[i].to_value(u.kpc) - z_kpc) < 1e-6 else None

    def rows(self) -> list[tuple[str, float, float | None, str]]:
        """(label, value, 1 sigma or None, unit) of every reported number."""
        out = []
        for key, label, unit in self.ROWS:
            value = getattr(self, key)
            if value is None:
                continue
            err = self.sigma[key].to_value(unit) if self.sigma else None
            out.append((label, float(value.to_value(unit)), err, self.UNIT_NAMES[unit]))
        surf = self.surface_density()
        surf_err = (self.sigma["Kz"] / (2 * np.pi * G_NEWTON)).to(SURF) if self.sigma else None
        for zk in self.KZ_ROWS:
            i = self._kz_index(zk)
            if i is not None:
                err = float(surf_err[i].value) if surf_err is not None else None
                label = f"|K_z|/2piG at z = {zk:+.1f} kpc"
                out.append((label, float(surf[i].value), err, self.UNIT_NAMES[SURF]))
        return out

    def table(self, others: dict[str, LocalQuantities] | None = None) -> str:
        """An aligned text table: value, 1 sigma (if known) and unit, with a column for each
        of ``others`` (e.g. published models at the same position)."""
        others = others or {}
        head = (
            f"Sun at R0 = {self.R0.to_value(u.kpc):.3f} kpc, z0 = {self.z0.to_value(u.pc):.1f} pc, "
            f"phi0 = {self.phi0.to_value(u.deg):.1f} deg"
        )
        other_rows = {name: {r[0]: r[1] for r in q.rows()} for name, q in others.items()}
        cols = ["quantity", "value", "1 sigma", "unit", *others]
        lines = []
        for label, value, err, unit in self.rows():
            cells = [label, f"{value:.4g}", "" if err is None else f"{err:.2g}", unit]
            cells += [
                f"{other_rows[n][label]:.4g}" if label in other_rows[n] else "-" for n in others
            ]
            lines.append(cells)
        widths = [max(len(c[i]) for c in [cols, *lines]) for i in range(len(cols))]
        fmt = "  ".join(f"{{:<{w}}}" if i in (0, 3) else f"{{:>{w}}}" for i, w in enumerate(widths))
        body = [fmt.format(*cols), "  ".join("-" * w for w in widths)]
        return "\n".join([head, *body, *(fmt.format(*c) for c in lines)])

    def to_dict(self) -> dict:
        """Plain floats (JSON): each quantity in the unit :meth:`rows` prints, ``unit`` keys."""
        units = {key: unit for key, _, unit in self.ROWS}
        units.update(R0=u.kpc, z0=u.kpc, phi0=u.rad, z=u.kpc, Kz=FORCE)
        out: dict = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "sigma" or value is None:
                continue
            out[f.name] = np.asarray(value.to_value(units[f.name])).tolist()
            out[f"{f.name}_unit"] = units[f.name].to_string()
        if self.sigma:
            out["sigma"] = {
                k: np.asarray(v.to_value(units[k])).tolist() for k, v in self.sigma.items()
            }
        return out


def _as_quantity(value: Any, unit: u.UnitBase, ro: float) -> u.Quantity:
    """A galpy-style input: a Quantity as it is, a number in natural units (lengths in ro)."""
    if isinstance(value, u.Quantity):
        return value.to(unit)
    return value * ro * u.kpc if unit == u.kpc else value * u.rad


def galpy_quantity(pot: Any, name: str, R: Any, z: Any = 0.0, phi: Any = 0.0) -> u.Quantity:
    """galpy's ``name`` (``vcirc``, ``dvcircdR``, ``zforce``, ``Rforce``, ``dens``) of any
    potential (a DeepPotential, a galpy Potential or a list) at (R, z, phi), as a Quantity in
    physical units through the potential's own ro, vo; ``vcirc``, ``dvcircdR`` are in the plane."""
    from galpy import potential as gp
    from galpy.util.conversion import get_physical

    kw = {"phi": phi, "quantity": True, **get_physical(pot)}
    # galpy's module functions take R and z of one shape (multi-component potentials index them)
    R, z = np.broadcast_arrays(R, z, subok=True)  # subok: Quantities keep their units
    if name in ("vcirc", "dvcircdR"):
        # the module functions go through a planar potential, which a non-axisymmetric one
        # (DeepPotential) cannot become; a single potential's own methods take phi directly
        fn = getattr(pot, name) if not isinstance(pot, list) else partial(getattr(gp, name), pot)
        return fn(R, **kw)
    fn = {"zforce": gp.evaluatezforces, "Rforce": gp.evaluateRforces, "dens": gp.evaluateDensities}
    return fn[name](pot, R, z, **kw)


# the calibration of the replicates' spread each quantity takes: the densities' own; v_c, its
# slope, Oort's constants and K_z the force's
_KIND = {"rho0": "density", "rho_dm": "density"}

#: Calibration of the replicates' spread for the local quantities and their figures: the
#: whole-system factors (SIGMA_CALIBRATION), also in a survey volume, whose field takes
#: smaller ones (VOLUME_CALIBRATION). K_z up to 1.1 kpc reaches the sparse top of the volume,
#: and v_c's slope and Oort's constants are derivatives: on the four local-disk fits of
#: RESULTS.md section 17 their largest pulls are 1.3 with these factors and would be 3.0 with
#: the volume's.
LOCAL_CALIBRATION = SIGMA_CALIBRATION

#: Relative systematic error of the local density, added in quadrature to the replicates'
#: calibrated spread of rho_0 and rho_DM: the rms error of rho_0 over the nine fits of the
#: package's local-disk mocks with the z^2 mirror input (2^17 and 2^20 stars, noiseless and
#: DR3-like errors, two disks; -9.5% to -26%, benchmarks/RESULTS.md, section 16), which
#: the replicates' spread (as small as 7% of rho_0) did not cover.
RHO0_SYSTEMATIC = 0.18

#: Systematic error of v_c's slope dv_c/dR as a fraction of the angular speed v_c / R0 (so
#: 0.15 is 4 km/s/kpc at the Sun), added in quadrature to the replicates' calibrated spread;
#: Oort's A = (Omega - dv_c/dR) / 2 and B = -(Omega + dv_c/dR) / 2 take half of it. A
#: derivative along R of forces the flows set, it errs alike in every replicate: the rms
#: error over ten fits of the local-disk mocks (RESULTS.md section 23). A magnitude-limited
#: catalog's fit missed it by 6.4 km/s/kpc against a replicate spread of 2.4 (a pull of 2.6,
#: and 3.2 on Oort's B).
DVC_SYSTEMATIC = 0.15

#: Relative systematic error of K_z per kpc of height, added in quadrature to the replicates'
#: calibrated spread of K_z(z): the five default-preset fits of the local-disk mocks in
#: RESULTS.md section 17 (noiseless, DR3-like errors, a magnitude limit, two disks) miss K_z by
#: 4% rms at 0.4-0.6 kpc and 8-9% at 0.8-1.1 kpc, where the stars thin out and the replicates
#: agree more closely than that (a pull of 2.9 without it).
KZ_SYSTEMATIC = 0.08

#: Relative systematic error of K_z at every height, in quadrature with KZ_SYSTEMATIC's: a
#: mid-plane density deficit that every flow member shares lowers K_z near the plane, where
#: the replicates' curves can cross and agree to 2%. The colder disk's fit with DR3-like errors
#: missed K_z by 7.8% at 0.4 kpc, a pull of 2.3 without it; over ten fits of the local-disk
#: mocks (RESULTS.md section 23) the largest pull at 0.3-1.1 kpc is 1.8 with it.
KZ_FLOOR = 0.03


def with_kz_systematic(spread: u.Quantity, z: u.Quantity, Kz: u.Quantity) -> u.Quantity:
    """K_z's 1-sigma error at heights z: the replicates' calibrated ``spread`` and
    :data:`KZ_FLOOR` plus :data:`KZ_SYSTEMATIC` per kpc of height of K_z, in quadrature."""
    relative = np.hypot(KZ_FLOOR, KZ_SYSTEMATIC * np.abs(z.to_value(u.kpc)))
    return np.hypot(spread, relative * np.abs(Kz))


def _evaluate(pot: Any, R0, z0, phi0, z_grid, baryons: Any) -> dict:
    """Every quantity of one potential."""
    vc = galpy_quantity(pot, "vcirc", R0, phi=phi0).to(KMS)
    dvc = galpy_quantity(pot, "dvcircdR", R0, phi=phi0).to(FREQ)
    omega = (vc / R0).to(FREQ)
    out = {
        "vc": vc,
        "dvc_dR": dvc,
        "oort_A": 0.5 * (omega - dvc),
        "oort_B": -0.5 * (omega + dvc),
        "rho0": galpy_quantity(pot, "dens", R0, z0, phi0).to(DENS),
        "Kz": galpy_quantity(pot, "zforce", R0, z_grid, phi0).to(FORCE),
    }
    if baryons is not None:
        out["rho_dm"] = out["rho0"] - galpy_quantity(baryons, "dens", R0, z0, phi0).to(DENS)
    return out


def load_run(run_dir: str | os.PathLike) -> tuple[Any, list, tuple]:
    """(DeepPotential, its bootstrap replicates ([] if none), the Sun's (R0, z0, phi0) in the
    frame the run recorded, or astropy's "v4.0" one) of a run directory."""
    from ..galpy_potential import DeepPotential
    from ..rundir import RunDir

    record = RunDir(run_dir).read_json("run")
    frame = ((record.get("data") or {}).get("meta") or {}).get("frame")
    return DeepPotential.load(run_dir), DeepPotential.load_replicates(run_dir), sun_cyl(frame)


def run_truth(run_dir: str | os.PathLike) -> Any:
    """The true galpy potential of a run on a mock (``deeppot demo --mock``, or a catalog
    written by a mock with its ``truth`` record), None when the run records none."""
    from ..data.gaia_mock import truth_potential
    from ..mocks import mock_from_record
    from ..rundir import RunDir

    meta = (RunDir(run_dir).read_json("run").get("data") or {}).get("meta") or {}
    record = meta.get("mock") or meta.get("truth")
    if not record:
        return None
    if "model" in record:  # data.gaia_mock's spherical models
        return truth_potential(record)
    try:
        return mock_from_record(record).galpy_potential()
    except NotImplementedError:
        return None
    except ValueError as exc:
        warnings.warn(f"{run_dir}: no truth to compare with: {exc}", stacklevel=2)
        return None


def outside_fit(region: dict, R0: u.Quantity, phi0: u.Quantity, z: u.Quantity) -> np.ndarray:
    """True where the K_z column at (R0, phi0) leaves, at the heights z, the volume the
    potential was fitted in (the trimmed survey volume of :meth:`PhaseSpace.region
    <deeppot_galpy.phasespace.PhaseSpace.region>`, in kpc): no CBE point lies there, and K_z
    is the network's extrapolation."""
    r, phi = R0.to_value(u.kpc), phi0.to_value(u.rad)
    zs = z.to_value(u.kpc)
    column = np.stack(
        [np.full(len(zs), r * math.cos(phi)), np.full(len(zs), r * math.sin(phi)), zs], 1
    )
    return FilledVolume.of(region, trimmed=True).depth(column) < 0


def _warn_outside_fit(region: dict, R0: u.Quantity, phi0: u.Quantity, z: u.Quantity) -> None:
    """Warn if the K_z column is :func:`outside_fit` at any of the heights z."""
    outside = outside_fit(region, R0, phi0, z)
    if outside.any():
        warnings.warn(
            f"K_z above |z| = {np.abs(z.to_value(u.kpc)[outside]).min():.2f} kpc is outside the "
            "volume the potential was fitted in (the survey volume less its rim): there it is "
            "the network's extrapolation",
            stacklevel=3,
        )


def local_quantities(
    potential: Any,
    R0: Any = None,
    z0: Any = None,
    phi0: Any = None,
    replicates: Sequence[Any] | None = None,
    baryons: Any = None,
    z_max: Any = 1.1 * u.kpc,
    n_z: int = 45,
) -> LocalQuantities:
    """The local quantities (module docstring) of ``potential`` at the Sun.

    ``potential`` is a galpy potential (a :class:`~deeppot_galpy.DeepPotential`, a galpy
    ``Potential`` or list) or a run directory, whose recorded frame then places the Sun and
    whose bootstrap replicates (if it has two or more and ``replicates`` is None) give the
    errors. ``R0``, ``z0``, ``phi0`` override the Sun's position; ``replicates`` (at least
    two) give 1-sigma errors; ``baryons`` (a galpy potential or list, or a name in
    :data:`BARYONIC_MODELS`) give the dark-matter density. ``K_z`` is tabulated at ``n_z``
    heights evenly over [-z_max, z_max] (the default grid has 0.05 kpc steps).
    """
    from galpy.util.conversion import get_physical

    sun = region = None
    if isinstance(potential, str | os.PathLike):
        potential, run_replicates, sun = load_run(potential)
        region = potential.region  # the stars' region, in the fit's units (kpc for catalogs)
        if replicates is None and len(run_replicates) >= 2:
            replicates = run_replicates
    if replicates is not None and len(replicates) < 2:
        raise ValueError(f"error bars need at least two replicates, got {len(replicates)}")
    if isinstance(baryons, str):
        baryons = baryonic_model(baryons)
    if n_z < 2:
        raise ValueError(f"n_z must be >= 2; got {n_z}")
    ro = get_physical(potential)["ro"]
    sun = sun or sun_cyl()
    R0 = sun[0] if R0 is None else _as_quantity(R0, u.kpc, ro)
    z0 = sun[1] if z0 is None else _as_quantity(z0, u.kpc, ro)
    phi0 = _as_quantity(phi0, u.rad, ro) if phi0 is not None else sun[2]
    if not R0.value > 0:
        raise ValueError(f"R0 must be > 0; got {R0}")
    z_max = _as_quantity(z_max, u.kpc, ro)
    z_grid = np.linspace(-1.0, 1.0, n_z) * z_max
    if region and region.get("survey_volume"):
        _warn_outside_fit(region, R0, phi0, z_grid)
    values = _evaluate(potential, R0, z0, phi0, z_grid, baryons)
    sigma = None
    if replicates is not None:
        each = [_evaluate(p, R0, z0, phi0, z_grid, baryons) for p in replicates]
        sigma = {
            k: replicate_std(
                u.Quantity([e[k] for e in each]), _KIND.get(k, "force"), LOCAL_CALIBRATION
            )
            for k in values
        }
        for k in ("rho0", "rho_dm"):
            if k in sigma:
                sigma[k] = np.hypot(sigma[k], RHO0_SYSTEMATIC * np.abs(values["rho0"]))
        slope = DVC_SYSTEMATIC * np.abs(values["vc"] / R0).to(FREQ)
        sigma["dvc_dR"] = np.hypot(sigma["dvc_dR"], slope)
        for k in ("oort_A", "oort_B"):
            sigma[k] = np.hypot(sigma[k], 0.5 * slope)
        sigma["Kz"] = with_kz_systematic(sigma["Kz"], z_grid, values["Kz"])
    return LocalQuantities(R0=R0, z0=z0, phi0=phi0, z=z_grid, sigma=sigma, **values)
