r"""Which symmetry the stars show: how ``symmetry = "auto"`` picks the potential's symmetry.

A potential fitted with the right symmetry (:mod:`deeppot_galpy.potential.symmetry`) averages
the flows' noise over the symmetry's orbits: on the package's mocks it repairs a sphere's core
and cuts a local disk volume's force error fourfold (RESULTS.md, section 7). ``"auto"`` takes
a symmetry only where the positions show it, about the coordinates' origin, and gives
``"none"`` otherwise:

* **A whole system centred on the origin** (the stars' median position within
  :data:`CENTRE_TOLERANCE` of the median radius, or 5 sigma of the median's noise). The shape
  tensor of the stars' directions, :math:`T = \langle \hat u \hat u^T \rangle` with
  :math:`\hat u = \vec x / |\vec x|`, is :math:`I/3` for a round system whatever its radial
  profile. It is measured in the inner and the outer half of the stars (by radius); each
  entry's noise is :math:`\approx 0.3/\sqrt{n}` (:math:`\mathrm{Var}(\hat u_z^2) =
  4/45`), and the tolerance is the larger of 5 such sigma and :data:`SHAPE_TOLERANCE` (an
  axis ratio of ~0.98). Round in both halves (every entry of :math:`T - I/3` within tolerance):
  ``"spherical"``. Otherwise, round about the z axis (:math:`T_{xx} = T_{yy}` and no
  off-diagonal terms): ``"mirror"`` when as many stars lie above the plane z = 0 as below
  (within 5 sigma), else ``"axisymmetric"``.
* **A survey volume inside a galaxy** (the stars' centre away from the origin,
  :func:`~deeppot_galpy.compare.is_centred` false): its shape says nothing about the
  galaxy's, but a disk's stars rotate about its axis. When the median azimuthal velocity about
  the z axis exceeds twice its dispersion (the Milky Way's thin and thick disk near the Sun:
  ~220 against 20-50 km/s) and the stars fill a volume (their median distance from its centre
  above 0.3 of its edge's, which a satellite concentrated to its own centre is not), the
  volume is taken as a piece of a disk in equilibrium with the z axis its axis and z = 0 its
  mid-plane: ``"mirror"``. This is the Galactocentric frame of :mod:`deeppot_galpy.data`.

Anything else (a system off the origin, a triaxial or tilted one, a volume without a
rotating disk) gets ``"none"``; a system off the origin that is concentrated to its own centre
(a satellite) is told, in the reason, to be given about that centre and at rest
(:mod:`deeppot_galpy.rest_frame`). The choice and the numbers behind it are recorded in
``run.json`` (``symmetry``) and printed by ``deeppot fit``.

The DF model ``"auto"`` (:func:`choose_df_model`) follows: a survey volume of a disk (the
region away from the origin, round about z and rotating: median v_phi above twice its
dispersion) gets the mixture of velocity ellipsoids (:mod:`deeppot_galpy.df.mixture`), whose
dispersions follow height more smoothly than a flow's, read at the volume's azimuth so that
p(v | x) is round about the z axis by construction (``FlowConfig.axisymmetric``,
:mod:`deeppot_galpy.df.factorised`); anything else the conditional flow,
which fits a pressure-supported system's velocities (their escape-speed edge, an anisotropy
that turns) and a whole disk, hot at its centre, better (RESULTS.md, sections 15 and 17).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from .compare import centre_offset, is_centred

if TYPE_CHECKING:  # torch: imported only where a flow is built
    from .df.flows import FlowConfig

__all__ = [
    "CENTRE_TOLERANCE",
    "SHAPE_TOLERANCE",
    "SymmetryChoice",
    "MIXTURE_HIDDEN",
    "choose_df_model",
    "chosen_flow",
    "choose_symmetry",
    "rotation_support",
]

CENTRE_TOLERANCE = 0.05  # median position from the origin, in median radii
SHAPE_TOLERANCE = 0.01  # entries of <u u^T> from round (I/3) or round about z
_ROTATION = 2.0  # a disk's median v_phi, in its dispersions (1.4826 MAD)
_FILLED = 0.3  # a volume's median distance from its centre, in r_max (a uniform ball: 0.8)
_N_SIGMA = 5.0


@dataclass(frozen=True)
class SymmetryChoice:
    """The symmetry ``"auto"`` chose, why, and the measures it was chosen on."""

    symmetry: str
    reason: str
    measures: dict

    def to_dict(self) -> dict:
        return asdict(self)


def rotation_support(x: np.ndarray, v: np.ndarray) -> float:
    """|median v_phi| about the z axis over its dispersion (1.4826 MAD): median and MAD, so a
    few stars with bad velocities cannot hide a disk."""
    R = np.hypot(x[:, 0], x[:, 1])
    v_phi = (x[:, 0] * v[:, 1] - x[:, 1] * v[:, 0]) / np.maximum(R, 1e-12)
    spread = 1.4826 * np.median(np.abs(v_phi - np.median(v_phi)))
    return float(abs(np.median(v_phi)) / max(spread, 1e-12))


def _shape(x: np.ndarray) -> tuple[np.ndarray, float]:
    """(<u u^T>, its tolerance) over the rows of x."""
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    return u.T @ u / len(u), max(SHAPE_TOLERANCE, _N_SIGMA * np.sqrt(4.0 / 45.0 / len(u)))


def _off_axis(t: np.ndarray) -> float:
    """How far <u u^T> is from round about the z axis (T_xx = T_yy, no off-diagonal terms)."""
    return max(abs(t[0, 0] - t[1, 1]), abs(t[0, 1]), abs(t[0, 2]), abs(t[1, 2]))


def _whole_system(x: np.ndarray) -> SymmetryChoice:
    r = np.linalg.norm(x, axis=1)
    keep = r > 0
    x, r = x[keep], r[keep]
    inner = r <= np.median(r)
    halves = [_shape(x[inner]), _shape(x[~inner])]
    measures: dict = {
        "shape_tensors": [t.tolist() for t, _ in halves],
        "tolerance": float(halves[1][1]),
    }
    if all(np.abs(t - np.eye(3) / 3.0).max() < tol for t, tol in halves):
        return SymmetryChoice("spherical", "the stars are round about the origin", measures)
    if not all(_off_axis(t) < tol for t, tol in halves):
        return SymmetryChoice("none", "the stars are neither round nor round about z", measures)
    above = float(np.mean(x[:, 2] > 0))
    measures["fraction_above_plane"] = above
    if abs(above - 0.5) < max(SHAPE_TOLERANCE, _N_SIGMA * 0.5 / np.sqrt(len(x))):
        return SymmetryChoice("mirror", "the stars are round about z and even in z", measures)
    return SymmetryChoice("axisymmetric", "the stars are round about z, not even in z", measures)


def choose_symmetry(x: np.ndarray, v: np.ndarray, region: dict) -> SymmetryChoice:
    """The symmetry ``"auto"`` gives stars at ``x`` with velocities ``v`` (N, 3) filling
    ``region`` (:meth:`~deeppot_galpy.phasespace.PhaseSpace.region`); see the module's rules."""
    center = np.asarray(region["center"], float)
    r_med = float(np.median(np.linalg.norm(x - center, axis=1)))
    if not is_centred(region):
        measures = {
            "centre_offset": centre_offset(region),
            "median_vphi_over_sigma": rotation_support(x, v),
            "median_over_edge_distance": r_med / float(region["r_max"]),
        }
        if measures["median_vphi_over_sigma"] > _ROTATION and (
            measures["median_over_edge_distance"] > _FILLED
        ):
            return SymmetryChoice(
                "mirror", "a volume of a disk rotating about the z axis", measures
            )
        reason = "away from the origin, and not a volume of a disk rotating about the z axis"
        if measures["median_over_edge_distance"] <= _FILLED and not region.get("survey_volume"):
            # a satellite: symmetric fits, exports and the rest frame need it about its centre
            at = ", ".join(f"{c:.4g}" for c in center)
            reason += (
                f"; the stars look like one system about ({at}): give them about that centre "
                "and at rest (x - centre, v - their mean velocity) to fit it with its symmetry"
            )
        return SymmetryChoice("none", reason, measures)
    r_med = float(np.median(np.linalg.norm(x - center, axis=1)))
    mad = np.median(np.abs(x - center), axis=0)
    noise = float(np.linalg.norm(1.2533 * 1.4826 * mad / np.sqrt(len(x))))
    offset = float(np.linalg.norm(center))
    if offset > max(CENTRE_TOLERANCE * r_med, _N_SIGMA * noise):
        measures = {"centre_from_origin": offset, "median_radius": r_med}
        return SymmetryChoice("none", "the stars are not centred on the origin", measures)
    return _whole_system(x)


#: hidden layers of a disk volume's mixture (its position flow and the ellipsoids' MLP) where
#: ``[flow] hidden`` is left at its default: on three local-disk catalogs (2^17 stars) they put
#: rho_0 within 3-10% against 9-28% with (128, 128), for 3 more minutes (RESULTS.md, section 22)
MIXTURE_HIDDEN = (256, 256)


def choose_df_model(x: np.ndarray, v: np.ndarray, symmetry: str, region: dict) -> dict:
    """The DF model ``"auto"`` gives stars at ``x``, ``v`` (N, 3) filling ``region`` whose
    potential has ``symmetry`` (already resolved): ``"mixture"`` for a survey volume of a
    rotating disk, with hidden layers of :data:`MIXTURE_HIDDEN` and p(v | x) axisymmetric,
    else ``"factorised"``, with a spline of the speed for a spherical potential; with the
    reason and the measures, for ``run.json``."""
    rotation = rotation_support(x, v)
    local = not is_centred(region)
    disk = symmetry in ("mirror", "axisymmetric") and rotation > _ROTATION and local
    return {
        "model": "mixture" if disk else "factorised",
        "hidden": MIXTURE_HIDDEN if disk else None,
        "axisymmetric": disk,
        # a round velocity distribution's radial profile (RESULTS.md, section 30: the Plummer
        # core's force, better on two draws, the anisotropic spheres even; the whole
        # Miyamoto-Nagai disk's K_z worse, 3.9% -> 5.7%, so not for disks)
        "speed_profile": symmetry == "spherical",
        "reason": ("a" if disk else "not a") + " volume of a disk rotating about the z axis",
        "measures": {"median_vphi_over_sigma": rotation, "symmetry": symmetry, "local": local},
    }


def chosen_flow(flow: FlowConfig, choice: dict) -> FlowConfig:
    """``flow`` with the model of a :func:`choose_df_model` ``choice``, its hidden layers
    (unless ``flow.hidden`` is set to other than its default), its ``axisymmetric`` and its
    ``speed_profile`` (or ``flow``'s, when set): what is set by hand stays."""
    hidden = choice["hidden"]
    if hidden is None or flow.hidden != type(flow).hidden:
        hidden = flow.hidden
    return replace(
        flow,
        model=choice["model"],
        hidden=hidden,
        axisymmetric=flow.axisymmetric or choice["axisymmetric"],
        speed_profile=flow.speed_profile or choice["speed_profile"],
    )
