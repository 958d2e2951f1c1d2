r"""The Galactocentric frame: its parameters, recorded with every result, and the transforms.

Positions and velocities in this package are Galactocentric Cartesian in astropy's convention
(:class:`astropy.coordinates.Galactocentric`): right-handed, origin at the Galactic centre, the
Sun near :math:`x = -R_0` and moving towards :math:`+y`, :math:`+z` towards the North Galactic
Pole. Which frame that is depends on six numbers: the Sun's distance to the centre
:math:`R_0` (``galcen_distance``), its height above the plane :math:`z_\odot` (``z_sun``), its
velocity relative to the centre :math:`\vec v_\odot` (``galcen_v_sun``), the ICRS position of the
centre (``galcen_ra``, ``galcen_dec``) and the frame's ``roll`` about the Sun-centre line.
A different choice moves and rotates every star, so :class:`FrameParameters` is recorded in each
:class:`~deeppot_galpy.phasespace.PhaseSpace` built from a catalog; its default is whatever
astropy's ``galactocentric_frame_defaults`` hold when it is created (astropy's "v4.0" set:
:math:`R_0` = 8.122 kpc, :math:`z_\odot` = 20.8 pc, :math:`\vec v_\odot` = (12.9, 245.6, 7.78)
km/s).

Observables are ICRS: ``ra``, ``dec`` [deg], heliocentric ``distance`` [kpc],
``pmra`` :math:`= \mu_{\alpha*} = \mu_\alpha\cos\delta` and ``pmdec`` [mas/yr], and
``radial_velocity`` [km/s]. The ICRS -> Galactocentric map is affine; astropy does it here in
chunks so that 10^7 stars never hold more than one chunk's intermediate arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import (
    ICRS,
    CartesianDifferential,
    CartesianRepresentation,
    Galactocentric,
    RadialDifferential,
    SkyCoord,
    UnitSphericalCosLatDifferential,
    UnitSphericalDifferential,
    UnitSphericalRepresentation,
    galactocentric_frame_defaults,
)

__all__ = [
    "FrameParameters",
    "galactocentric_to_observables",
    "observables_to_galactocentric",
    "skycoord_to_galactocentric",
    "sun_position",
    "velocity_covariance",
]

KMS = u.km / u.s
MASYR = u.mas / u.yr

# km/s per (kpc mas/yr): v_tan = K d mu
_K = (1 * u.kpc * MASYR).to_value(KMS, equivalencies=u.dimensionless_angles())

# Rows per astropy transform: ~300 MB of temporaries at 10^6, ~1 s each on one core.
CHUNK_ROWS = 1_000_000


def _astropy_default(name: str) -> Any:
    """One of astropy's Galactocentric defaults in force now, as plain floats in our units."""
    d = galactocentric_frame_defaults.get()
    if name == "galcen_distance":
        return float(d["galcen_distance"].to_value(u.kpc))
    if name == "z_sun":
        return float(d["z_sun"].to_value(u.pc))
    if name == "roll":
        return float(d["roll"].to_value(u.deg))
    if name == "galcen_v_sun":
        vsun = d["galcen_v_sun"]
        # astropy < 8 keeps a CartesianDifferential (d_x...), >= 8 a CartesianRepresentation.
        xyz = vsun.d_xyz if isinstance(vsun, CartesianDifferential) else vsun.xyz
        return tuple(float(c) for c in xyz.to_value(KMS))
    icrs = d["galcen_coord"].transform_to(ICRS())
    return float(icrs.ra.deg) if name == "galcen_ra" else float(icrs.dec.deg)


def _default(name: str):
    return field(default_factory=lambda: _astropy_default(name))


@dataclass(frozen=True)
class FrameParameters:
    """The Galactocentric frame in force, as plain numbers (see the module docstring).

    Every field defaults to astropy's Galactocentric default at the time of creation.

    Parameters
    ----------
    galcen_distance : Sun - Galactic centre distance :math:`R_0` [kpc].
    z_sun : height of the Sun above the Galactic mid-plane [pc].
    galcen_v_sun : the Sun's velocity in the Galactocentric frame (x, y, z) [km/s].
    roll : rotation of the frame about the Sun-centre line [deg].
    galcen_ra, galcen_dec : ICRS position of the Galactic centre [deg].
    """

    galcen_distance: float = _default("galcen_distance")
    z_sun: float = _default("z_sun")
    galcen_v_sun: tuple[float, float, float] = _default("galcen_v_sun")
    roll: float = _default("roll")
    galcen_ra: float = _default("galcen_ra")
    galcen_dec: float = _default("galcen_dec")

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name == "galcen_v_sun":
                value = tuple(float(c) for c in self.galcen_v_sun)
                if len(value) != 3 or not all(math.isfinite(c) for c in value):
                    raise ValueError(f"galcen_v_sun must be 3 finite km/s; got {value}")
            else:
                value = float(getattr(self, f.name))
                if not math.isfinite(value):
                    raise ValueError(f"frame parameter {f.name} must be finite; got {value}")
            object.__setattr__(self, f.name, value)
        if self.galcen_distance <= 0:
            raise ValueError(f"galcen_distance must be > 0 kpc; got {self.galcen_distance}")
        if abs(self.z_sun) >= 1000.0 * self.galcen_distance:
            raise ValueError("z_sun must be smaller than galcen_distance")

    # JSON keys carry the unit, so a record read without this code is unambiguous.
    _KEYS = {
        "galcen_distance": "galcen_distance_kpc",
        "z_sun": "z_sun_pc",
        "galcen_v_sun": "galcen_v_sun_kms",
        "roll": "roll_deg",
        "galcen_ra": "galcen_ra_deg",
        "galcen_dec": "galcen_dec_deg",
    }

    def to_dict(self) -> dict:
        """Plain floats, keys with their unit (``galcen_distance_kpc``, ...): JSON/TOML safe."""
        return {
            key: list(getattr(self, name)) if name == "galcen_v_sun" else getattr(self, name)
            for name, key in self._KEYS.items()
        }

    @classmethod
    def from_dict(cls, d: dict) -> FrameParameters:
        """Inverse of :meth:`to_dict`; missing keys take astropy's defaults, unknown keys raise."""
        by_key = {key: name for name, key in cls._KEYS.items()}
        unknown = sorted(set(d) - set(by_key))
        if unknown:
            raise ValueError(f"unknown frame parameter(s) {unknown}; allowed: {sorted(by_key)}")
        return cls(**{by_key[k]: v for k, v in d.items()})

    @classmethod
    def from_frame(cls, frame: Galactocentric) -> FrameParameters:
        """The parameters of an astropy Galactocentric frame instance."""
        vsun = frame.galcen_v_sun
        xyz = vsun.d_xyz if isinstance(vsun, CartesianDifferential) else vsun.xyz
        icrs = frame.galcen_coord.transform_to(ICRS())
        return cls(
            galcen_distance=frame.galcen_distance.to_value(u.kpc),
            z_sun=frame.z_sun.to_value(u.pc),
            galcen_v_sun=tuple(xyz.to_value(KMS)),
            roll=frame.roll.to_value(u.deg),
            galcen_ra=icrs.ra.deg,
            galcen_dec=icrs.dec.deg,
        )

    def to_frame(self) -> Galactocentric:
        """The astropy Galactocentric frame with these parameters."""
        return Galactocentric(
            galcen_coord=ICRS(ra=self.galcen_ra * u.deg, dec=self.galcen_dec * u.deg),
            galcen_distance=self.galcen_distance * u.kpc,
            galcen_v_sun=CartesianDifferential(list(self.galcen_v_sun) * KMS),
            z_sun=self.z_sun * u.pc,
            roll=self.roll * u.deg,
        )


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def _galactocentric_arrays(gc) -> tuple[np.ndarray, np.ndarray]:
    x = np.stack([gc.x.to_value(u.kpc), gc.y.to_value(u.kpc), gc.z.to_value(u.kpc)], axis=1)
    v = np.stack([gc.v_x.to_value(KMS), gc.v_y.to_value(KMS), gc.v_z.to_value(KMS)], axis=1)
    return x, v


def observables_to_galactocentric(
    ra: np.ndarray,
    dec: np.ndarray,
    distance: np.ndarray,
    pmra: np.ndarray,
    pmdec: np.ndarray,
    radial_velocity: np.ndarray,
    frame: FrameParameters,
    rows: np.ndarray | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> tuple[np.ndarray, np.ndarray]:
    """ICRS observables (deg, deg, kpc, mas/yr, mas/yr, km/s) -> x [kpc], v [km/s], each (N, 3).

    ``pmra`` includes the cos(dec) factor, as in Gaia. ``rows`` (an index) transforms only those
    rows, one chunk at a time, without first copying the selected rows out of every column.
    The rows transformed must be finite (cut them first).
    """
    n = len(ra) if rows is None else len(rows)
    gc_frame = frame.to_frame()
    x = np.empty((n, 3))
    v = np.empty((n, 3))
    for s in _chunks(n, chunk_rows):
        r = s if rows is None else rows[s]
        icrs = ICRS(
            ra=ra[r] * u.deg,
            dec=dec[r] * u.deg,
            distance=distance[r] * u.kpc,
            pm_ra_cosdec=pmra[r] * MASYR,
            pm_dec=pmdec[r] * MASYR,
            radial_velocity=radial_velocity[r] * KMS,
        )
        x[s], v[s] = _galactocentric_arrays(icrs.transform_to(gc_frame))
    return x, v


def _icrs_rotation(frame: FrameParameters) -> np.ndarray:
    """The 3x3 matrix taking an ICRS velocity to a Galactocentric one (the map is affine, so
    differences of transformed velocities at any one position give its columns)."""
    vel = np.concatenate([np.zeros((3, 1)), np.eye(3)], axis=1) * KMS  # 0, e_x, e_y, e_z
    pos = np.ones((3, 4)) * u.kpc
    icrs = ICRS(CartesianRepresentation(pos, differentials=CartesianDifferential(vel)))
    _, v = _galactocentric_arrays(icrs.transform_to(frame.to_frame()))
    return (v[1:] - v[0]).T


def velocity_covariance(
    ra: np.ndarray,
    dec: np.ndarray,
    distance: np.ndarray,
    pmra: np.ndarray,
    pmdec: np.ndarray,
    errors: dict[str, np.ndarray],
    correlations: dict[tuple[str, str], np.ndarray],
    frame: FrameParameters,
) -> np.ndarray:
    r"""Each star's Galactocentric velocity covariance [(km/s)^2], (N, 3, 3), to first order.

    The heliocentric velocity is :math:`v_r\hat n + K d(\mu_{\alpha*}\hat e_\alpha +
    \mu_\delta\hat e_\delta)` with :math:`d = 1/\varpi`, so its Jacobian J has the columns
    :math:`\partial/\partial\mu_{\alpha*} = K d\hat e_\alpha`,
    :math:`\partial/\partial\mu_\delta = K d\hat e_\delta`, :math:`\partial/\partial v_r =
    \hat n` and :math:`\partial/\partial\varpi = -K d^2(\mu_{\alpha*}\hat e_\alpha +
    \mu_\delta\hat e_\delta)`, and the covariance is :math:`R J\Sigma J^T R^T`, R the
    ICRS -> Galactocentric rotation, :math:`\Sigma` the observables' covariance.

    ``errors`` maps any of ``pmra``, ``pmdec``, ``radial_velocity`` [mas/yr, km/s] and
    ``parallax`` [mas] to their standard deviations (an absent one counts as exact);
    ``correlations`` maps pairs of those names to correlation coefficients (Gaia's
    ``pmra_pmdec_corr`` etc.). Position errors are not propagated.
    """
    a, b = np.radians(ra), np.radians(dec)
    zero = np.zeros_like(a)
    e_ra = np.stack([-np.sin(a), np.cos(a), zero], axis=1)
    e_dec = np.stack([-np.sin(b) * np.cos(a), -np.sin(b) * np.sin(a), np.cos(b)], axis=1)
    n = np.stack([np.cos(b) * np.cos(a), np.cos(b) * np.sin(a), np.sin(b)], axis=1)
    d = distance[:, None]
    columns = {
        "pmra": _K * d * e_ra,
        "pmdec": _K * d * e_dec,
        "radial_velocity": n,
        "parallax": -_K * d**2 * (pmra[:, None] * e_ra + pmdec[:, None] * e_dec),
    }
    # columns scaled by each observable's error: J diag(sigma), so Sigma's part is the correlations
    scaled = {k: columns[k] * errors[k][:, None] for k in columns if k in errors}
    cov = sum(np.einsum("ni,nj->nij", c, c) for c in scaled.values())
    for (p, q), rho in correlations.items():
        if p in scaled and q in scaled:
            cross = np.einsum("ni,nj->nij", scaled[p], scaled[q]) * rho[:, None, None]
            cov = cov + cross + cross.transpose(0, 2, 1)
    rot = _icrs_rotation(frame)
    return np.einsum("ij,njk,lk->nil", rot, cov, rot)


def galactocentric_to_observables(
    x: np.ndarray, v: np.ndarray, frame: FrameParameters
) -> dict[str, np.ndarray]:
    """x [kpc], v [km/s] (N, 3) -> ICRS ``ra, dec, distance, pmra, pmdec, radial_velocity``.

    Units as in the module docstring (distance in kpc, so parallax [mas] = 1 / distance).
    """
    rep = CartesianRepresentation(
        x.T * u.kpc, differentials=CartesianDifferential(v.T * KMS), copy=False
    )
    gc = frame.to_frame().realize_frame(rep)
    icrs = gc.transform_to(ICRS())
    return {
        "ra": icrs.ra.to_value(u.deg),
        "dec": icrs.dec.to_value(u.deg),
        "distance": icrs.distance.to_value(u.kpc),
        "pmra": icrs.pm_ra_cosdec.to_value(MASYR),
        "pmdec": icrs.pm_dec.to_value(MASYR),
        "radial_velocity": icrs.radial_velocity.to_value(KMS),
    }


def skycoord_to_galactocentric(
    coord: SkyCoord, frame: FrameParameters, chunk_rows: int = CHUNK_ROWS
) -> tuple[np.ndarray, np.ndarray]:
    """A 6D SkyCoord in any frame -> x [kpc], v [km/s] (N, 3) in ``frame``.

    Raises ValueError if the coordinates lack a distance, proper motions or radial velocities:
    the Galactocentric position and velocity need all six.
    """
    flat = coord.reshape((-1,)) if coord.ndim != 1 else coord
    if len(flat) == 0:
        raise ValueError("SkyCoord is empty: no stars")
    missing = _missing_phase_space(flat[:1])
    if missing:
        raise ValueError(
            f"SkyCoord (frame {coord.frame.name}) has no {' and no '.join(missing)}: "
            "a Galactocentric position and velocity need full 6D coordinates"
        )
    gc_frame = frame.to_frame()
    n = len(flat)
    x = np.empty((n, 3))
    v = np.empty((n, 3))
    for s in _chunks(n, chunk_rows):
        x[s], v[s] = _galactocentric_arrays(flat[s].transform_to(gc_frame))
    return x, v


def _missing_phase_space(coord: SkyCoord) -> list[str]:
    """Which of distance / proper motions / radial velocity ``coord`` lacks (a 1-element one)."""
    data = coord.data
    missing = []
    if isinstance(data, UnitSphericalRepresentation) or data.norm().unit.physical_type != "length":
        missing.append("distance")
    diff = data.differentials.get("s")
    if diff is None:
        missing.append("velocities")
    elif isinstance(diff, RadialDifferential):
        missing.append("proper motions")
    elif isinstance(diff, UnitSphericalDifferential | UnitSphericalCosLatDifferential):
        missing.append("radial velocity")
    return missing


def sun_position(frame: FrameParameters) -> np.ndarray:
    """The Sun's (solar-system barycentre's) Galactocentric position [kpc], shape (3,)."""
    origin = ICRS(CartesianRepresentation([0.0, 0.0, 0.0] * u.kpc))
    gc = origin.transform_to(frame.to_frame())
    return np.array([gc.x.to_value(u.kpc), gc.y.to_value(u.kpc), gc.z.to_value(u.kpc)])
