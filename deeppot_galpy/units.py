r"""Model units and their conversions.

A model is trained in one self-consistent unit system: a length unit, a velocity unit and the
gravitational constant :math:`G` expressed in them. Potentials are in velocity\ :sup:`2`, forces
in velocity\ :sup:`2`/length and densities follow from Poisson's equation,

.. math:: \rho = \frac{\nabla^2 \Phi}{4 \pi G}.

Two systems cover the package's uses:

* ``Units.nbody()``: dimensionless N-body units, :math:`G = M = b = 1` (the Plummer demo). They
  map 1:1 onto galpy's natural units.
* ``Units.galactic()``: kpc and km/s with :math:`G = 4.30092\times10^{-6}` kpc (km/s)\ :sup:`2`
  /Msun, so densities come out in Msun/kpc\ :sup:`3`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import astropy.units as u

# astropy is imported inside the methods that need it: PhaseSpace carries Units into the flows'
# training, and the torch-only path (df/, potential/) must not load the astronomy stack

__all__ = ["Units", "cartesian_to_galpy"]


@dataclass(frozen=True)
class Units:
    """A length unit, a velocity unit and G in (length * velocity^2 / mass) of those units.

    ``length`` and ``velocity`` are astropy unit strings, or ``None`` for dimensionless units;
    ``mass`` is the mass unit implied by G (astropy string, or ``None``).
    """

    length: str | None = None
    velocity: str | None = None
    mass: str | None = None
    G: float = 1.0

    @classmethod
    def nbody(cls) -> Units:
        """Dimensionless units with G = 1 (e.g. G = M = b = 1 for a Plummer sphere)."""
        return cls()

    @classmethod
    def galactic(cls) -> Units:
        """kpc, km/s and Msun; G in kpc (km/s)^2 / Msun."""
        import astropy.units as u
        from astropy.constants import G

        g = G.to_value(u.kpc * (u.km / u.s) ** 2 / u.Msun)
        return cls(length="kpc", velocity="km/s", mass="Msun", G=float(g))

    @property
    def is_physical(self) -> bool:
        return self.length is not None

    def quantity(self, kind: str) -> u.UnitBase:
        """The astropy unit of a quantity ``kind`` in this system (dimensionless if N-body).

        ``kind`` is one of ``length``, ``velocity``, ``potential``, ``acceleration``,
        ``density``, ``mass``, ``time``.
        """
        import astropy.units as u

        if not self.is_physical:
            return u.dimensionless_unscaled
        L, V, M = u.Unit(self.length), u.Unit(self.velocity), u.Unit(self.mass)
        table = {
            "length": L,
            "velocity": V,
            "potential": V**2,
            "acceleration": V**2 / L,
            "density": M / L**3,
            "mass": M,
            "time": L / V,
        }
        try:
            return table[kind]
        except KeyError:
            known = sorted(table)
            raise ValueError(f"unknown quantity kind {kind!r}; use one of {known}") from None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Units:
        unknown = set(d) - {"length", "velocity", "mass", "G"}
        if unknown:
            raise ValueError(f"unknown keys in units record: {sorted(unknown)}")
        return cls(**d)

    def natural_scales(self, ro: float, vo: float) -> tuple[float, float]:
        """Factors (length, velocity) from galpy natural units (ro kpc, vo km/s) to these units.

        galpy's natural units have G = 1 with length ``ro`` and velocity ``vo``. N-body units are
        taken to *be* galpy's natural units (factors 1), so a G = 1 model is used as is.
        """
        if not self.is_physical:
            return 1.0, 1.0
        import astropy.units as u

        lf = (ro * u.kpc).to_value(self.length)
        vf = (vo * u.km / u.s).to_value(self.velocity)
        return float(lf), float(vf)


def cartesian_to_galpy(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Cartesian (N, 3) positions and velocities -> galpy's [R, vR, vT, z, vz, phi] (N, 6)."""
    R, phi = np.hypot(x[:, 0], x[:, 1]), np.arctan2(x[:, 1], x[:, 0])
    c, s = np.cos(phi), np.sin(phi)
    vR, vT = v[:, 0] * c + v[:, 1] * s, -v[:, 0] * s + v[:, 1] * c
    return np.stack([R, vR, vT, x[:, 2], v[:, 2], phi], axis=1)
