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

__all__ = ["EDGE_TRIM", "PhaseSpace", "Standardization", "filled_ball", "split_rows"]

# the outer fraction of a hard-edged volume left out of the potential fit (PhaseSpace.region)
EDGE_TRIM = 0.15


def filled_ball(region: dict) -> tuple[np.ndarray, float]:
    """Centre and radius of the ball the stars fill (a region from :meth:`PhaseSpace.region`).

    For a survey volume, its hard edge about the middle of the stars' extent (``r_fit`` before
    the trim); otherwise the 99th-percentile radius about the median star. Test functions
    that must vanish where the sample ends (the weak-form Jeans moments) keep inside it: past
    a hard edge the stars' streaming velocity (~240 km/s at the Sun) turns a test function's
    small leak into a large false moment.
    """
    if region.get("survey_volume"):
        return np.asarray(region["fit_center"]), float(region["r_fit"]) / (1.0 - EDGE_TRIM)
    return np.asarray(region["center"]), float(region["r_max"])


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
    weak-form Jeans moments subtract (:mod:`~deeppot_galpy.potential.jeans`).
    """

    x: np.ndarray
    v: np.ndarray
    units: Units = field(default_factory=Units.nbody)
    meta: dict = field(default_factory=dict)
    v_cov: np.ndarray | None = None

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
        return PhaseSpace(self.x[index], self.v[index], self.units, dict(self.meta), v_cov)

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
        at a hard edge (a survey volume: the outermost tenth in radius, measured from the middle
        of the stars' extent, is still at least 0.3 times as dense as the inside, where a galaxy's
        own outskirts are ~100 times sparser) the flows smear the edge into a steep, false
        density gradient: the fit keeps to the ball about that middle (for a heliocentric
        sample, the Sun, not the median star) less its outer ``EDGE_TRIM``, and
        ``survey_volume`` is True. Otherwise ``fit_center, r_fit = center, r_max``.
        """
        center = np.median(self.x, axis=0)
        d = np.linalg.norm(self.x - center, axis=1)
        r_min, r_max = np.percentile(d, [1.0, 99.0])
        lo, hi = np.percentile(self.x, [0.5, 99.5], axis=0)
        middle = 0.5 * (lo + hi)
        d_mid = np.linalg.norm(self.x - middle, axis=1)
        r_edge = float(np.percentile(d_mid, 99.0))
        inside = d_mid <= r_edge
        shell = inside & (d_mid > 0.9 * r_edge)
        # shell density over mean density inside, as for stars filling a ball
        contrast = float(shell.sum() / max(inside.sum(), 1) / (1.0 - 0.9**3))
        hard_edge = contrast > 0.3
        return {
            "center": center.tolist(),
            "r_min": float(r_min),
            "r_max": float(r_max),
            "fit_center": (middle if hard_edge else center).tolist(),
            "r_fit": r_edge * (1.0 - EDGE_TRIM) if hard_edge else float(r_max),
            "edge_contrast": contrast,
            "survey_volume": hard_edge,
            "lo": lo.tolist(),
            "hi": hi.tolist(),
        }
