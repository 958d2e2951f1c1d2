r"""Accuracy metrics of a learned potential against a reference: the one definition of each.

A field is anything that gives :math:`\Phi`, :math:`\vec a = -\nabla\Phi` and
:math:`\rho = \nabla^2\Phi / 4\pi G` at positions (N, 3) in the model's units
(:func:`as_field`): a :class:`~deeppot_galpy.potential.PotentialNet`, a mock
(:class:`~deeppot_galpy.mocks.MockSystem`), a galpy ``Potential`` (natural units), an
``agama.Potential`` (agama's current units), a Python callable :math:`\Phi(\vec x)`
(:class:`CallableField`), or any object with ``potential``, ``acceleration`` and ``density``
methods. At evaluation points :math:`\vec x_i`:

* potential error :math:`|\Phi - \Phi_{ref} - c| / |\Phi_{ref}|`, with :math:`c` the median
  offset (the potential is only defined up to a constant),
* force error :math:`|\vec a - \vec a_{ref}| / |\vec a_{ref}|`, the force ratio
  :math:`|\vec a| / |\vec a_{ref}|` (its median minus one is the bias), and the error's
  cylindrical components about a centre,
  :math:`|(\vec a - \vec a_{ref})\cdot\hat e_{R}| / |\vec a_{ref}|` and
  :math:`|(\vec a - \vec a_{ref})\cdot\hat e_z| / |\vec a_{ref}|` (their squares and the
  azimuthal one add up to the force error squared),
* density error :math:`|\rho - \rho_{ref}| / \rho_{ref}`,

each summarised by its median and 90th percentile, overall and in radial bins, on the points
inside the data ``region`` (:meth:`~deeppot_galpy.phasespace.PhaseSpace.region`), where the
stars constrain the fit. For disks (:func:`disk_metrics`) two curves are compared:

* the circular velocity in the plane, :math:`v_c(R) = \sqrt{R\,\langle -a_R\rangle_\phi}`,
* the vertical force at radius :math:`R` (the Sun's for a Galactic disk),
  :math:`K_z(z) = \langle a_z\rangle_\phi = -\langle\partial\Phi/\partial z\rangle_\phi`
  (negative above the plane; :math:`|K_z| / 2\pi G` is the surface density within
  :math:`\pm z` for a thin slab), with relative errors :math:`|\Delta v_c| / v_{c,ref}` and
  :math:`|\Delta K_z| / |K_{z,ref}|`.

Error bars are judged by their coverage (:func:`coverage`): the fraction of points where the
truth lies within :math:`1\sigma` and :math:`2\sigma` of the model (68.3% and 95.4% for
well-calibrated Gaussian errors).

The plots (:func:`plot_error_profile`, :func:`plot_circular_velocity`,
:func:`plot_vertical_force`) draw these results on matplotlib figures without pyplot state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .units import Units

__all__ = [
    "Field",
    "CallableField",
    "as_field",
    "in_region",
    "field_errors",
    "summarize",
    "radial_profile",
    "potential_metrics",
    "gradient_errors",
    "coverage",
    "circular_velocity",
    "vertical_force",
    "disk_metrics",
    "plot_error_profile",
    "plot_circular_velocity",
    "plot_vertical_force",
]

#: the per-point errors that :func:`summarize` and :func:`radial_profile` report
_ERROR_KEYS = ("phi", "force", "force_R", "force_z", "density")


class Field(Protocol):
    """A gravitational field evaluated at positions x (N, 3) in the model's units."""

    def potential(self, x: np.ndarray) -> np.ndarray: ...
    def acceleration(self, x: np.ndarray) -> np.ndarray: ...
    def density(self, x: np.ndarray) -> np.ndarray: ...


class _NetworkField:
    """A PotentialNet as a Field (density from the autograd Laplacian).

    The last evaluation is kept, with a reference to its input so the cache cannot be matched
    by a new array that happens to reuse a freed one's id.
    """

    def __init__(self, net: Any, G: float):
        self.net, self.G = net, G
        self._cache: tuple[np.ndarray, dict] | None = None

    def _eval(self, x: np.ndarray, laplacian: bool) -> dict:
        if (
            self._cache is None
            or self._cache[0] is not x
            or (laplacian and "lap" not in self._cache[1])
        ):
            self._cache = (x, self.net.evaluate(x, laplacian=laplacian))
        return self._cache[1]

    def potential(self, x):
        return self._eval(x, False)["phi"]

    def acceleration(self, x):
        return self._eval(x, False)["acc"]

    def density(self, x):
        return self._eval(x, True)["lap"] / (4.0 * np.pi * self.G)


class _GalpyField:
    """A galpy Potential in natural units (model units = galpy natural units)."""

    def __init__(self, pot: Any):
        self.pot = pot

    def _cyl(self, x):
        R = np.hypot(x[:, 0], x[:, 1])
        return R, x[:, 2], np.arctan2(x[:, 1], x[:, 0])

    def potential(self, x):
        from galpy.potential import evaluatePotentials

        R, z, phi = self._cyl(x)
        return np.asarray(evaluatePotentials(self.pot, R, z, phi=phi, use_physical=False))

    def acceleration(self, x):
        from galpy.potential import evaluatephitorques, evaluateRforces, evaluatezforces

        R, z, phi = self._cyl(x)
        kw = {"phi": phi, "use_physical": False}
        fR = np.asarray(evaluateRforces(self.pot, R, z, **kw))
        fz = np.asarray(evaluatezforces(self.pot, R, z, **kw))
        with np.errstate(divide="ignore", invalid="ignore"):
            fphi = np.where(R > 0, np.asarray(evaluatephitorques(self.pot, R, z, **kw)) / R, 0.0)
        c, s = np.cos(phi), np.sin(phi)
        return np.stack([fR * c - fphi * s, fR * s + fphi * c, fz], axis=1)

    def density(self, x):
        from galpy.potential import evaluateDensities

        R, z, phi = self._cyl(x)
        return np.asarray(evaluateDensities(self.pot, R, z, phi=phi, use_physical=False))


class CallableField:
    r"""A Field from a Python function :math:`\Phi(\vec x)`, (N, 3) -> (N,), in model units.

    With ``autograd=True`` the function takes and returns torch tensors, and the force and the
    Laplacian come from torch autograd (exact; the function must be twice differentiable, so
    no ReLU). Otherwise it takes numpy float64 arrays and the derivatives are second-order
    central differences with step :math:`h = 10^{-4}\max(|\vec x|, \ell)` per point,
    ``length_scale`` :math:`\ell` keeping the step finite at the origin: for a float64
    :math:`\Phi`, relative errors ~1e-8 on the force and ~1e-7 (median) on the density, more
    in far tails where :math:`\rho` is a small difference of large second derivatives
    (1e-4 at 40 scale radii of a Plummer sphere). ``autograd=None``
    picks autograd for a ``torch.nn.Module`` or a function that returns a tensor needing grad
    when given one.
    """

    def __init__(
        self, fn: Any, autograd: bool | None = None, G: float = 1.0, length_scale: float = 1.0
    ):
        self.fn, self.G, self.length_scale = fn, float(G), float(length_scale)
        self.autograd = self._detect(fn) if autograd is None else bool(autograd)
        self._cache: tuple[np.ndarray, tuple] | None = None  # last autograd input and outputs

    @staticmethod
    def _detect(fn: Any) -> bool:
        import torch

        if isinstance(fn, torch.nn.Module):
            return True
        probe = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
        try:
            out = fn(probe)
        except Exception:  # a numpy function given a tensor may fail in any way
            return False
        return isinstance(out, torch.Tensor) and out.requires_grad

    def _torch(self, x: np.ndarray, order: int) -> tuple[np.ndarray, ...]:
        """(Phi, grad Phi[, lap Phi]) by autograd; reuses the last call's on the same x."""
        import torch

        if self._cache is not None and self._cache[0] is x and len(self._cache[1]) > order:
            return self._cache[1]
        dtype = torch.float64
        if isinstance(self.fn, torch.nn.Module):
            dtype = next(self.fn.parameters(), torch.zeros((), dtype=dtype)).dtype
        xt = torch.as_tensor(x, dtype=dtype).requires_grad_(True)
        phi = self.fn(xt)
        (g,) = torch.autograd.grad(phi.sum(), xt, create_graph=order > 1)
        out = [phi.detach().double().numpy(), g.detach().double().numpy()]
        if order > 1:
            lap = sum(
                torch.autograd.grad(g[:, i].sum(), xt, retain_graph=True)[0][:, i] for i in range(3)
            )
            out.append(lap.detach().double().numpy())
        self._cache = (x, tuple(out))
        return self._cache[1]

    def _step(self, x: np.ndarray) -> np.ndarray:
        return 1e-4 * np.maximum(np.linalg.norm(x, axis=1), self.length_scale)

    def potential(self, x: np.ndarray) -> np.ndarray:
        if self.autograd:
            return self._torch(x, 0)[0]
        return np.asarray(self.fn(x), dtype=np.float64)

    def acceleration(self, x: np.ndarray) -> np.ndarray:
        if self.autograd:
            return -self._torch(x, 1)[1]
        h = self._step(x)
        g = np.empty_like(x, dtype=np.float64)
        for k in range(3):
            d = np.zeros_like(x, dtype=np.float64)
            d[:, k] = h
            g[:, k] = (self.potential(x + d) - self.potential(x - d)) / (2.0 * h)
        return -g

    def density(self, x: np.ndarray) -> np.ndarray:
        if self.autograd:
            return self._torch(x, 2)[2] / (4.0 * np.pi * self.G)
        h = self._step(x)
        lap = -6.0 * self.potential(x)
        for k in range(3):
            d = np.zeros_like(x, dtype=np.float64)
            d[:, k] = h
            lap = lap + self.potential(x + d) + self.potential(x - d)
        return lap / h**2 / (4.0 * np.pi * self.G)


def as_field(obj: Any, G: float = 1.0) -> Field:
    """Wrap a PotentialNet, galpy Potential (or list), ``agama.Potential``, mock, Field-like
    object or Python callable Phi(x) (see :class:`CallableField`) as a Field."""
    import torch

    from .potential import PotentialNet

    if isinstance(obj, PotentialNet):
        # PotentialNet.evaluate works in float32; a float64 copy (DeepPotential.network) goes
        # through autograd in its own precision
        if obj.center.dtype == torch.float64:
            return CallableField(obj, autograd=True, G=G)
        return _NetworkField(obj, G)
    if all(hasattr(obj, m) for m in ("potential", "acceleration", "density")):
        return obj
    if type(obj).__module__.split(".")[0] == "agama" and hasattr(obj, "force"):
        from .agama import AgamaField

        return AgamaField(obj)
    from galpy.potential import Potential

    if isinstance(obj, Potential) or (
        isinstance(obj, list) and obj and all(isinstance(p, Potential) for p in obj)
    ):
        return _GalpyField(obj)
    if callable(obj):
        return CallableField(obj, G=G)
    raise TypeError(
        f"cannot use {type(obj).__name__} as a reference field: give a mock, a galpy Potential, "
        "an agama.Potential, a PotentialNet, a callable Phi(x) or an object with "
        "potential/acceleration/density methods"
    )


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


def _cylindrical_basis(x: np.ndarray, center: np.ndarray | None) -> tuple[np.ndarray, ...]:
    """Unit vectors e_R, e_phi (N, 3) about the z axis through ``center``, and R (N,)."""
    d = x - (0.0 if center is None else np.asarray(center))
    R = np.hypot(d[:, 0], d[:, 1])
    safe = np.where(R > 0, R, 1.0)
    c, s = np.where(R > 0, d[:, 0] / safe, 1.0), np.where(R > 0, d[:, 1] / safe, 0.0)
    zero = np.zeros_like(R)
    return np.stack([c, s, zero], 1), np.stack([-s, c, zero], 1), R


def field_errors(
    model: Any, reference: Any, x: np.ndarray, G: float = 1.0, center: np.ndarray | None = None
) -> dict:
    """Per-point errors of ``model`` against ``reference`` at positions x (N, 3).

    ``force_R``/``force_z`` are the error's components along the cylindrical R and z axes
    about ``center`` (default: the origin), in units of |a_ref|.
    """
    m, t = as_field(model, G), as_field(reference, G)
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
        "force": np.linalg.norm(da, axis=1) / a_t_norm,
        "force_R": np.abs(np.sum(da * e_R, axis=1)) / a_t_norm,
        "force_z": np.abs(da[:, 2]) / a_t_norm,
        "force_ratio": np.linalg.norm(a_m, axis=1) / a_t_norm,
        "density": np.abs(rho_m - rho_t) / rho_t,
    }


def summarize(errors: dict) -> dict:
    """Median and 90th percentile of each per-point error; median force ratio as the bias."""
    out = {}
    for key in _ERROR_KEYS:
        if key in errors:
            out[f"{key}_err_median"] = float(np.median(errors[key]))
            out[f"{key}_err_p90"] = float(np.percentile(errors[key], 90))
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


def potential_metrics(
    model: Any,
    reference: Any,
    x: np.ndarray,
    G: float = 1.0,
    r_range: tuple[float, float] | None = None,
    center: np.ndarray | None = None,
    n_bins: int = 8,
    region: dict | None = None,
) -> dict:
    """Summary and radial profile of the errors at x, within r_range of ``center``.

    With ``region`` (e.g. ``PhaseSpace.region()``), only points inside it are scored, and
    ``center`` and ``r_range`` default to its centre and [r_min, r_max].
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
    errs = field_errors(model, reference, x, G, center)
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
        z = (np.abs(est - true) / sig).ravel()
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
        err = np.linalg.norm(grad_model[:, sl] - grad_true[:, sl], axis=1) / np.linalg.norm(
            grad_true[:, sl], axis=1
        )
        out[f"grad_{name}_lnf_err_median"] = float(np.median(err))
        out[f"grad_{name}_lnf_err_p90"] = float(np.percentile(err, 90))
    return out


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
) -> dict:
    """Disk summary: per-point errors (with R and z force parts), v_c(R) and K_z(z) at R_sun.

    Points x are kept inside ``region``; the v_c curve spans their 2nd-98th percentiles of
    cylindrical R about ``center`` (default: the origin, the disk's axis, not the data's
    centre, which for a local sample is off-axis), and K_z the heights of stars within
    0.1 R_sun of R_sun (2nd-98th percentile of |z|; else all kept stars').
    """
    x = x[in_region(x, region)]
    if len(x) == 0:
        raise ValueError("no evaluation points inside the region")
    c = np.zeros(3) if center is None else np.asarray(center, float)
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


# ---- plots ------------------------------------------------------------------------------------
def _unit_label(units: Units | None, kind: str) -> str:
    if units is None or not units.is_physical:
        return "(N-body units)" if units is not None else "(model units)"
    return f"[{units.quantity(kind).to_string('latex_inline')}]"


def _axes(ax):
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 4.2), layout="constrained")
    return fig, fig.subplots()


def plot_error_profile(
    metrics: dict,
    ax=None,
    keys: tuple[str, ...] = ("force", "density", "phi"),
    units: Units | None = None,
    label: str | None = None,
    title: str = "Median error against radius",
) -> Figure:
    """Median errors per radial bin from :func:`potential_metrics` (or its ``radial`` dict)."""
    prof = metrics.get("radial", metrics)
    fig, ax = _axes(ax)
    mid = np.sqrt(np.asarray(prof["r_lo"]) * np.asarray(prof["r_hi"]))
    names = {
        "force": "force",
        "force_R": "force, R part",
        "force_z": "force, z part",
        "density": "density",
        "phi": "potential",
    }
    for i, key in enumerate(k for k in keys if k in prof):
        name = names.get(key, key) if label is None else f"{label}: {names.get(key, key)}"
        ax.plot(mid, prof[key], f"C{i}o-", label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"radius r {_unit_label(units, 'length')}")
    ax.set_ylabel("median relative error")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    return fig


def plot_circular_velocity(
    metrics: dict,
    ax=None,
    units: Units | None = None,
    labels: tuple[str, str] = ("model", "reference"),
    title: str = "Circular velocity in the plane",
) -> Figure:
    """v_c(R) of model and reference from :func:`disk_metrics`, with the relative error."""
    vc = metrics["vc"]
    fig, ax = _axes(ax)
    ax.plot(vc["R"], vc["reference"], "k-", label=labels[1])
    ax.plot(vc["R"], vc["model"], "C3--", label=labels[0])
    ax.set_xlabel(f"cylindrical radius R {_unit_label(units, 'length')}")
    ax.set_ylabel(f"$v_c$ {_unit_label(units, 'velocity')}")
    ax.set_title(f"{title} (median error {100 * metrics['vc_err_median']:.2g}%)")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def plot_vertical_force(
    metrics: dict,
    ax=None,
    units: Units | None = None,
    labels: tuple[str, str] = ("model", "reference"),
    title: str | None = None,
) -> Figure:
    """|K_z|(z) at R_sun of model and reference from :func:`disk_metrics`."""
    kz = metrics["kz"]
    fig, ax = _axes(ax)
    ax.plot(kz["z"], np.abs(kz["reference"]), "k-", label=labels[1])
    ax.plot(kz["z"], np.abs(kz["model"]), "C0--", label=labels[0])
    ax.set_xlabel(f"height z {_unit_label(units, 'length')}")
    ax.set_ylabel(f"$|K_z|$ {_unit_label(units, 'acceleration')}")
    if title is None:
        title = (
            f"Vertical force at R = {kz['R']:.3g} "
            f"(median error {100 * metrics['kz_err_median']:.2g}%)"
        )
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    return fig
