r"""Gaia-like mock catalogs drawn from a model whose potential is known.

A model is a spherical galpy potential with an isotropic distribution function, centred on the
Galactic centre, in physical units (kpc, km/s, Msun):

``plummer_mw``
    :math:`\Phi = -GM/\sqrt{r^2 + b^2}`; defaults :math:`M = 10^{11}` Msun, :math:`b = 3` kpc
    (galpy ``PlummerPotential`` sampled with ``isotropicPlummerdf``).
``hernquist_mw``
    :math:`\Phi = -GM/(r + a)`; defaults :math:`M = 10^{11}` Msun, :math:`a = 3` kpc
    (galpy ``HernquistPotential`` with amp = 2M, sampled with ``isotropicHernquistdf``).

Stars are placed in the Galactocentric frame (:class:`~deeppot_galpy.data.frames.FrameParameters`),
observed from the Sun with astropy (ICRS ``ra, dec, parallax, pmra, pmdec, radial_velocity``,
parallax [mas] = 1 / distance [kpc]) and, with a :class:`GaiaErrorModel`, perturbed by Gaussian
errors of the given widths, which fill the ``*_error`` columns. Without one the catalog is exact
and every ``*_error`` is 0. ``table.meta`` records the truth (model, parameters, units, galpy
``ro``/``vo``), the frame, the error model and the seed; :func:`truth_potential` rebuilds the true
galpy potential from it, also after a round trip through a file.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

import astropy.units as u
import numpy as np
from astropy.table import Table

from .catalog import meta_record, resolve_format
from .frames import KMS, MASYR, FrameParameters, galactocentric_to_observables

__all__ = [
    "MOCK_MODELS",
    "GaiaErrorModel",
    "make_gaia_mock",
    "observe",
    "sample_model",
    "truth_potential",
    "write_gaia_mock",
    "write_table",
]

# galpy's natural units for the truth potential: a unit convention only, recorded with it.
RO_KPC = 8.0
VO_KMS = 220.0

# name -> galpy potential class, galpy DF class, default parameters.
MOCK_MODELS: dict[str, dict] = {
    "plummer_mw": {
        "potential": "PlummerPotential",
        "df": "isotropicPlummerdf",
        "defaults": {"mass_msun": 1.0e11, "b_kpc": 3.0},
    },
    "hernquist_mw": {
        "potential": "HernquistPotential",
        "df": "isotropicHernquistdf",
        "defaults": {"mass_msun": 1.0e11, "a_kpc": 3.0},
    },
}


@dataclass(frozen=True)
class GaiaErrorModel:
    """Gaussian, homoscedastic observational errors (one width for every star).

    Defaults are Gaia DR3-like for bright (G ~ 15) stars.
    """

    parallax_mas: float = 0.02
    pm_mas_yr: float = 0.02
    radial_velocity_kms: float = 1.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"GaiaErrorModel.{name} must be >= 0; got {value}")

    def to_dict(self) -> dict:
        return asdict(self)


def _model_params(model: str, params: dict | None) -> dict:
    if model not in MOCK_MODELS:
        raise ValueError(f"unknown mock model {model!r}; available: {sorted(MOCK_MODELS)}")
    defaults = MOCK_MODELS[model]["defaults"]
    unknown = sorted(set(params or {}) - set(defaults))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for {model}; allowed: {sorted(defaults)}")
    merged = {**defaults, **(params or {})}
    return {k: float(v) for k, v in merged.items()}


def _truth_record(model: str, params: dict) -> dict:
    return {
        "model": model,
        "galpy_potential": MOCK_MODELS[model]["potential"],
        "params": params,
        "center": "Galactic centre (Galactocentric origin)",
        "units": {"length": "kpc", "velocity": "km/s", "mass": "Msun"},
        "ro_kpc": RO_KPC,
        "vo_kms": VO_KMS,
    }


def _galpy_potential(model: str, params: dict):
    from galpy import potential

    cls = getattr(potential, MOCK_MODELS[model]["potential"])
    mass = params["mass_msun"] * u.Msun
    if model == "plummer_mw":
        return cls(amp=mass, b=params["b_kpc"] * u.kpc, ro=RO_KPC, vo=VO_KMS)
    # galpy's Hernquist amplitude is twice the total mass.
    return cls(amp=2.0 * mass, a=params["a_kpc"] * u.kpc, ro=RO_KPC, vo=VO_KMS)


def truth_potential(source: Table | dict | str, **params):
    """The true potential as a galpy Potential (``ro``, ``vo`` set, physical output on).

    ``source`` is a mock table, its ``meta`` (or a PhaseSpace's), the ``truth`` record itself,
    or a model name (then ``params`` override its defaults). Evaluate it with quantities, e.g.
    ``evaluatePotentials(pot, R * u.kpc, z * u.kpc)`` -> (km/s)^2.
    """
    if isinstance(source, str):
        return _galpy_potential(source, _model_params(source, params))
    meta = source.meta if isinstance(source, Table) else source
    record = meta if "model" in meta and "params" in meta else meta_record(meta, "truth")
    if record is None:
        raise ValueError("no truth record found: not a deeppot Gaia mock (meta has no 'truth')")
    return _galpy_potential(record["model"], _model_params(record["model"], record["params"]))


def sample_model(
    n: int, model: str = "plummer_mw", seed: int = 0, params: dict | None = None
) -> tuple[np.ndarray, np.ndarray, dict]:
    """``n`` stars drawn exactly from the model: x [kpc], v [km/s] (each (n, 3)), truth record."""
    from galpy import df as galpy_df

    params = _model_params(model, params)
    pot = _galpy_potential(model, params)
    dist = getattr(galpy_df, MOCK_MODELS[model]["df"])(pot=pot)
    # galpy samples with numpy's global generator (no rng argument): seed it, and give the
    # caller's state back afterwards.
    state = np.random.get_state()  # noqa: NPY002
    try:
        np.random.seed(seed)  # noqa: NPY002
        orbits = dist.sample(n=n)
    finally:
        np.random.set_state(state)  # noqa: NPY002
    x = np.stack([getattr(orbits, c)(use_physical=False) for c in ("x", "y", "z")], axis=1)
    v = np.stack([getattr(orbits, c)(use_physical=False) for c in ("vx", "vy", "vz")], axis=1)
    return x * RO_KPC, v * VO_KMS, _truth_record(model, params)


def make_gaia_mock(
    n: int,
    model: str = "plummer_mw",
    seed: int = 0,
    errors: GaiaErrorModel | None = None,
    frame: FrameParameters | None = None,
    params: dict | None = None,
) -> Table:
    """A Gaia-archive-like table of ``n`` stars from ``model`` (see the module docstring).

    Columns: ``source_id``, ``ra``, ``dec`` [deg], ``parallax``, ``parallax_error`` [mas],
    ``pmra``, ``pmra_error``, ``pmdec``, ``pmdec_error`` [mas/yr], ``radial_velocity``,
    ``radial_velocity_error`` [km/s]. ``errors=None`` gives exact observables.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1; got {n}")
    x, v, truth = sample_model(n, model, seed, params)
    table = observe(x, v, truth, seed, errors, frame)
    table.meta["creator"] = "deeppot_galpy.data.gaia_mock.make_gaia_mock"
    return table


def observe(
    x: np.ndarray,
    v: np.ndarray,
    truth: dict,
    seed: int = 0,
    errors: GaiaErrorModel | None = None,
    frame: FrameParameters | None = None,
    absolute_magnitude: tuple[float, float] | None = None,
) -> Table:
    """Galactocentric stars x [kpc], v [km/s] (each (n, 3)) as a Gaia-archive-like table.

    The columns are :func:`make_gaia_mock`'s; ``truth`` (a JSON-able record of where the stars
    come from) is stored in ``meta``, and ``seed`` draws the errors. With
    ``absolute_magnitude = (mean, sigma)`` every star also gets an absolute magnitude from
    that Gaussian luminosity function, the same everywhere, and its apparent magnitude
    ``phot_g_mean_mag`` = M + 5 log10(d / 10 pc) (exact, no extinction): cut it for a
    magnitude-limited catalog.
    """
    n = len(x)
    frame = frame if frame is not None else FrameParameters()
    obs = galactocentric_to_observables(x, v, frame)
    obs["parallax"] = 1.0 / obs.pop("distance")

    widths = {
        "parallax": errors.parallax_mas if errors else 0.0,
        "pmra": errors.pm_mas_yr if errors else 0.0,
        "pmdec": errors.pm_mas_yr if errors else 0.0,
        "radial_velocity": errors.radial_velocity_kms if errors else 0.0,
    }
    # A stream separate from the stars' sampling, so the same seed gives the same stars with or
    # without errors.
    rng = np.random.default_rng([seed, 1])
    units = {
        "ra": u.deg,
        "dec": u.deg,
        "parallax": u.mas,
        "pmra": MASYR,
        "pmdec": MASYR,
        "radial_velocity": KMS,
    }

    table = Table()
    table["source_id"] = np.arange(1, n + 1, dtype=np.int64)
    for name in ("ra", "dec", "parallax", "pmra", "pmdec", "radial_velocity"):
        values = obs[name]
        if widths.get(name, 0.0) > 0:
            values = values + rng.normal(0.0, widths[name], n)
        table[name] = values * units[name]
        if name in widths:
            table[f"{name}_error"] = np.full(n, widths[name]) * units[name]
    if absolute_magnitude is not None:
        mean, sigma = absolute_magnitude
        M = np.random.default_rng([seed, 2]).normal(mean, sigma, n)
        table["phot_g_mean_mag"] = (M + 5.0 * np.log10(100.0 / obs["parallax"])) * u.mag
    # Keys of at most 8 characters, so FITS keeps them as plain header keywords.
    table.meta["truth"] = truth
    table.meta["frame"] = frame.to_dict()
    table.meta["errors"] = errors.to_dict() if errors else None
    table.meta["seed"] = int(seed)
    table.meta["absmag"] = list(absolute_magnitude) if absolute_magnitude else None
    return table


def write_gaia_mock(
    path: str | os.PathLike, n: int, format: str | None = None, overwrite: bool = False, **kwargs
) -> Table:
    """:func:`make_gaia_mock` (``kwargs`` go to it) written to ``path``; returns the table.

    The format follows the extension unless given (:func:`write_table`).
    """
    table = make_gaia_mock(n, **kwargs)
    write_table(table, path, format, overwrite)
    return table


def write_table(
    table: Table, path: str | os.PathLike, format: str | None = None, overwrite: bool = False
) -> None:
    """Write a mock ``table`` with its metadata; the format follows the extension unless given.

    FITS headers cannot hold nested metadata, so there the records are stored as JSON text (read
    back by :func:`truth_potential` and :func:`~deeppot_galpy.data.catalog.catalog_to_phasespace`);
    CSV keeps neither metadata nor units.
    """
    fmt = resolve_format(path, format)
    out = table
    write_kwargs = {}
    if fmt == "fits":
        out = table.copy(copy_data=False)
        out.meta = {k: json.dumps(v) for k, v in table.meta.items()}
    elif fmt == "hdf5":
        write_kwargs = {"path": "catalog", "serialize_meta": True}
    out.write(path, format=fmt, overwrite=overwrite, **write_kwargs)
