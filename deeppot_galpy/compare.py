r"""Accuracy metrics of a learned potential against a reference: the one definition of each.

A reference is anything with the true field: a mock (:class:`~deeppot_galpy.mocks.MockSystem`),
a galpy ``Potential`` (natural units), or any object with ``potential``, ``acceleration`` and
``density`` methods taking (N, 3) positions in the model's units. At evaluation points
:math:`\vec x_i`,

* potential error :math:`|\Phi - \Phi_{true} - c| / |\Phi_{true}|`, with :math:`c` the median
  offset (the potential is only defined up to a constant),
* force error :math:`|\vec a - \vec a_{true}| / |\vec a_{true}|` and the force ratio
  :math:`|\vec a| / |\vec a_{true}|` (its median is the bias),
* density error :math:`|\rho - \rho_{true}| / \rho_{true}`,

each summarised by its median and 90th percentile, overall and in radial bins.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

__all__ = [
    "Field",
    "as_field",
    "field_errors",
    "summarize",
    "radial_profile",
    "potential_metrics",
    "gradient_errors",
]


class Field(Protocol):
    """A gravitational field evaluated at positions x (N, 3) in the model's units."""

    def potential(self, x: np.ndarray) -> np.ndarray: ...
    def acceleration(self, x: np.ndarray) -> np.ndarray: ...
    def density(self, x: np.ndarray) -> np.ndarray: ...


class _NetworkField:
    """A PotentialNet as a Field (density from the autograd Laplacian)."""

    def __init__(self, net: Any, G: float):
        self.net, self.G = net, G
        self._cache: tuple[int, dict] | None = None

    def _eval(self, x: np.ndarray) -> dict:
        key = id(x)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self.net.evaluate(x, laplacian=True))
        return self._cache[1]

    def potential(self, x):
        return self._eval(x)["phi"]

    def acceleration(self, x):
        return self._eval(x)["acc"]

    def density(self, x):
        return self._eval(x)["lap"] / (4.0 * np.pi * self.G)


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


def as_field(obj: Any, G: float = 1.0) -> Field:
    """Wrap a PotentialNet, galpy Potential (or list), mock, or Field-like object as a Field."""
    from .potential import PotentialNet

    if isinstance(obj, PotentialNet):
        return _NetworkField(obj, G)
    if all(hasattr(obj, m) for m in ("potential", "acceleration", "density")):
        return obj
    try:
        from galpy.potential import Potential

        if isinstance(obj, Potential) or (
            isinstance(obj, list) and all(isinstance(p, Potential) for p in obj)
        ):
            return _GalpyField(obj)
    except ImportError:  # pragma: no cover - galpy is a dependency
        pass
    raise TypeError(
        f"cannot use {type(obj).__name__} as a reference field: give a mock, a galpy Potential, "
        "a PotentialNet or an object with potential/acceleration/density methods"
    )


def field_errors(model: Any, reference: Any, x: np.ndarray, G: float = 1.0) -> dict:
    """Per-point errors of ``model`` against ``reference`` at positions x (N, 3)."""
    m, t = as_field(model, G), as_field(reference, G)
    phi_m, phi_t = m.potential(x), t.potential(x)
    offset = float(np.median(phi_m - phi_t))
    a_m, a_t = m.acceleration(x), t.acceleration(x)
    rho_m, rho_t = m.density(x), t.density(x)
    a_t_norm = np.linalg.norm(a_t, axis=1)
    return {
        "offset": offset,
        "phi": np.abs(phi_m - phi_t - offset) / np.abs(phi_t),
        "force": np.linalg.norm(a_m - a_t, axis=1) / a_t_norm,
        "force_ratio": np.linalg.norm(a_m, axis=1) / a_t_norm,
        "density": np.abs(rho_m - rho_t) / rho_t,
    }


def summarize(errors: dict) -> dict:
    """Median and 90th percentile of each per-point error; median force ratio as the bias."""
    out = {}
    for key in ("phi", "force", "density"):
        out[f"{key}_err_median"] = float(np.median(errors[key]))
        out[f"{key}_err_p90"] = float(np.percentile(errors[key], 90))
    out["force_bias_median"] = float(np.median(errors["force_ratio"]) - 1.0)
    return out


def radial_profile(r: np.ndarray, errors: dict, edges: np.ndarray) -> dict:
    """Medians of the errors in radial bins ``edges``; NaN where a bin is empty."""
    idx = np.digitize(r, edges) - 1
    prof: dict[str, list] = {"r_lo": list(edges[:-1]), "r_hi": list(edges[1:]), "n": []}
    for key in ("phi", "force", "density", "force_ratio"):
        prof[key] = []
    for b in range(len(edges) - 1):
        sel = idx == b
        prof["n"].append(int(sel.sum()))
        for key in ("phi", "force", "density", "force_ratio"):
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
) -> dict:
    """Summary and radial profile of the errors at x, within r_range of ``center``."""
    r = np.linalg.norm(x - (0.0 if center is None else center), axis=1)
    if r_range is not None:
        keep = (r >= r_range[0]) & (r <= r_range[1])
        x, r = x[keep], r[keep]
    if len(x) == 0:
        raise ValueError("no evaluation points inside the requested radial range")
    errs = field_errors(model, reference, x, G)
    lo, hi = (r.min(), r.max()) if r_range is None else r_range
    edges = np.geomspace(max(lo, 1e-3 * hi), hi, n_bins + 1)
    out = summarize(errs)
    out["n_points"] = int(len(x))
    out["r_range"] = [float(lo), float(hi)]
    out["radial"] = radial_profile(r, errs, edges)
    out["force_bias_max_bin"] = float(np.nanmax(np.abs(np.array(out["radial"]["force_ratio"]) - 1)))
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
