r"""Accuracy metrics of a learned potential against a reference: the one definition of each.

Models and references are fields (:mod:`deeppot_galpy.fields`, :func:`as_field`): a
:class:`~deeppot_galpy.potential.PotentialNet`, a mock, a galpy ``Potential`` (natural units,
converted into the model's ``units`` when they are given), an ``agama.Potential``, a Python
callable :math:`\Phi(\vec x)`, or any object with ``potential``, ``acceleration`` and
``density`` methods. At evaluation points :math:`\vec x_i`:

* potential error :math:`|\Phi - \Phi_{ref} - c| / |\Phi_{ref}|`, with :math:`c` the median
  offset (the potential is only defined up to a constant),
* force error :math:`|\vec a - \vec a_{ref}| / |\vec a_{ref}|` (:func:`relative_error`), the
  force ratio :math:`|\vec a| / |\vec a_{ref}|` (its median minus one is the bias), and the
  error's cylindrical components about a centre,
  :math:`|(\vec a - \vec a_{ref})\cdot\hat e_{R}| / |\vec a_{ref}|` and
  :math:`|(\vec a - \vec a_{ref})\cdot\hat e_z| / |\vec a_{ref}|` (their squares and the
  azimuthal one add up to the force error squared),
* density error :math:`|\rho - \rho_{ref}| / \rho_{ref}`,

each summarised by its median and 90th percentile, overall and in radial bins, on the points
inside the data ``region`` (:meth:`~deeppot_galpy.phasespace.PhaseSpace.region`), where the
stars constrain the fit. Exports are checked at :func:`check_points`: distances from the data
centre log-uniform between :math:`\max(r_{min}, 10^{-3} r_{max})` and :math:`r_{max}`, so each
decade of radius weighs the same (the body of a galaxy, where most stars are, is not
outweighed by the sparse outer volume), reported overall and by radius (:func:`by_radius`).
For disks (:func:`disk_metrics`) two curves are compared:

* the circular velocity in the plane, :math:`v_c(R) = \sqrt{R\,\langle -a_R\rangle_\phi}`,
* the vertical force at radius :math:`R` (the Sun's for a Galactic disk),
  :math:`K_z(z) = \langle a_z\rangle_\phi = -\langle\partial\Phi/\partial z\rangle_\phi`
  (negative above the plane; :math:`|K_z| / 2\pi G` is the surface density within
  :math:`\pm z` for a thin slab), with relative errors :math:`|\Delta v_c| / v_{c,ref}` and
  :math:`|\Delta K_z| / |K_{z,ref}|`.

Orbits (:func:`energy_drift`, :func:`orbit_divergence`): :math:`|E(t)/E(0) - 1|` and
:math:`|\vec x(t) - \vec x_{ref}(t)| / |\vec x_{ref}(0)|`.

Error bars are judged by their coverage (:func:`coverage`): the fraction of points where the
truth lies within :math:`1\sigma` and :math:`2\sigma` of the model (68.3% and 95.4% for
well-calibrated Gaussian errors).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .fields import CallableField, Field, as_field, model_G

if TYPE_CHECKING:
    from .units import Units

__all__ = [
    "CHECK_POINTS",
    "Field",
    "CallableField",
    "as_field",
    "in_region",
    "CENTRED_WITHIN",
    "centre_offset",
    "is_centred",
    "check_points",
    "relative_error",
    "field_errors",
    "summarize",
    "radial_profile",
    "by_radius",
    "potential_metrics",
    "gradient_errors",
    "coverage",
    "energy_drift",
    "orbit_divergence",
    "circular_velocity",
    "vertical_force",
    "disk_metrics",
]

#: how :func:`check_points` places its points, quoted in the export reports
CHECK_POINTS = (
    "distance from the data centre log-uniform in [max(r_min, 1e-3 r_max), r_max] "
    "(each decade of radius weighs the same), quasi-uniform directions, inside the region"
)

#: the per-point errors that :func:`summarize` and :func:`radial_profile` report
_ERROR_KEYS = ("phi", "force", "force_R", "force_z", "density")


def in_region(x: np.ndarray, region: dict | None) -> np.ndarray:
    """Mask of the points x (N, 3) inside ``region``: within [r_min, r_max] of ``center`` and
    inside the box [lo, hi]; a missing key (or ``region=None``) does not constrain."""
    keep = np.ones(len(x), dtype=bool)
    if not region:
        return keep
    center = np.asarray(region.get("center", np.zeros(3)), dtype=float)
    d = np.linalg.norm(x - center, axis=1)
    if "r_min" in region:
        keep &= d >= region["r_min"]
    if "r_max" in region:
        keep &= d <= region["r_max"]
    if "lo" in region:
        keep &= np.all(x >= np.asarray(region["lo"]), axis=1)
    if "hi" in region:
        keep &= np.all(x <= np.asarray(region["hi"]), axis=1)
    return keep


def centre_offset(region: dict) -> float:
    """Distance of the region's centre from the origin (the galaxy's centre), in r_max."""
    return float(np.linalg.norm(np.asarray(region["center"], float)) / region["r_max"])


CENTRED_WITHIN = 0.25  # a region centred closer than this (in r_max) covers the galaxy's centre


def is_centred(region: dict) -> bool:
    """Whether the data are a whole system about the origin, not a volume away from it: what
    decides expansions and symmetries about the galaxy's centre (exports, Agama, orbits, the
    symmetry ``auto`` and the flows' augmentation)."""
    return centre_offset(region) <= CENTRED_WITHIN


def check_points(region: dict, n: int, seed: int = 0) -> np.ndarray:
    """n points inside ``region`` placed as :data:`CHECK_POINTS` says: radii from ``seed``,
    directions on a Fibonacci sphere; where the region's box cuts the ball, more are drawn
    and n of those inside kept at random."""
    rng = np.random.default_rng(seed)
    c, r_max = np.asarray(region["center"], float), float(region["r_max"])
    ln_r = (math.log(max(region["r_min"], 1e-3 * r_max)), math.log(r_max))
    box = {k: region[k] for k in ("lo", "hi") if k in region}  # the radii are in range already
    m = n
    while True:
        r = np.exp(rng.uniform(*ln_r, m))
        k = np.arange(m) + 0.5
        cos_t, az = 1.0 - 2.0 * k / m, np.pi * (1.0 + math.sqrt(5.0)) * k
        s = np.sqrt(1.0 - cos_t**2)
        x = c + r[:, None] * np.stack([s * np.cos(az), s * np.sin(az), cos_t], axis=1)
        x = x[in_region(x, box)]
        if len(x) >= n:
            return x if len(x) == n else x[np.sort(rng.choice(len(x), n, replace=False))]
        if len(x) < 1e-3 * m:
            raise ValueError("the region's box holds almost none of its ball: no check points")
        m = math.ceil(1.5 * m * n / len(x))


def relative_error(a: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """|a - ref| / |ref| per row of (N, k) vectors."""
    return np.linalg.norm(a - ref, axis=1) / np.linalg.norm(ref, axis=1)


def _cylindrical_basis(x: np.ndarray, center: np.ndarray | None) -> tuple[np.ndarray, ...]:
    """Unit vectors e_R, e_phi (N, 3) about the z axis through ``center``, and R (N,)."""
    d = x - (0.0 if center is None else np.asarray(center))
    R = np.hypot(d[:, 0], d[:, 1])
    safe = np.where(R > 0, R, 1.0)
    c, s = np.where(R > 0, d[:, 0] / safe, 1.0), np.where(R > 0, d[:, 1] / safe, 0.0)
    zero = np.zeros_like(R)
    return np.stack([c, s, zero], 1), np.stack([-s, c, zero], 1), R


def field_errors(
    model: Any,
    reference: Any,
    x: np.ndarray,
    G: float = 1.0,
    center: np.ndarray | None = None,
    units: Units | None = None,
) -> dict:
    """Per-point errors of ``model`` against ``reference`` at positions x (N, 3).

    ``force_R``/``force_z`` are the error's components along the cylindrical R and z axes
    about ``center`` (default: the origin), in units of |a_ref|. With the model's ``units``,
    galpy potentials are converted from natural units into them (:func:`as_field`).
    """
    m, t = as_field(model, G, units), as_field(reference, G, units)
    # density first: a network computes Phi and its force in the same (Hessian) pass
    rho_m, rho_t = m.density(x), t.density(x)
    phi_m, phi_t = m.potential(x), t.potential(x)
    offset = float(np.median(phi_m - phi_t))
    a_m, a_t = m.acceleration(x), t.acceleration(x)
    a_t_norm = np.linalg.norm(a_t, axis=1)
    e_R, _, _ = _cylindrical_basis(x, center)
    da = a_m - a_t
    return {
        "offset": offset,
        "phi": np.abs(phi_m - phi_t - offset) / np.abs(phi_t),
        "force": relative_error(a_m, a_t),
        "force_R": np.abs(np.sum(da * e_R, axis=1)) / a_t_norm,
        "force_z": np.abs(da[:, 2]) / a_t_norm,
        "force_ratio": np.linalg.norm(a_m, axis=1) / a_t_norm,
        "density": np.abs(rho_m - rho_t) / rho_t,
    }


def summarize(errors: dict) -> dict:
    """Median and 90th percentile of each per-point error; median force ratio (if given) as
    the bias."""
    out = {}
    for key in _ERROR_KEYS:
        if key in errors:
            out[f"{key}_err_median"] = float(np.median(errors[key]))
            out[f"{key}_err_p90"] = float(np.percentile(errors[key], 90))
    if "force_ratio" in errors:
        out["force_bias_median"] = float(np.median(errors["force_ratio"]) - 1.0)
    return out


def radial_profile(r: np.ndarray, errors: dict, edges: np.ndarray) -> dict:
    """Medians of the errors in radial bins ``edges``; NaN where a bin is empty."""
    idx = np.digitize(r, edges) - 1
    keys = [k for k in (*_ERROR_KEYS, "force_ratio") if k in errors]
    prof: dict[str, list] = {"r_lo": list(edges[:-1]), "r_hi": list(edges[1:]), "n": []}
    for key in keys:
        prof[key] = []
    for b in range(len(edges) - 1):
        sel = idx == b
        prof["n"].append(int(sel.sum()))
        for key in keys:
            prof[key].append(float(np.median(errors[key][sel])) if sel.any() else float("nan"))
    return prof


def by_radius(r: np.ndarray, errors: np.ndarray, n_bins: int = 4) -> list[list[float]]:
    """[r_lo, r_hi, median error] in ``n_bins`` log-spaced bins spanning the radii r."""
    edges = np.geomspace(r.min(), r.max() * (1 + 1e-12), n_bins + 1)
    prof = radial_profile(r, {"force": errors}, edges)
    rows = zip(prof["r_lo"], prof["r_hi"], prof["force"], strict=True)
    return [[float(lo), float(hi), med] for lo, hi, med in rows]


def potential_metrics(
    model: Any,
    reference: Any,
    x: np.ndarray,
    G: float = 1.0,
    r_range: tuple[float, float] | None = None,
    center: np.ndarray | None = None,
    n_bins: int = 8,
    region: dict | None = None,
    units: Units | None = None,
) -> dict:
    """Summary and radial profile of the errors at x, within r_range of ``center``.

    With ``region`` (e.g. ``PhaseSpace.region()``), only points inside it are scored, and
    ``center`` and ``r_range`` default to its centre and [r_min, r_max]. ``units``: the
    model's, as in :func:`field_errors`.
    """
    if region is not None:
        x = x[in_region(x, region)]
        center = np.asarray(region["center"]) if center is None else center
        if r_range is None and "r_min" in region and "r_max" in region:
            r_range = (float(region["r_min"]), float(region["r_max"]))
    r = np.linalg.norm(x - (0.0 if center is None else center), axis=1)
    if r_range is not None:
        keep = (r >= r_range[0]) & (r <= r_range[1])
        x, r = x[keep], r[keep]
    if len(x) == 0:
        raise ValueError("no evaluation points inside the requested radial range")
    errs = field_errors(model, reference, x, G, center, units)
    lo, hi = (r.min(), r.max()) if r_range is None else r_range
    edges = np.geomspace(max(lo, 1e-3 * hi), hi, n_bins + 1)
    out = summarize(errs)
    out["n_points"] = int(len(x))
    out["r_range"] = [float(lo), float(hi)]
    out["radial"] = radial_profile(r, errs, edges)
    out["force_bias_max_bin"] = float(np.nanmax(np.abs(np.array(out["radial"]["force_ratio"]) - 1)))
    return out


def coverage(model: Any, reference: Any, x: np.ndarray, sigma: dict, G: float = 1.0) -> dict:
    """How often the truth lies within the quoted errors ``sigma`` of ``model`` at x (N, 3).

    ``sigma`` holds the 1-sigma errors ``phi`` (N,), ``acc`` (N, 3) and ``density`` (N,)
    (:func:`~deeppot_galpy.potential.replicates.replicate_spread`). Per quantity: the
    fractions of normalised errors ``|model - truth| / sigma`` below 1 and 2 (each Cartesian
    force component counts as one; Phi after the median offset), ``sigma_scale`` = median
    normalised error / 0.6745 (the factor the sigmas would need for nominal coverage), and
    the median sigma relative to the truth beside the median actual error.
    """
    m, t = as_field(model, G), as_field(reference, G)
    # density first, as in field_errors: a network's Hessian pass also caches Phi and force
    rho_m, rho_t = m.density(x), t.density(x)
    phi_m, phi_t = m.potential(x), t.potential(x)
    a_t = t.acceleration(x)
    pairs = {
        "phi": (phi_m - np.median(phi_m - phi_t), phi_t, sigma["phi"]),
        "force": (m.acceleration(x), a_t, sigma["acc"]),
        "density": (rho_m, rho_t, sigma["density"]),
    }
    out = {}
    for key, (est, true, sig) in pairs.items():
        err = np.abs(est - true)
        with np.errstate(divide="ignore", invalid="ignore"):  # replicates that agree exactly
            z = np.where(err == 0, 0.0, err / sig).ravel()
        scale = np.abs(true) if key != "force" else np.linalg.norm(true, axis=1, keepdims=True)
        out[key] = {
            "within_1sigma": float(np.mean(z < 1.0)),
            "within_2sigma": float(np.mean(z < 2.0)),
            "sigma_scale": float(np.median(z) / 0.6745),
            "sigma_rel_median": float(np.median(sig / scale)),
            "err_rel_median": float(np.median(np.abs(est - true) / scale)),
        }
    return out


def gradient_errors(
    grad_model: np.ndarray, grad_true: np.ndarray, split: int = 3
) -> dict[str, float]:
    """Relative errors of grad ln f: position part (first ``split`` axes) and velocity part."""
    out = {}
    for name, sl in (("x", slice(0, split)), ("v", slice(split, None))):
        err = relative_error(grad_model[:, sl], grad_true[:, sl])
        out[f"grad_{name}_lnf_err_median"] = float(np.median(err))
        out[f"grad_{name}_lnf_err_p90"] = float(np.percentile(err, 90))
    return out


def energy_drift(energy: np.ndarray) -> np.ndarray:
    """|E(t) / E(0) - 1| of orbits' energies (N, T)."""
    return np.abs(energy / energy[:, :1] - 1.0)


def orbit_divergence(x: np.ndarray, x_ref: np.ndarray) -> np.ndarray:
    """|x(t) - x_ref(t)| / |x_ref(0)| (N, T) of orbits' positions (N, T, 3)."""
    r0 = np.linalg.norm(x_ref[:, 0], axis=-1, keepdims=True)
    return np.linalg.norm(x - x_ref, axis=-1) / r0


# ---- disks: the rotation curve and the vertical force ----------------------------------------
def _ring(R: np.ndarray, z: np.ndarray, n_phi: int, center: np.ndarray | None) -> np.ndarray:
    """Points (len(R), n_phi, 3) on rings of radius R at height z about ``center``."""
    phi = (np.arange(n_phi) + 0.5) * 2.0 * np.pi / n_phi
    pts = np.stack(
        [
            R[:, None] * np.cos(phi)[None, :],
            R[:, None] * np.sin(phi)[None, :],
            np.broadcast_to(z[:, None], (len(R), n_phi)),
        ],
        axis=-1,
    )
    return pts + (0.0 if center is None else np.asarray(center))


def _ring_mean_force(
    field: Any, R: np.ndarray, z: np.ndarray, n_phi: int, center, G: float
) -> tuple[np.ndarray, np.ndarray]:
    """Azimuthal means of (a_R, a_z) on rings (R, z) about ``center``."""
    pts = _ring(np.asarray(R, float), np.asarray(z, float), n_phi, center)
    flat = pts.reshape(-1, 3)
    a = as_field(field, G).acceleration(flat)
    e_R, _, _ = _cylindrical_basis(flat, center)
    a_R = np.sum(a * e_R, axis=1).reshape(len(R), n_phi).mean(1)
    return a_R, a[:, 2].reshape(len(R), n_phi).mean(1)


def circular_velocity(
    field: Any,
    R: np.ndarray,
    G: float = 1.0,
    center: np.ndarray | None = None,
    n_phi: int = 8,
) -> np.ndarray:
    """v_c(R) = sqrt(R <-a_R>_phi) in the plane z = center_z; 0 where the mean pull is outward."""
    R = np.asarray(R, dtype=float)
    a_R, _ = _ring_mean_force(field, R, np.zeros_like(R), n_phi, center, G)
    return np.sqrt(np.clip(-R * a_R, 0.0, None))


def vertical_force(
    field: Any,
    z: np.ndarray,
    R: float = 1.0,
    G: float = 1.0,
    center: np.ndarray | None = None,
    n_phi: int = 8,
) -> np.ndarray:
    """K_z(z) = <a_z>_phi at cylindrical radius R (negative above the plane for a disk)."""
    z = np.asarray(z, dtype=float)
    return _ring_mean_force(field, np.full_like(z, R), z, n_phi, center, G)[1]


def disk_metrics(
    model: Any,
    reference: Any,
    x: np.ndarray,
    R_sun: float = 1.0,
    G: float = 1.0,
    region: dict | None = None,
    center: np.ndarray | None = None,
    n_R: int = 24,
    n_z: int = 16,
    n_phi: int = 8,
    units: Units | None = None,
) -> dict:
    """Disk summary: per-point errors (with R and z force parts), v_c(R) and K_z(z) at R_sun.

    Points x are kept inside ``region``; the v_c curve spans their 2nd-98th percentiles of
    cylindrical R about ``center`` (default: the origin, the disk's axis, not the data's
    centre, which for a local sample is off-axis), and K_z the heights of stars within
    0.1 R_sun of R_sun (2nd-98th percentile of |z|; else all kept stars'). ``units``: the
    model's, as in :func:`field_errors`.
    """
    x = x[in_region(x, region)]
    if len(x) == 0:
        raise ValueError("no evaluation points inside the region")
    c = np.zeros(3) if center is None else np.asarray(center, float)
    G = model_G(G, units)
    model, reference = as_field(model, G, units), as_field(reference, G, units)
    errs = field_errors(model, reference, x, G, c)
    out: dict[str, Any] = summarize(errs)
    out["n_points"] = int(len(x))

    R = np.hypot(x[:, 0] - c[0], x[:, 1] - c[1])
    R_grid = np.linspace(*np.percentile(R, [2.0, 98.0]), n_R)
    vc_m = circular_velocity(model, R_grid, G, c, n_phi)
    vc_t = circular_velocity(reference, R_grid, G, c, n_phi)
    vc_err = np.abs(vc_m - vc_t) / vc_t
    out["vc"] = {
        "R": R_grid.tolist(),
        "model": vc_m.tolist(),
        "reference": vc_t.tolist(),
        "err": vc_err.tolist(),
    }
    out["vc_err_median"] = float(np.median(vc_err))
    out["vc_err_max"] = float(np.max(vc_err))

    dz = np.abs(x[:, 2] - c[2])
    near = np.abs(R - R_sun) < 0.1 * R_sun
    z_lo, z_hi = np.percentile(dz[near] if near.sum() >= 20 else dz, [2.0, 98.0])
    z_grid = np.linspace(max(z_lo, 0.02 * z_hi), z_hi, n_z)  # K_z -> 0 in the plane
    kz_m = vertical_force(model, z_grid + c[2], R_sun, G, c, n_phi)
    kz_t = vertical_force(reference, z_grid + c[2], R_sun, G, c, n_phi)
    kz_err = np.abs(kz_m - kz_t) / np.abs(kz_t)
    out["kz"] = {
        "R": float(R_sun),
        "z": z_grid.tolist(),
        "model": kz_m.tolist(),
        "reference": kz_t.tolist(),
        "err": kz_err.tolist(),
    }
    out["kz_err_median"] = float(np.median(kz_err))
    out["kz_err_max"] = float(np.max(kz_err))
    return out
