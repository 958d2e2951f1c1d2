r"""The optional Agama bridge (Vasiliev 2019): export a fitted potential to Agama, use Agama
potentials as references, and sample Agama disk mocks.

Agama has no wheel on PyPI: ``pip install agama`` builds it from source and, where they are
missing, downloads and compiles GSL (and Eigen, UNSIO) at install time, so it needs network
access and a C++ compiler; with GSL already installed (e.g. ``apt install libgsl-dev``) only
Agama itself is fetched. Agama's own instructions: INSTALL in
https://github.com/GalacticDynamics-Oxford/Agama. Everything here imports it lazily and fails
with that advice when it is missing.

**Units.** Agama's units are global (``agama.setUnits``) and applied whenever a Python value
crosses into Agama, including at every later call, so an Agama object built under one set of
units gives wrong numbers under another. A model in ``Units.galactic()`` pairs with
``agama.setUnits(mass=1, length=1, velocity=1)`` (Msun, kpc, km/s); an N-body model with
Agama's default :math:`G = 1` (``agama.setUnits()``). :func:`to_agama` checks that Agama's
current units match the model's; :class:`AgamaField` (what the export returns, and the
potential of :class:`AgamaDiskMock`, which sets Msun, kpc, km/s itself) records the units it
was built in and refuses to evaluate under others.

**Export** (:func:`to_agama`). Agama builds a ``Multipole`` (spherical harmonics
:math:`l \leq l_{max}` on a log grid in r) or ``CylSpline`` (azimuthal harmonics on an (R, z)
grid) expansion from a Python callable :math:`\Phi(\vec x)`, here the network's, over the
data volume (``region``). Without ``symmetry`` it is expanded about the data centre
:math:`\vec c` and shifted back with Agama's ``center`` modifier; a ``symmetry`` is the
galaxy's, so the expansion is then about its centre, the origin, and a region centred away
from it (a solar-neighbourhood sample) is refused. The report gives the export's errors
against the network (:func:`deeppot_galpy.compare.field_errors`) at
:func:`~deeppot_galpy.compare.check_points` (weighting in ``check_points``), overall and by
radius.

**Mocks** (:class:`AgamaDiskMock`). A quasi-isothermal disk DF (Binney & McMillan 2011) in a
Milky-Way-like potential (Hernquist bulge, Miyamoto-Nagai disk, NFW halo), sampled by
``agama.GalaxyModel(pot, df).sample`` in kpc, km/s.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .compare import (
    CHECK_POINTS,
    as_field,
    by_radius,
    field_errors,
    in_region,
    is_centred,
    summarize,
)
from .compare import check_points as sample_check_points
from .fields import MethodField
from .mocks.base import MockSystem
from .phasespace import PhaseSpace
from .units import Units

__all__ = ["AGAMA_SYMMETRY", "AgamaField", "AgamaDiskMock", "require_agama", "to_agama"]

# a network's symmetry (deeppot_galpy.potential.symmetry) in Agama's words: Agama's
# "axisymmetric" includes the reflection z -> -z (its ST_TRIAXIAL | ST_ZROTATION), so it is our
# "mirror"; our axisymmetry alone has no Agama name and is expanded without one
AGAMA_SYMMETRY = {
    "none": "none",
    "axisymmetric": "none",
    "mirror": "axisymmetric",
    "spherical": "spherical",
}

_INSTALL = (
    "this needs the optional 'agama' package, which has no wheel on PyPI: `pip install agama` "
    "builds it from source and needs network access at install time (it downloads GSL if "
    "missing; install GSL first, e.g. apt install libgsl-dev) and a C++ compiler; see INSTALL "
    "in https://github.com/GalacticDynamics-Oxford/Agama for Agama's own instructions"
)


def require_agama():
    """The ``agama`` module, or an ImportError saying how to install it."""
    try:
        import agama
    except ImportError as err:
        raise ImportError(_INSTALL) from err
    return agama


_AGAMA_UNITS = {"length": "kpc", "velocity": "km/s", "mass": "Msun"}


def _agama_units_in(units: Units) -> dict[str, float]:
    """Agama's unit scales (in kpc, km/s, Msun) that match ``units``; {} for N-body (G = 1)."""
    if not units.is_physical:
        return {}
    import astropy.units as u

    ours = {"length": units.length, "velocity": units.velocity, "mass": units.mass}
    return {k: float(u.Unit(ours[k]).to(v)) for k, v in _AGAMA_UNITS.items()}


def _current_agama_units() -> dict[str, float]:
    """``agama.getUnits()`` as plain numbers in kpc, km/s, Msun (it gives astropy Quantities
    when astropy is loaded, floats otherwise)."""
    have = require_agama().getUnits()
    return {
        k: float(have[k].to_value(v) if hasattr(have[k], "to_value") else have[k])
        for k, v in _AGAMA_UNITS.items()
        if k in have
    }


def _require_units(want: dict[str, float], what: str) -> None:
    """Raise unless Agama's current units are ``want`` (as :func:`_agama_units_in` gives)."""
    have = _current_agama_units()
    same = set(want) == set(have) and all(np.isclose(have[k], want[k], rtol=1e-9) for k in want)
    if not same:
        args = ", ".join(f"{k}={v:g}" for k, v in want.items())
        raise ValueError(
            f"agama's global units {have or 'N-body (G = 1)'} do not match {what}: call "
            f"agama.setUnits({args}) first"
        )


def _check_agama_units(units: Units) -> None:
    _require_units(_agama_units_in(units), f"the model's {units.to_dict()}")


class AgamaField(MethodField):
    """An ``agama.Potential`` as a compare Field, pinned to the Agama units it was built in.

    ``pot`` is the Agama object (hand it to Agama's own tools while Agama's units are still
    ``agama_units``); its other methods (``force``, ``forceDeriv``, ...) are reachable on this
    wrapper too, and every call first checks Agama's global units.
    """

    def __init__(self, pot: Any):
        super().__init__(pot)
        self.pot = pot
        self.agama_units = _current_agama_units()

    def check_units(self) -> None:
        """Raise unless Agama's global units are still those this potential was built in."""
        _require_units(self.agama_units, f"those this potential was built in {self.agama_units}")

    def _call(self, method: str, x: np.ndarray) -> np.ndarray:
        self.check_units()
        return super()._call(method, x)

    def __getattr__(self, name: str) -> Any:
        if name in ("obj", "pot", "agama_units"):  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        attr = getattr(self.pot, name)
        if not callable(attr):
            return attr

        def checked(*args: Any, **kwargs: Any) -> Any:
            self.check_units()
            return attr(*args, **kwargs)

        return checked


def _source(obj: Any, region: dict | None, units: Units | None):
    """(Field, Phi callable for Agama, region, units) of a DeepPotential, PotentialNet or field.

    Agama calls the function with a few points at a time (~17k calls of <= 13 points for a
    Multipole), where torch's per-call overhead dominates: a network is evaluated with the
    plain-numpy forward pass of :class:`~deeppot_galpy.galpy_potential.NumpyPotentialMLP`.
    """
    from .galpy_potential import NumpyPotentialMLP
    from .potential import PotentialNet

    if hasattr(obj, "network") and hasattr(obj, "model_units"):  # a DeepPotential, amp = 1
        obj, region, units = obj.network, region or obj.region, obj.model_units
    units = units or Units.nbody()
    field = as_field(obj, units.G)
    if isinstance(obj, PotentialNet):
        return field, NumpyPotentialMLP(obj).phi, region, units
    return field, field.potential, region, units


def to_agama(
    source: Any,
    region: dict | None = None,
    lmax: int = 8,
    kind: str = "Multipole",
    mmax: int | None = None,
    symmetry: str | None = None,
    grid_size_R: int = 40,
    grid_size_z: int = 40,
    units: Units | None = None,
    check_points: np.ndarray | None = None,
    n_check: int = 4096,
    seed: int = 0,
) -> tuple[Any, dict]:
    """An Agama expansion of ``source``'s potential over the data ``region``, as an
    :class:`AgamaField` (the ``agama.Potential`` is its ``pot``), and a report of its accuracy.

    ``source`` is a :class:`~deeppot_galpy.galpy_potential.DeepPotential` (its network,
    region and units are used; galpy's ``amp`` is not), a PotentialNet or any compare field
    (then give ``region`` and, for physical models, ``units``). ``kind`` is ``"Multipole"``
    (``lmax``, ``mmax`` = ``lmax`` by default; ``grid_size_R`` log-spaced radii from r_min/2
    to r_max) or ``"CylSpline"`` (``mmax`` = ``lmax`` by default, 0 for axisymmetry; R up to
    r_max, |z| up to the box's height above the centre). ``symmetry`` is Agama's (``none``,
    ``reflection``, ``triaxial``, ``axisymmetric``, ``spherical``) about the galaxy's centre,
    the origin: it needs a region centred within a quarter of ``r_max`` of it. None (the
    default) takes a network's own (:data:`AGAMA_SYMMETRY`) where its region is so centred,
    else ``none``. The report
    holds the export's per-point error summary against the source at ``check_points`` inside
    the region (default: ``n_check`` from :func:`~deeppot_galpy.compare.check_points`, whose
    weighting it states), the force error by radius, the settings and the build time.
    """
    agama = require_agama()
    field, potential, region, units = _source(source, region, units)
    if region is None:
        raise ValueError("to_agama needs the data region (PhaseSpace.region()) to expand over")
    if kind not in ("Multipole", "CylSpline"):
        raise ValueError(f"kind must be 'Multipole' or 'CylSpline', not {kind!r}")
    _check_agama_units(units)
    if symmetry is None:
        net = getattr(source, "network", source)
        own = getattr(getattr(net, "config", None), "symmetry", "none")
        symmetry = AGAMA_SYMMETRY[own] if is_centred(region) else "none"
    c = np.asarray(region.get("center", np.zeros(3)), dtype=float)
    r_min, r_max = float(region["r_min"]), float(region["r_max"])
    if symmetry != "none":
        if not is_centred(region):
            raise ValueError(
                f"symmetry={symmetry!r} is the galaxy's, about its centre (the origin), but the "
                f"data are centred {np.linalg.norm(c):.3g} away from it, beyond a quarter of "
                "their extent: the network is not constrained over the symmetric volume; use "
                "symmetry='none' (an expansion about the data centre)"
            )
        r_max += float(np.linalg.norm(c))  # the region's ball seen from the origin
        c = np.zeros(3)

    def phi(xyz: np.ndarray) -> np.ndarray:  # Agama calls this with (N, 3) about the centre
        return potential(np.asarray(xyz, dtype=np.float64) + c)

    mmax = lmax if mmax is None else mmax
    if kind == "Multipole":
        grid = {"lmax": lmax, "gridSizeR": grid_size_R, "rmin": 0.5 * r_min, "rmax": r_max}
    else:
        z_top = r_max
        if "lo" in region and "hi" in region:
            z_top = max(abs(region["hi"][2] - c[2]), abs(region["lo"][2] - c[2]))
        grid = {
            "gridSizeR": grid_size_R,
            "gridSizez": grid_size_z,
            "Rmin": 0.5 * r_min,
            "Rmax": r_max,
            "zmin": 0.01 * z_top,
            "zmax": z_top,
        }
    t0 = time.perf_counter()
    expansion = agama.Potential(type=kind, potential=phi, symmetry=symmetry, mmax=mmax, **grid)
    pot = AgamaField(
        agama.Potential(potential=expansion, center=c) if np.any(c != 0) else expansion
    )
    build_s = time.perf_counter() - t0

    x = sample_check_points(region, n_check, seed) if check_points is None else check_points
    x = x[in_region(x, region)]
    errors = field_errors(pot, field, x, units.G)
    r = np.linalg.norm(x - np.asarray(region["center"], float), axis=1)  # from the data centre
    report = summarize(errors) | {
        "force_err_median_by_radius": by_radius(r, errors["force"]),
        "check_points": CHECK_POINTS if check_points is None else "given by the caller",
        "kind": kind,
        "symmetry": symmetry,
        "lmax": lmax,
        "mmax": mmax,
        "center": c.tolist(),
        "n_check": int(len(x)),
        "build_seconds": build_s,
    }
    return pot, report | grid


class AgamaDiskMock(MockSystem):
    """A quasi-isothermal disk in a Milky-Way-like potential, from Agama (kpc, km/s, Msun).

    Potential: Hernquist bulge (``M_bulge``, ``a_bulge``), Miyamoto-Nagai disk (``M_disk``,
    ``a_disk``, ``b_disk``) and NFW halo (``M_halo`` = galpy's amp / G, ``a_halo``);
    v_c(8 kpc) = 231 km/s at the defaults. DF: Agama's ``QuasiIsothermal`` with scale length
    ``R_d``, scale height ``h_d``, radial dispersion ``sigma_R0`` e^{-R / 2 R_d} (floor
    ``sigma_min``). Building it sets Agama's global units to Msun, kpc, km/s.
    """

    name = "agama_qi_disk"
    units = Units.galactic()
    solar_radius = 8.0
    r_range = (1.0, 16.0)

    def __init__(
        self,
        M_bulge: float = 5e9,
        a_bulge: float = 0.5,
        M_disk: float = 6.8e10,
        a_disk: float = 3.0,
        b_disk: float = 0.28,
        M_halo: float = 5.5e11,
        a_halo: float = 16.0,
        R_d: float = 2.6,
        h_d: float = 0.3,
        sigma_R0: float = 80.0,
        sigma_min: float = 5.0,
    ):
        p = self._params = {
            "M_bulge": M_bulge, "a_bulge": a_bulge, "M_disk": M_disk, "a_disk": a_disk,
            "b_disk": b_disk, "M_halo": M_halo, "a_halo": a_halo, "R_d": R_d, "h_d": h_d,
            "sigma_R0": sigma_R0, "sigma_min": sigma_min,
        }  # fmt: skip
        agama = require_agama()
        agama.setUnits(mass=1, length=1, velocity=1)
        self.pot = agama.Potential(
            {"type": "Dehnen", "gamma": 1, "mass": p["M_bulge"], "scaleRadius": p["a_bulge"]},
            {
                "type": "MiyamotoNagai",
                "mass": p["M_disk"],
                "scaleRadius": p["a_disk"],
                "scaleHeight": p["b_disk"],
            },
            {"type": "NFW", "mass": p["M_halo"], "scaleRadius": p["a_halo"]},
        )
        self.df = agama.DistributionFunction(
            type="QuasiIsothermal",
            potential=self.pot,
            mass=1.0,
            Rdisk=p["R_d"],
            Hdisk=p["h_d"],
            sigmar0=p["sigma_R0"],
            Rsigmar=2.0 * p["R_d"],
            sigmamin=p["sigma_min"],
        )
        self._field = AgamaField(self.pot)

    @property
    def params(self) -> dict:
        return dict(self._params)

    def sample(self, n: int, seed: int) -> PhaseSpace:
        agama = require_agama()
        self._field.check_units()
        agama.setRandomSeed(int(seed) + 1)  # Agama's seed 0 means "from the clock"
        posvel, _ = agama.GalaxyModel(self.pot, self.df).sample(int(n))
        return PhaseSpace(
            posvel[:, :3], posvel[:, 3:], self.units, {"mock": self.describe(), "seed": seed}
        )

    def potential(self, x: np.ndarray) -> np.ndarray:
        return self._field.potential(x)

    def acceleration(self, x: np.ndarray) -> np.ndarray:
        return self._field.acceleration(x)

    def density(self, x: np.ndarray) -> np.ndarray:
        return self._field.density(x)

    def galpy_potential(self, ro: float = 8.0, vo: float = 220.0):
        """The same potential in galpy natural units (``ro`` kpc, ``vo`` km/s): galpy's
        Hernquist amp is 2 G M (Agama's Dehnen gamma = 1 mass M), MN and NFW amps G M."""
        from galpy.potential import HernquistPotential, MiyamotoNagaiPotential, NFWPotential

        p, k = self._params, self.units.G / (ro * vo**2)
        kw = {"ro": ro, "vo": vo}
        return [
            HernquistPotential(amp=2 * k * p["M_bulge"], a=p["a_bulge"] / ro, **kw),
            MiyamotoNagaiPotential(
                amp=k * p["M_disk"], a=p["a_disk"] / ro, b=p["b_disk"] / ro, **kw
            ),
            NFWPotential(amp=k * p["M_halo"], a=p["a_halo"] / ro, **kw),
        ]
