r"""Phase-space samples: positions and velocities of stars, with units.

``PhaseSpace`` is the package's hand-off between the data layer (catalogs, mocks) and the
distribution-function model. It holds Cartesian :math:`\vec x, \vec v` in the model's units
(:class:`~deeppot_galpy.units.Units`) as float64 arrays of shape ``(N, 3)``.

The flows see standardised coordinates :math:`y = (\eta - \mu)/\sigma` with
:math:`\eta = (\vec x, \vec v)`; :class:`Standardization` keeps that map (and its inverse), so a
density and its gradient are reported in the model's units:
:math:`\ln f(\eta) = \ln p(y) - \sum_i \ln\sigma_i` and
:math:`\nabla_\eta \ln f = \nabla_y \ln p / \sigma`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .units import Units

__all__ = ["EDGE_TRIM", "FilledVolume", "PhaseSpace", "Standardization", "split_rows"]

# the outer fraction of a hard-edged volume left out of the potential fit (PhaseSpace.region)
EDGE_TRIM = 0.15
# a shell's density over the inside's above which the stars end at a hard edge (region())
_HARD_EDGE = 0.3


def _edge_contrast(dist: np.ndarray, dims: int) -> tuple[float, float]:
    """(density of a shell under the 99th-percentile distance over the mean density within it,
    for stars filling a ball (dims 3) or a disk in R (dims 2); that distance).

    The shell is the outer tenth or the one from 0.75 to 0.9, whichever is denser. Distance
    errors blur a hard edge over the outer tenth (9% at 3 kpc with DR3-like parallaxes), and a
    thin disk in a large ball leaves most of that shell's volume empty: such a ball's outer
    tenth was 0.17 times as dense as its inside, the shell below 0.74 (a 1.5 kpc ball: 0.76 and
    0.91; whole spheres and disks: 0.004-0.07 and 0.007-0.22, the last a King sphere with
    W0 = 1; RESULTS.md, section 39)."""
    edge = float(np.percentile(dist, 99.0))
    inside = dist <= edge
    n_inside = max(int(inside.sum()), 1)

    def density(lo: float, hi: float) -> float:
        shell = inside & (dist > lo * edge) & (dist <= hi * edge)
        return float(shell.sum() / n_inside / (hi**dims - lo**dims))

    return max(density(0.9, 1.0), density(0.75, 0.9)), edge


def _cylinder_edge(offset: np.ndarray) -> tuple[float, float, float] | None:
    """(contrast and radius of its side as :func:`_edge_contrast` gives them, half-height) of
    the cylinder that positions about the middle of their extent (N, 3) are cut to, or None if
    they are not.

    A cut in |z| ends the stars' vertical distribution abruptly: between its 99th and 99.9th
    percentiles lies less than 0.4 of the distance between its 90th and 99th (0.11 for a disk
    cut at 0.3-0.5 kpc, 0.28 at 1.1 kpc with DR3-like distance errors), where a density's own
    fall leaves 0.55-0.6 (a disk in a 1.5 kpc ball), 0.77 (a Gaussian) or 1 (an exponential).
    And the stars near a cylinder's faces reach its side: the 90th percentile of R among those
    above 0.8 of the 99th percentile of |z| is beyond 0.85 of R's 99th percentile (0.93 for
    those disks), where a ball's curvature holds them to 0.70 (the same disk in a ball) or
    less. With the side dense out to its edge (the contrast of :func:`_edge_contrast` in R),
    the 99th percentile of |z| is the half-height."""
    R, z = np.hypot(offset[:, 0], offset[:, 1]), np.abs(offset[:, 2])
    z90, z99, z999 = np.percentile(z, [90.0, 99.0, 99.9])
    top = z > 0.8 * z99
    if not (z999 - z99 < 0.4 * (z99 - z90) and top.sum() >= 10):
        return None
    if np.percentile(R[top], 90.0) < 0.85 * np.percentile(R, 99.0):
        return None
    contrast, edge = _edge_contrast(R, 2)
    return (contrast, edge, float(z99)) if contrast > _HARD_EDGE else None


@dataclass(frozen=True)
class FilledVolume:
    r"""The volume the stars fill (from a region of :meth:`PhaseSpace.region`): a ball of
    ``radius`` about ``center`` or, with a ``half_height``, a cylinder about the vertical through
    ``center`` (:math:`R \le` ``radius``, :math:`|z - c_z| \le` ``half_height``, the shape of a
    catalog cut in heliocentric R and z). ``hard`` where the sample ends at its surface (a
    survey volume); then test functions that must vanish where the sample ends are tapered
    to zero there (:meth:`taper`)."""

    center: np.ndarray
    radius: float
    half_height: float | None = None
    hard: bool = False

    @classmethod
    def of(cls, region: dict, trimmed: bool = False) -> FilledVolume:
        """The volume of ``region``: for a survey volume its hard edge about the middle of the
        stars' extent (``trimmed``: less the outer ``EDGE_TRIM`` the potential fit leaves out);
        otherwise the 99th-percentile radius about the median star. Regions saved before
        cylinders were recognised have no ``z_fit``: balls."""
        if not region.get("survey_volume"):
            if trimmed:  # regions saved before survey volumes have no fit_center / r_fit
                c, r = (
                    region.get("fit_center", region["center"]),
                    region.get("r_fit", region["r_max"]),
                )
            else:
                c, r = region["center"], region["r_max"]
            return cls(np.asarray(c, float), float(r))
        scale = 1.0 if trimmed else 1.0 / (1.0 - EDGE_TRIM)
        z_fit = region.get("z_fit")
        return cls(
            np.asarray(region["fit_center"], float),
            float(region["r_fit"]) * scale,
            None if z_fit is None else float(z_fit) * scale,
            True,
        )

    def _axes(self, x: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """(u, grad u) per bounding surface, u = 1 - (distance / size)^2: 1 at the centre, 0 on
        the surface."""
        d = np.asarray(x, dtype=float) - self.center
        if self.half_height is None:
            return [(1.0 - np.sum(d * d, axis=1) / self.radius**2, -2.0 * d / self.radius**2)]
        flat = d * np.array([1.0, 1.0, 0.0])
        vert = d * np.array([0.0, 0.0, 1.0])
        return [
            (1.0 - np.sum(flat * flat, axis=1) / self.radius**2, -2.0 * flat / self.radius**2),
            (1.0 - vert[:, 2] ** 2 / self.half_height**2, -2.0 * vert / self.half_height**2),
        ]

    def depth(self, x: np.ndarray) -> np.ndarray:
        """Distance of x (N, 3) inside the surface (negative outside)."""
        d = np.asarray(x, dtype=float) - self.center
        if self.half_height is None:
            return self.radius - np.linalg.norm(d, axis=1)
        return np.minimum(
            self.radius - np.hypot(d[:, 0], d[:, 1]), self.half_height - np.abs(d[:, 2])
        )

    def taper(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """T = prod (max(u, 0))^2 over the bounding surfaces (u = 1 - d^2 / R^2 for the ball;
        the cylinder's side and its top and bottom each have their own), zero on and beyond
        the surface, and grad T (N, 3); T = 1 where the volume is not ``hard``."""
        if not self.hard:
            return np.ones(len(x)), np.zeros((len(x), 3))
        axes = [(np.clip(u, 0.0, None), g) for u, g in self._axes(x)]
        taper = np.prod([u**2 for u, _ in axes], axis=0)
        grad = np.zeros((len(x), 3))
        for i, (u, g) in enumerate(axes):
            others = np.prod([w**2 for j, (w, _) in enumerate(axes) if j != i], axis=0)
            grad += (2.0 * u * others)[:, None] * g
        return taper, grad


def split_rows(rows: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(rest, held-out ``fraction``) of ``rows`` by a seeded random permutation."""
    perm = np.random.default_rng(seed).permutation(len(rows))
    n_held = max(1, int(round(fraction * len(rows))))
    return rows[perm[n_held:]], rows[perm[:n_held]]


@dataclass
class Standardization:
    """The affine map y = (eta - mean) / scale used in front of the flows (6 axes)."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, eta: np.ndarray) -> Standardization:
        """Per-axis median and half 16-84 percentile width of ``eta`` (N, 6).

        Robust statistics, not mean and standard deviation: stellar systems have power-law
        tails in radius (a Plummer sphere's <r^2> diverges logarithmically), and a variance
        dominated by a few distant stars would squeeze the core into a sliver of the
        spline's domain.
        """
        lo, med, hi = np.percentile(eta, [15.87, 50.0, 84.13], axis=0)
        scale = 0.5 * (hi - lo)
        if np.any(scale <= 0):
            raise ValueError("phase-space sample has a constant coordinate; cannot standardise")
        return cls(mean=med, scale=scale)

    def forward(self, eta: np.ndarray) -> np.ndarray:
        return (eta - self.mean) / self.scale

    def inverse(self, y: np.ndarray) -> np.ndarray:
        return y * self.scale + self.mean

    def log_det(self) -> float:
        """ln |d y / d eta|, to add to ln p(y) to get ln f(eta)."""
        return float(-np.log(self.scale).sum())


@dataclass
class PhaseSpace:
    """Positions ``x`` and velocities ``v`` (each (N, 3), float64) in ``units``.

    ``meta`` carries provenance (frame parameters, cuts, the mock's name and parameters) that a
    run directory records with the fit. ``v_cov`` (N, 3, 3), if known, is each star's velocity
    measurement covariance (velocity units squared, e.g. from a Gaia table's errors), which the
    weak-form Jeans moments subtract (:mod:`~deeppot_galpy.potential.jeans`). ``reobserved``,
    if known, is the same stars' (x, v) with their catalog's errors drawn once more (each
    (N, 3)): the Jeans moments extrapolate from it to error-free stars, position errors
    included (:mod:`~deeppot_galpy.potential.jeans`).
    """

    x: np.ndarray
    v: np.ndarray
    units: Units = field(default_factory=Units.nbody)
    meta: dict = field(default_factory=dict)
    v_cov: np.ndarray | None = None
    reobserved: tuple[np.ndarray, np.ndarray] | None = None

    def __post_init__(self) -> None:
        self.x = np.asarray(self.x, dtype=np.float64)
        self.v = np.asarray(self.v, dtype=np.float64)
        if self.x.ndim != 2 or self.x.shape[1] != 3 or self.v.shape != self.x.shape:
            raise ValueError(
                f"PhaseSpace needs x and v of shape (N, 3); got {self.x.shape} and {self.v.shape}"
            )
        if len(self.x) == 0:
            raise ValueError("PhaseSpace is empty: no stars")
        bad = ~np.isfinite(self.eta).all(axis=1)
        if bad.any():
            raise ValueError(
                f"PhaseSpace has {int(bad.sum())} rows with NaN/inf; drop them explicitly "
                "(deeppot_galpy.data applies and reports such cuts)"
            )
        if self.v_cov is not None:
            self.v_cov = np.asarray(self.v_cov, dtype=np.float64)
            if self.v_cov.shape != (len(self.x), 3, 3) or not np.isfinite(self.v_cov).all():
                raise ValueError(
                    f"v_cov must be finite, of shape (N, 3, 3) = ({len(self.x)}, 3, 3); "
                    f"got {self.v_cov.shape}"
                )
        if self.reobserved is not None:
            self.reobserved = tuple(np.asarray(a, dtype=np.float64) for a in self.reobserved)
            if len(self.reobserved) != 2 or any(
                a.shape != self.x.shape or not np.isfinite(a).all() for a in self.reobserved
            ):
                raise ValueError(
                    f"reobserved must be a finite (x, v) pair of shape ({len(self.x)}, 3) each"
                )

    def __len__(self) -> int:
        return len(self.x)

    @property
    def eta(self) -> np.ndarray:
        """The (N, 6) array (x, v)."""
        return np.concatenate([self.x, self.v], axis=1)

    @classmethod
    def from_eta(cls, eta: np.ndarray, units: Units | None = None, meta: dict | None = None):
        return cls(eta[:, :3], eta[:, 3:], units or Units.nbody(), dict(meta or {}))

    def subset(self, index: np.ndarray) -> PhaseSpace:
        v_cov = None if self.v_cov is None else self.v_cov[index]
        again = None if self.reobserved is None else tuple(a[index] for a in self.reobserved)
        return PhaseSpace(self.x[index], self.v[index], self.units, dict(self.meta), v_cov, again)

    def split(self, fraction: float, seed: int) -> tuple[PhaseSpace, PhaseSpace]:
        """Random split into (1 - fraction, fraction) parts, e.g. train/validation."""
        rest, held = split_rows(np.arange(len(self)), fraction, seed)
        return self.subset(rest), self.subset(held)

    def standardization(self) -> Standardization:
        return Standardization.fit(self.eta)

    @property
    def r(self) -> np.ndarray:
        return np.linalg.norm(self.x, axis=1)

    def region(self) -> dict:
        """The volume the stars cover, recorded with a fit so evaluation far outside it warns.

        ``center`` is the median position, ``r_min``/``r_max`` the 1st/99th percentiles of the
        distance from it, ``lo``/``hi`` the 0.5th/99.5th percentiles along each axis.

        The potential is fitted on points within ``r_fit`` of ``fit_center``. Where the stars end
        at a hard edge (a survey volume: a shell near the 99th-percentile radius, measured from
        the middle of the stars' extent, is still at least 0.3 times as dense as the inside,
        where a galaxy's own outskirts are ~100 times sparser; :func:`_edge_contrast`) the flows
        smear the edge into a steep, false density gradient: the fit keeps to the ball about
        that middle (for a heliocentric sample, the Sun, not the median star) less its outer
        ``EDGE_TRIM``, and ``survey_volume`` is True. Otherwise ``fit_center, r_fit = center,
        r_max``.

        Stars cut to a cylinder about the vertical through the middle (a catalog cut in
        heliocentric R and |z|) fill it out to its side and its faces: ``z_fit`` is then the
        trimmed half-height, |z - z_c| <= ``z_fit`` (:class:`FilledVolume`; None for a ball).
        A disk in a ball is dense out to its rim in R too, so a cylinder is told by its faces
        (:func:`_cylinder_edge`).
        """
        center = np.median(self.x, axis=0)
        d = np.linalg.norm(self.x - center, axis=1)
        r_min, r_max = np.percentile(d, [1.0, 99.0])
        lo, hi = np.percentile(self.x, [0.5, 99.5], axis=0)
        middle = 0.5 * (lo + hi)
        offset = self.x - middle
        cylinder = _cylinder_edge(offset)
        if cylinder is None:
            contrast, r_edge = _edge_contrast(np.linalg.norm(offset, axis=1), 3)
            half_height = None
        else:
            contrast, r_edge, half_height = cylinder
        hard_edge = contrast > _HARD_EDGE
        return {
            "center": center.tolist(),
            "r_min": float(r_min),
            "r_max": float(r_max),
            "fit_center": (middle if hard_edge else center).tolist(),
            "r_fit": r_edge * (1.0 - EDGE_TRIM) if hard_edge else float(r_max),
            "z_fit": None if half_height is None else half_height * (1.0 - EDGE_TRIM),
            "edge_contrast": contrast,
            "survey_volume": hard_edge,
            "lo": lo.tolist(),
            "hi": hi.tolist(),
        }
