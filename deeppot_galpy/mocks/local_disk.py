r"""The solar neighbourhood of a stellar disk in equilibrium in a Milky-Way-like galpy potential.

Units are kpc, km/s, Msun (:meth:`Units.galactic() <deeppot_galpy.units.Units.galactic>`) and
positions are Galactocentric in astropy's convention (:mod:`deeppot_galpy.data.frames`): the Sun
at :math:`\vec x_\odot` of the frame (default astropy's, :math:`R_0` = 8.122 kpc,
:math:`z_\odot` = 20.8 pc), the disk's mid-plane at :math:`z = 0`, rotating towards :math:`+y`
at the Sun. The stars are those within ``radius_kpc`` of the Sun; the truth (potential, forces,
density) is the galpy potential (default ``MWPotential2014``).

**Distribution function.** A sum of quasi-isothermal components (Binney & McMillan 2011,
galpy's ``quasiisothermaldf``), each a function of the actions only,

.. math::
    f_k(J_R, L_z, J_z) = \frac{\Omega\,\Sigma(R_g)}{\pi\sigma_R^2\kappa}
    \left[1 + \tanh\frac{L_z}{L_0}\right] e^{-\kappa J_R/\sigma_R^2}
    \times \frac{\nu}{2\pi\sigma_z^2} e^{-\nu J_z/\sigma_z^2},
    \quad \Sigma \propto e^{-R_g/h_R},\ \sigma_{R,z} \propto e^{-(R_g - R_0)/h_{\sigma R,\sigma z}},

with :math:`\Omega, \kappa, \nu` at the guiding radius :math:`R_g(L_z)` and the actions from
galpy's Staeckel approximation (focal length from ``estimateDeltaStaeckel`` at the Sun). A
function of (approximate) integrals of motion is stationary: ``tests/test_mocks_local_disk.py``
integrates sampled stars in the true potential for about a vertical period and finds ln f
constant along each orbit to 0.2% of its spread over the stars (median; v_z, not an integral,
varies by 70% of its spread),
and checks the sample's moments against importance-weighted ones from another proposal. The
defaults are a thin disk (:math:`\sigma_R, \sigma_z` = 35, 25 km/s at the Sun, :math:`h_R` =
2.6 kpc) and a thick disk (50, 45 km/s, 2.0 kpc) that makes ``thick_fraction`` of the stars in
the volume. Any positive combination of stationary DFs is stationary, so each component is
sampled on its own, the number of thick-disk stars binomial with that fraction.

**Sampling** is exact rejection sampling from vectorised DF evaluations (``sampleV`` per star
costs ~5 ms). Proposal: positions uniform in the sphere thinned by :math:`1/\cosh(z/h)` (flat
near the plane, exponential tails; no DF evaluation), velocities :math:`(v_R, v_T, v_z)`
Gaussian. A pilot draw from a broad proposal sets :math:`h` and the Gaussians (1.1 and 1.25
times the DF's importance-weighted mean :math:`|z|` and velocity dispersions); a second pilot
from that proposal sets the envelope (``envelope_margin`` times the largest ratio :math:`f/g`
seen). Proposals above the envelope are counted (``meta["sampling"]``, with a warning): none
were seen at the defaults. The cost is the Staeckel actions, 0.14-0.3 ms per proposal for
``MWPotential2014`` (its bulge's incomplete gamma function dominates), at an acceptance of
0.19-0.25: :math:`2^{17}` stars (584k proposals) took 82 s, and 165 s at a heavier load, on a
shared 2-core machine running other work (load average 8-11). Phase-mixing orbits as
:class:`~deeppot_galpy.mocks.MiyamotoNagaiDisk` does would cost ~0.6 ms per orbit for the
whole disk, of which under 1% (h_R = 2.6 kpc) end within the volume.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..data.frames import FrameParameters, sun_position
from ..phasespace import PhaseSpace
from ..units import Units
from .base import MockSystem

__all__ = ["DiskComponent", "LocalDisk", "galpy_frame"]

# proposals drawn in each pilot
_PILOT = 8192
# the least acceptance sampled: the defaults accept 0.19-0.25; at 1e-3, 2^17 stars would take
# 1.3e8 proposals, hours of Staeckel actions and tens of GiB per batch
_MIN_ACCEPTANCE = 1e-3


@dataclass(frozen=True)
class DiskComponent:
    """One quasi-isothermal component: scale length ``h_R`` [kpc], dispersions ``sigma_R``,
    ``sigma_z`` [km/s] at the Sun's radius, and their scale lengths [kpc]."""

    h_R: float
    sigma_R: float
    sigma_z: float
    h_sigma_R: float = 8.0
    h_sigma_z: float = 8.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"DiskComponent.{name} must be > 0; got {value}")


THIN = DiskComponent(h_R=2.6, sigma_R=35.0, sigma_z=25.0)
THICK = DiskComponent(h_R=2.0, sigma_R=50.0, sigma_z=45.0)


def _as_component(c: DiskComponent | dict) -> DiskComponent:
    return c if isinstance(c, DiskComponent) else DiskComponent(**c)


class LocalDisk(MockSystem):
    """Thin + thick quasi-isothermal disk stars within ``radius_kpc`` of the Sun (module doc).

    ``potential`` names a galpy Milky Way model (``galpy.potential.mwpotentials``, e.g.
    ``"MWPotential2014"``, ``"McMillan17"``); ``frame`` (:class:`FrameParameters` or its dict)
    places the Sun. The fit is scored within ``score_fraction`` of the radius
    (:attr:`region`), well inside the volume.
    """

    name = "local_disk"
    units = Units.galactic()

    def __init__(
        self,
        potential: str = "MWPotential2014",
        radius_kpc: float = 1.5,
        thin: DiskComponent | dict = THIN,
        thick: DiskComponent | dict = THICK,
        thick_fraction: float = 0.2,
        frame: FrameParameters | dict | None = None,
        score_fraction: float = 2.0 / 3.0,
        envelope_margin: float = 1.3,
    ):
        from galpy.potential import mwpotentials, turn_physical_off
        from galpy.util.conversion import get_physical

        if not (radius_kpc > 0 and 0 <= thick_fraction <= 1 and 0 < score_fraction <= 1):
            raise ValueError(
                "need radius_kpc > 0, 0 <= thick_fraction <= 1 and 0 < score_fraction <= 1"
            )
        if not envelope_margin >= 1:
            raise ValueError(f"envelope_margin must be >= 1; got {envelope_margin}")
        try:
            self.pot = getattr(mwpotentials, potential)
        except AttributeError:
            raise ValueError(
                f"unknown galpy Milky Way potential {potential!r}; see galpy.potential.mwpotentials"
            ) from None
        self.potential_name = potential
        self.radius = float(radius_kpc)
        self.components = (_as_component(thin), _as_component(thick))
        self.thick_fraction = float(thick_fraction)
        self.frame = (
            frame
            if isinstance(frame, FrameParameters)
            else (FrameParameters.from_dict(frame) if frame else FrameParameters())
        )
        self.score_fraction = float(score_fraction)
        self.envelope_margin = float(envelope_margin)
        phys = get_physical(self.pot)
        self.ro, self.vo = float(phys["ro"]), float(phys["vo"])
        # galpy's DFs return actions in kpc km/s where the potential has its physical outputs
        # on (Irrgang13, McMillan17, ...): ln f off by 10^3-10^8 and no proposal accepted.
        # The sampler works in natural units, on a copy, so the model stays as galpy gives it
        self._natural = copy.deepcopy(self.pot)
        turn_physical_off(self._natural)
        self.sun = sun_position(self.frame)
        R_sun = float(np.hypot(*self.sun[:2]))
        self.r_range = (R_sun - self.radius, R_sun + self.radius)
        self._truth = None

    # ---- description -------------------------------------------------------------------
    @property
    def params(self) -> dict:
        return {
            "potential": self.potential_name,
            "radius_kpc": self.radius,
            "thin": asdict(self.components[0]),
            "thick": asdict(self.components[1]),
            "thick_fraction": self.thick_fraction,
            "frame": self.frame.to_dict(),
            "score_fraction": self.score_fraction,
            "envelope_margin": self.envelope_margin,
        }

    @property
    def region(self) -> dict:
        """Where a fit is scored: within ``score_fraction * radius_kpc`` of the Sun
        (the format of :meth:`PhaseSpace.region() <deeppot_galpy.phasespace.PhaseSpace.region>`,
        for :func:`deeppot_galpy.compare.potential_metrics`)."""
        return {
            "center": self.sun.tolist(),
            "r_min": 0.0,
            "r_max": self.score_fraction * self.radius,
        }

    def galpy_potential(self):
        """The true potential: the galpy model itself (its own ``ro``, ``vo``)."""
        return self.pot

    # ---- the truth, in kpc, km/s, Msun ---------------------------------------------------
    def _field(self):
        if self._truth is None:
            from ..fields import as_field

            self._truth = as_field(self.pot, units=self.units)
        return self._truth

    def potential(self, x: np.ndarray) -> np.ndarray:
        return self._field().potential(x)

    def acceleration(self, x: np.ndarray) -> np.ndarray:
        return self._field().acceleration(x)

    def density(self, x: np.ndarray) -> np.ndarray:
        return self._field().density(x)

    # ---- sampling -------------------------------------------------------------------------
    def _dfs(self) -> list:
        """galpy quasiisothermaldf of each component, in the potential's natural units."""
        from galpy.actionAngle import actionAngleStaeckel, estimateDeltaStaeckel
        from galpy.df import quasiisothermaldf

        R_sun = math.hypot(*self.sun[:2]) / self.ro
        delta = estimateDeltaStaeckel(self._natural, R_sun, 0.0)
        aA = actionAngleStaeckel(pot=self._natural, delta=delta, c=True)
        ro, vo = self.ro, self.vo
        return [
            quasiisothermaldf(
                c.h_R / ro,
                c.sigma_R / vo,
                c.sigma_z / vo,
                c.h_sigma_R / ro,
                c.h_sigma_z / ro,
                pot=self._natural,
                aA=aA,
                cutcounter=True,
                refr=R_sun,
            )
            for c in self.components
        ]

    def _propose(self, n: int, rng: np.random.Generator, h: float, mean, width):
        """n proposals: x (n, 3) [kpc], (v_R, v_T, v_z) (n, 3) [km/s], ln g up to a constant."""
        xs, have = [], 0
        while have < n:
            m = 2 * (n - have) + 64
            u = rng.standard_normal((m, 3))
            u *= (self.radius * rng.uniform(size=m) ** (1.0 / 3.0) / np.linalg.norm(u, axis=1))[
                :, None
            ]
            x = self.sun + u
            x = x[rng.uniform(size=m) < 1.0 / np.cosh(x[:, 2] / h)]
            xs.append(x)
            have += len(x)
        x = np.concatenate(xs)[:n]
        w = rng.standard_normal((n, 3))
        v = np.asarray(mean) + np.asarray(width) * w
        return x, v, -np.log(np.cosh(x[:, 2] / h)) - 0.5 * np.sum(w * w, axis=1)

    def _log_df(self, df, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        """ln f (up to a constant) at x [kpc] and galpy-frame (v_R, v_T, v_z) [km/s]."""
        R = np.hypot(x[:, 0], x[:, 1]) / self.ro
        vR, vT, vz = (v / self.vo).T
        with np.errstate(divide="ignore"):  # counter-rotating stars: ln 0 = -inf, never drawn
            return np.asarray(df(R, vR, vT, x[:, 2] / self.ro, vz, log=True))

    def _sample_component(self, df, c: DiskComponent, n: int, rng: np.random.Generator):
        from galpy.potential import vcirc

        v_c = float(vcirc(self._natural, math.hypot(*self.sun[:2]) / self.ro))
        # Pilot 1, broad: the DF's mean |z| and velocity moments by importance weights.
        prop = (1.0, (0.0, v_c * self.vo, 0.0), 1.6 * np.array([c.sigma_R, c.sigma_R, c.sigma_z]))
        x, v, ln_g = self._propose(_PILOT, rng, *prop)
        ln_w = self._log_df(df, x, v) - ln_g
        w = np.exp(ln_w - np.max(ln_w))  # ln f's constant can be far from 0 in some potentials
        w /= w.sum()
        mean = w @ v
        std = np.sqrt(w @ (v - mean) ** 2)
        prop = (1.1 * float(w @ np.abs(x[:, 2])), (0.0, mean[1], 0.0), 1.25 * std)
        # Pilot 2: the envelope of f/g for that proposal.
        x, v, ln_g = self._propose(_PILOT, rng, *prop)
        ln_w = self._log_df(df, x, v) - ln_g
        ln_M = float(np.max(ln_w)) + math.log(self.envelope_margin)
        acceptance = float(np.mean(np.exp(ln_w - ln_M)))
        if not acceptance >= _MIN_ACCEPTANCE:
            raise ValueError(
                f"local_disk: the disk DF (sigma_R, sigma_z = {c.sigma_R}, {c.sigma_z} km/s) in "
                f"{self.potential_name} accepts {acceptance:.1e} of the sampler's proposals "
                f"(under {_MIN_ACCEPTANCE:.0e}): {n} stars would take ~{n / acceptance:.1e} "
                "proposals; the DF is too far from a Gaussian near the Sun's circular velocity "
                "here (check the potential and the disk's parameters)"
            )
        xs, vs, proposed, accepted, above = [], [], 0, 0, 0
        while accepted < n:
            m = int(1.05 * (n - accepted) / acceptance) + 64
            x, v, ln_g = self._propose(m, rng, *prop)
            ln_r = self._log_df(df, x, v) - ln_g - ln_M
            above += int(np.sum(ln_r > 0))
            keep = np.log(rng.uniform(size=m)) < ln_r
            xs.append(x[keep])
            vs.append(v[keep])
            proposed += m
            accepted += int(keep.sum())
        x, v = np.concatenate(xs)[:n], np.concatenate(vs)[:n]
        return x, v, {"proposed": proposed, "accepted": accepted, "above_envelope": above}

    def sample(self, n: int, seed: int) -> PhaseSpace:
        """``n`` stars within ``radius_kpc`` of the Sun, exactly from the DF (module doc)."""
        if n < 1:
            raise ValueError(f"n must be >= 1; got {n}")
        rng = np.random.default_rng(seed)
        n_thick = int(rng.binomial(n, self.thick_fraction))
        xs, vs, stats = [], [], {}
        for name, df, c, k in zip(
            ("thin", "thick"), self._dfs(), self.components, (n - n_thick, n_thick), strict=True
        ):
            if k == 0:
                continue
            x, v, stats[name] = self._sample_component(df, c, k, rng)
            xs.append(x)
            vs.append(v)
        above = sum(s["above_envelope"] for s in stats.values())
        if above:
            warnings.warn(
                f"local_disk: {above} proposals exceeded the rejection envelope; those regions "
                "are slightly under-sampled (raise envelope_margin)",
                stacklevel=2,
            )
        x = np.concatenate(xs)
        v = _to_cartesian(x, np.concatenate(vs))
        order = rng.permutation(n)  # components interleaved, as in a real catalog
        meta = {
            "mock": self.describe(),
            "seed": seed,
            "frame": self.frame.to_dict(),
            "sampling": stats,
        }
        return PhaseSpace(x[order], v[order], self.units, meta)

    def gaia_table(
        self,
        stars: PhaseSpace,
        seed: int = 0,
        errors: Any = None,
        absolute_magnitude: tuple[float, float] | None = None,
    ):
        """A sample of this mock (:meth:`sample`) as a Gaia-archive table: ICRS observables and
        ``*_error`` columns with :class:`~deeppot_galpy.data.GaiaErrorModel` ``errors`` (None:
        exact) drawn from ``seed`` (:func:`deeppot_galpy.data.gaia_mock.observe`; write it
        with :func:`~deeppot_galpy.data.gaia_mock.write_table`). ``meta["truth"]`` is this
        mock's description, so ``get_mock("local_disk", **truth["params"])`` rebuilds it.
        ``absolute_magnitude`` (mean, sigma) adds ``phot_g_mean_mag`` (``observe``)."""
        from ..data.gaia_mock import observe

        table = observe(
            stars.x, stars.v, self.describe(), seed, errors, self.frame, absolute_magnitude
        )
        table.meta["creator"] = "deeppot_galpy.mocks.local_disk.LocalDisk.gaia_table"
        return table


def _to_cartesian(x: np.ndarray, v_cyl: np.ndarray) -> np.ndarray:
    """galpy-frame (v_R, v_T, v_z), v_T > 0 for rotation towards +y at the Sun (x < 0), to
    Cartesian velocities in astropy's right-handed Galactocentric frame, where that rotation is
    clockwise seen from +z: v = v_R e_R - v_T e_phi."""
    R = np.hypot(x[:, 0], x[:, 1])
    c, s = x[:, 0] / R, x[:, 1] / R
    vR, vT, vz = v_cyl.T
    return np.stack([vR * c + vT * s, vR * s - vT * c, vz], axis=1)


def galpy_frame(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Galactocentric Cartesian velocities v [km/s] at x [kpc] (each (N, 3)) as galpy's
    (v_R, v_T, v_z), v_T > 0 for the disk's rotation: the inverse of the map the mock uses."""
    R = np.hypot(x[:, 0], x[:, 1])
    c, s = x[:, 0] / R, x[:, 1] / R
    return np.stack([v[:, 0] * c + v[:, 1] * s, v[:, 0] * s - v[:, 1] * c, v[:, 2]], axis=1)
