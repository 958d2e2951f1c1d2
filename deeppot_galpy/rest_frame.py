r"""A whole system's rest frame: the stationary CBE holds where the stars are at rest as a whole.

The fit asks the stars' distribution function to be stationary, :math:`\partial f/\partial t =
0`, in the frame the stars are given in. A system moving at :math:`\vec V` through that frame
is stationary only in its own, :math:`f(\vec x, \vec v, t) = f_0(\vec x - \vec V t, \vec v -
\vec V)`, so read in the given frame the stationary equation lacks the term :math:`\vec V
\cdot \nabla_x f`, and the fit takes it for a force: a dwarf's stars given with a bulk motion
of 150 km/s, 16 times their dispersion, came out with a median force error of 3000%
(benchmarks/RESULTS.md, section 38). At the snapshot's instant the positions and the
potential are the same in both frames, so the fit subtracts :math:`\vec V` from the velocities
and nothing else changes (the potential's coordinates are the catalog's).

:math:`\vec V` is the stars' mean velocity. It is taken for the motion of a whole system when
the stars are one, their region centred on the coordinates' origin
(:func:`~deeppot_galpy.compare.is_centred`), and when it is measured: beyond
:data:`BULK_SIGMA` times its noise (the dispersion over :math:`\sqrt n`) on some axis and above
:data:`BULK_FLOOR` of the dispersion. A system at rest is left as it is (its mean is its noise),
and so is a rotating one (a round system's rotation has no mean Cartesian velocity). A survey
volume inside a galaxy (a piece of the Galactic disk) streams with the galaxy's rotation,
which is no motion of the galaxy, and is never moved; nor is a system away from the origin,
whose stars should be given about its own centre (a symmetric fit and the exports expand about
the origin).
"""

from __future__ import annotations

import numpy as np

from .compare import is_centred
from .phasespace import PhaseSpace
from .stars import Stars

__all__ = ["BULK_FLOOR", "BULK_SIGMA", "bulk_motion", "to_rest_frame"]

BULK_SIGMA = 5.0  # the mean velocity's significance, in its noise, for a whole system's motion
BULK_FLOOR = 0.01  # ... and its least size, in the stars' rms dispersion per axis


def bulk_motion(v: np.ndarray, region: dict) -> dict | None:
    """The velocity at which the stars (velocities ``v`` (N, 3), positions covering
    ``region``) move as a whole, with its noise and their dispersion, or None where they are
    not a whole system about the origin or do not measurably move."""
    if not is_centred(region):
        return None
    mean, spread = v.mean(axis=0), v.std(axis=0)
    noise = spread / np.sqrt(len(v))
    dispersion = float(np.sqrt(np.mean(spread**2)))
    significant = np.abs(mean) > BULK_SIGMA * noise
    if not significant.any() or np.linalg.norm(mean) <= BULK_FLOOR * dispersion:
        return None
    return {
        "velocity": mean.tolist(),
        "noise": noise.tolist(),
        "speed": float(np.linalg.norm(mean)),
        "dispersion": dispersion,
    }


def to_rest_frame(stars: Stars, region: dict) -> tuple[Stars, dict | None]:
    """``stars`` in their rest frame (:func:`bulk_motion` subtracted from the velocities) and
    the motion, with its velocity unit; the stars as they are and None where they do not
    move as a whole."""
    motion = bulk_motion(stars.summary.v, region)
    if motion is None:
        return stars, None
    V = np.asarray(motion["velocity"])
    s = stars.summary
    again = None if s.reobserved is None else (s.reobserved[0], s.reobserved[1] - V)
    summary = PhaseSpace(s.x, s.v - V, s.units, s.meta, s.v_cov, again)
    eta = stars.eta - np.concatenate([np.zeros(3), V])  # a copy: a memory map stays as it is
    motion["units"] = stars.units.velocity
    return Stars(eta, stars.units, stars.meta, summary), motion
