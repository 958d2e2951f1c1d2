r"""Star catalogs (files, astropy tables, SkyCoords) -> Galactocentric ``PhaseSpace``.

Column conventions, detected in this order (or chosen with ``convention=``):

``gaia``
    Gaia archive names ``ra, dec`` [deg], ``parallax`` [mas], ``pmra`` (includes cos dec),
    ``pmdec`` [mas/yr], ``radial_velocity`` [km/s]; ``parallax_error`` [mas] for the S/N cut,
    ``source_id`` for duplicates.
    Optional ``pmra_error``, ``pmdec_error``, ``radial_velocity_error``, ``parallax_error`` and
    the correlations ``pmra_pmdec_corr``, ``parallax_pmra_corr``, ``parallax_pmdec_corr`` give
    each star's velocity covariance (``PhaseSpace.v_cov``; the ``distance`` convention takes
    the proper-motion and RV errors), which the fit's Jeans moments subtract.
    Distance :math:`d` [kpc] :math:`= 1/(\varpi - \varpi_0)` [mas].
``distance``
    ``ra, dec, distance, pmra, pmdec, radial_velocity``, distance in any length unit.
``galactocentric``
    astropy's Galactocentric Cartesian ``x, y, z, v_x, v_y, v_z`` (any length / velocity
    units), taken to be in the frame in force (which then only locates the Sun for volume cuts).

Names match exactly, else case-insensitively. Units come from the table; a column used without
one is an error naming it and the unit expected, except that ``assume_gaia_units=True`` takes
the Gaia archive units above for Gaia-named columns (e.g. a CSV export). The cuts
(:mod:`~deeppot_galpy.data.cuts`) run on plain numpy arrays before any coordinate object is
built, and the transform runs in chunks, so 10^7 rows stay within a few GB.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import BaseCoordinateFrame, SkyCoord
from astropy.table import Table

from ..completeness import Completeness
from ..phasespace import PhaseSpace
from ..units import Units
from .cuts import (
    CutReport,
    QualityCuts,
    Selection,
    cut_duplicates,
    cut_magnitude,
    cut_missing_radial_velocity,
    cut_non_finite,
    cut_non_positive_distance,
    cut_parallax,
    cut_volume,
)
from .frames import (
    KMS,
    MASYR,
    FrameParameters,
    observables_to_galactocentric,
    skycoord_to_galactocentric,
    sun_position,
    velocity_covariance,
)

__all__ = [
    "CONVENTIONS",
    "catalog_to_phasespace",
    "meta_record",
    "read_catalog",
    "resolve_format",
]

CONVENTIONS: dict[str, tuple[str, ...]] = {
    "gaia": ("ra", "dec", "parallax", "pmra", "pmdec", "radial_velocity"),
    "distance": ("ra", "dec", "distance", "pmra", "pmdec", "radial_velocity"),
    "galactocentric": ("x", "y", "z", "v_x", "v_y", "v_z"),
}

# Gaia's correlation columns that enter the velocity covariance -> the observables they pair
_CORRELATIONS = {
    "pmra_pmdec_corr": ("pmra", "pmdec"),
    "parallax_pmra_corr": ("parallax", "pmra"),
    "parallax_pmdec_corr": ("parallax", "pmdec"),
}

# Gaia archive units, also the units each column is converted to.
_GAIA_UNITS = {
    "ra": u.deg,
    "dec": u.deg,
    "parallax": u.mas,
    "parallax_error": u.mas,
    "pmra": MASYR,
    "pmdec": MASYR,
    "radial_velocity": KMS,
    "pmra_error": MASYR,
    "pmdec_error": MASYR,
    "radial_velocity_error": KMS,
    **{c: u.dimensionless_unscaled for c in _CORRELATIONS},
}
_UNITS = {
    **_GAIA_UNITS,
    "distance": u.kpc,
    **{c: u.kpc for c in ("x", "y", "z")},
    **{c: KMS for c in ("v_x", "v_y", "v_z")},
    "magnitude": u.mag,
}
_VELOCITY_ERRORS = ("pmra_error", "pmdec_error", "radial_velocity_error", "parallax_error")
_OPTIONAL = ("source_id", *_VELOCITY_ERRORS, *_CORRELATIONS)

_FORMATS = {
    ".ecsv": "ascii.ecsv",
    ".csv": "ascii.csv",
    ".fits": "fits",
    ".fit": "fits",
    ".fts": "fits",
    ".fits.gz": "fits",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".h5": "hdf5",
    ".hdf5": "hdf5",
    ".hdf": "hdf5",
}
_FORMAT_ALIASES = {"ecsv": "ascii.ecsv", "csv": "ascii.csv"}


def resolve_format(path: str | os.PathLike, format: str | None = None) -> str:
    """The astropy format name: ``format`` (short names ``ecsv``, ``csv`` allowed) or, if None,
    the one the file extension implies."""
    if format:
        return _FORMAT_ALIASES.get(format, format)
    name = Path(path).name.lower()
    for ext in sorted(_FORMATS, key=len, reverse=True):
        if name.endswith(ext):
            return _FORMATS[ext]
    raise ValueError(
        f"cannot tell the format of {path} from its extension; pass format= (one of "
        f"ecsv, csv, fits, parquet, hdf5) or use one of {sorted(_FORMATS)}"
    )


def _match(colnames: list[str], name: str) -> str | None:
    """The column called ``name``: exact match first, else the one case-insensitive match."""
    if name in colnames:
        return name
    hits = [c for c in colnames if c.lower() == name.lower()]
    return hits[0] if len(hits) == 1 else None


def read_catalog(
    path: str | os.PathLike,
    format: str | None = None,
    columns: list[str] | None = None,
) -> Table:
    """Read a catalog file with ``Table.read``: ECSV, FITS, CSV, Parquet or HDF5.

    ``format`` overrides the one inferred from the extension (``ecsv``, ``csv``, ``fits``,
    ``parquet``, ``hdf5`` or any astropy format name). ``columns`` keeps only those present
    among the named columns; Parquet then reads nothing else from disk, which matters for wide
    Gaia files. Raises FileNotFoundError for a missing file, ValueError for an unreadable or
    empty one.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"catalog file {path} does not exist")
    if not path.is_file():
        raise ValueError(f"catalog path {path} is not a file")
    fmt = resolve_format(path, format)
    kwargs = {}
    try:
        if fmt == "parquet" and columns is not None:
            names = Table.read(path, format="parquet", schema_only=True).colnames
            kwargs["include_names"] = [m for c in columns if (m := _match(names, c))]
        table = Table.read(path, format=fmt, **kwargs)
    except ModuleNotFoundError as exc:
        raise ImportError(
            f"reading {fmt} files needs {exc.name or 'an optional package'} "
            f"(pip install 'deeppot-galpy[io]'): {exc}"
        ) from exc
    except Exception as exc:  # whatever the reader's failure, to the user the file is unreadable
        raise ValueError(f"cannot read {path} as {fmt}: {type(exc).__name__}: {exc}") from exc
    if columns is not None and fmt != "parquet":
        keep = [m for c in columns if (m := _match(table.colnames, c))]
        table = table[keep] if keep else table
    if len(table) == 0:
        raise ValueError(f"catalog {path} is empty: it has no rows")
    return table


def meta_record(meta: dict, key: str) -> dict | None:
    """``meta[key]`` as a dict, whether stored as one or as JSON text (FITS headers), or None.

    FITS upper-cases header keywords, so the key is matched case-insensitively.
    """
    name = _match(list(meta), key)
    if name is None:
        return None
    value = meta[name]
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    return value if isinstance(value, dict) else None


def _detect(colnames: list[str], convention: str | None) -> tuple[str, dict[str, str]]:
    """The convention to use and a map from its canonical names to the table's names."""
    if convention is not None and convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}; use one of {sorted(CONVENTIONS)}")
    missing = {}
    for name in [convention] if convention else CONVENTIONS:
        wanted = CONVENTIONS[name] + _OPTIONAL
        found = {c: m for c in wanted if (m := _match(colnames, c))}
        absent = [c for c in CONVENTIONS[name] if c not in found]
        if not absent:
            return name, found
        missing[name] = absent
    accepted = "; ".join(
        f"{name}: {', '.join(CONVENTIONS[name])} (missing {', '.join(absent)})"
        for name, absent in missing.items()
    )
    raise ValueError(
        f"catalog lacks required columns. Accepted conventions: {accepted}. "
        f"Columns present: {', '.join(colnames[:30])}{' ...' if len(colnames) > 30 else ''}"
    )


def _unit_hint(name: str) -> str:
    if name in ("x", "y", "z", "distance"):
        return "a length unit (e.g. kpc)"
    if name.startswith("v_"):
        return "a velocity unit (e.g. km/s)"
    return str(_UNITS[name])


def _float_column(table: Table, colname: str, name: str, assume_gaia_units: bool) -> np.ndarray:
    """Column ``colname`` (canonical ``name``) as float64 in ``_UNITS[name]``; masked -> NaN.

    NaN only marks a missing value for the cuts to drop and count; it never reaches a result.
    """
    col = table[colname]
    unit = getattr(col, "unit", None)
    if unit is None or unit == u.dimensionless_unscaled:
        # magnitudes are often stored without a unit, correlations have none
        unitless = name == "magnitude" or name in _CORRELATIONS
        if not (unitless or (assume_gaia_units and name in _GAIA_UNITS)):
            hint = (
                " or pass assume_gaia_units=True to take the Gaia archive units"
                if name in _GAIA_UNITS
                else ""
            )
            raise ValueError(
                f"column {colname!r} has no unit; expected {_unit_hint(name)}. Give the column "
                f"a unit (formats such as CSV store none){hint}"
            )
        scale = 1.0
    else:
        try:
            scale = u.Unit(unit).to(_UNITS[name])
        except (u.UnitsError, ValueError, TypeError) as exc:
            raise ValueError(
                f"column {colname!r} has unit {unit}, not convertible to {_UNITS[name]}"
            ) from exc
    mask = getattr(col, "mask", None)
    data = col.unmasked if hasattr(col, "unmasked") else np.ma.getdata(col)
    data = np.asarray(getattr(data, "value", data))
    if not np.issubdtype(data.dtype, np.number):
        raise ValueError(f"column {colname!r} is not numeric (dtype {data.dtype})")
    values = data.astype(np.float64, copy=False)
    if scale != 1.0:
        values = values * scale
    if mask is not None and np.any(mask):
        values = np.where(mask, np.nan, values)
    return values


def _check_errors(cols: dict[str, np.ndarray], names: dict[str, str]) -> None:
    """Refuse negative errors and correlations outside [-1, 1] (NaN is left to the cuts)."""
    for c, values in cols.items():
        with np.errstate(invalid="ignore"):
            if c in _VELOCITY_ERRORS:
                bad, expected = values < 0, "an error must be >= 0"
            elif c in _CORRELATIONS:
                bad, expected = np.abs(values) > 1, "a correlation must lie in [-1, 1]"
            else:
                continue
        if bad.any():
            raise ValueError(f"column {names[c]!r} has {int(bad.sum())} invalid values: {expected}")


#: the fixed seed of the errors drawn once more (:func:`_reobserved`): a catalog gives the same
#: fit whatever the run's seed
_REOBSERVE_SEED = 20201020
_ASTROMETRY = ("parallax", "pmra", "pmdec", "radial_velocity")


def _reobserved(
    cols: dict[str, np.ndarray], rows: np.ndarray, frame: FrameParameters, zero_point: float
) -> tuple[np.ndarray, np.ndarray]:
    r"""The kept ``rows``' Galactocentric (x, v) with their errors drawn once more.

    Each of parallax, proper motions and radial velocity gets a Gaussian of its ``*_error``
    added, with Gaia's ``*_corr`` correlations (a correlation matrix that is not positive
    definite is clipped to its nearest one), and the star is transformed again. A star whose
    parallax would fall below a tenth of its own is drawn again (below S/N ~ 1 the draw is
    no longer a small perturbation). The Jeans moments difference the two realizations to
    extrapolate to error-free stars (SIMEX; :mod:`~deeppot_galpy.potential.jeans`).
    """
    rng = np.random.default_rng(_REOBSERVE_SEED)
    n = len(rows)
    zeros = np.zeros(n)
    sigma = np.stack(
        [cols[f"{c}_error"][rows] if f"{c}_error" in cols else zeros for c in _ASTROMETRY], 1
    )
    corr = np.broadcast_to(np.eye(4), (n, 4, 4)).copy()
    for name, (p, q) in _CORRELATIONS.items():
        if name in cols:
            i, j = _ASTROMETRY.index(p), _ASTROMETRY.index(q)
            corr[:, i, j] = corr[:, j, i] = cols[name][rows]
    lam, vec = np.linalg.eigh(corr)
    root = vec * np.sqrt(np.clip(lam, 0.0, None))[:, None, :]
    own = cols["parallax"][rows] - zero_point
    noise = np.zeros((n, 4))
    redraw = np.ones(n, dtype=bool)
    for _ in range(100):
        k = np.flatnonzero(redraw)
        if not len(k):
            break
        noise[k] = sigma[k] * np.einsum("nij,nj->ni", root[k], rng.standard_normal((len(k), 4)))
        redraw[k] = own[k] + noise[k, 0] < 0.1 * own[k]
    noise[redraw] = 0.0  # ~never: 100 draws below a tenth of the parallax
    parallax, pmra, pmdec, rv = (cols[c][rows] + noise[:, i] for i, c in enumerate(_ASTROMETRY))
    return observables_to_galactocentric(
        cols["ra"][rows], cols["dec"][rows], 1.0 / (parallax - zero_point), pmra, pmdec, rv, frame
    )


def _source_id(table: Table, colname: str) -> tuple[np.ndarray, np.ndarray | None]:
    col = table[colname]
    mask = getattr(col, "mask", None)
    known = ~np.asarray(mask) if mask is not None and np.any(mask) else None
    return np.asarray(np.ma.getdata(col)), known


def _as_table(source, format: str | None, columns: list[str]) -> tuple[Table, str]:
    if isinstance(source, Table):
        if len(source) == 0:
            raise ValueError("catalog table is empty: it has no rows")
        return source, f"{type(source).__name__} ({len(source)} rows)"
    if isinstance(source, str | os.PathLike):
        return read_catalog(source, format=format, columns=columns), str(source)
    raise TypeError(
        f"source must be a path, an astropy Table/QTable or a SkyCoord; got {type(source).__name__}"
    )


def _frame_note(meta: dict, frame: FrameParameters) -> str | None:
    """A warning text if the catalog records a Galactocentric frame other than ``frame``."""
    recorded = meta_record(meta, "frame")
    if recorded is None:
        return None
    try:
        theirs = FrameParameters.from_dict(recorded)
    except (ValueError, TypeError):
        return None
    mine = frame.to_dict()
    close = all(np.allclose(v, mine[k], rtol=1e-12, atol=0) for k, v in theirs.to_dict().items())
    if close:
        return None
    return (
        f"the catalog's metadata records frame {theirs.to_dict()} but {mine} is in force; "
        "pass frame=FrameParameters.from_dict(table.meta['frame']) to use the recorded one"
    )


def _frame_summary(frame: FrameParameters) -> str:
    v = ", ".join(f"{c:g}" for c in frame.galcen_v_sun)
    return (
        f"Galactocentric frame R0 = {frame.galcen_distance:g} kpc, z_sun = {frame.z_sun:g} pc, "
        f"v_sun = ({v}) km/s, roll = {frame.roll:g} deg"
    )


def catalog_to_phasespace(
    source: str | os.PathLike | Table | SkyCoord,
    frame: FrameParameters | None = None,
    cuts: QualityCuts | None = None,
    *,
    convention: str | None = None,
    assume_gaia_units: bool = False,
    format: str | None = None,
) -> tuple[PhaseSpace, CutReport]:
    """Stars from a catalog as Galactocentric x [kpc], v [km/s], after reported cuts.

    Parameters
    ----------
    source : a catalog path (see :func:`read_catalog`), an astropy Table/QTable, or a SkyCoord
        with distances, proper motions and radial velocities in any frame.
    frame : the Galactocentric frame; default astropy's current defaults. For a SkyCoord
        already in a Galactocentric frame the default is that frame.
    cuts : the :class:`~deeppot_galpy.data.cuts.QualityCuts`; default ``QualityCuts()``.
    convention : ``"gaia"``, ``"distance"`` or ``"galactocentric"`` to override detection.
    assume_gaia_units : take Gaia archive units for Gaia-named columns that have none.
    format : file format override for a path.

    Returns
    -------
    The :class:`PhaseSpace` (``Units.galactic()``; ``meta`` holds ``frame``, ``cuts``,
    ``cut_report``, ``n_input``, ``source``, ``columns`` and, for mocks, ``truth``) and the
    :class:`CutReport`. Raises :class:`~deeppot_galpy.data.cuts.TooFewStarsError` if fewer than
    ``cuts.min_stars`` remain.
    """
    cuts = cuts if cuts is not None else QualityCuts()
    if isinstance(source, BaseCoordinateFrame):
        source = SkyCoord(source)
    if isinstance(source, SkyCoord):
        if frame is None and source.frame.name == "galactocentric":
            frame = FrameParameters.from_frame(source.frame)
        frame = frame if frame is not None else FrameParameters()
        if cuts.magnitude_limit is not None:
            raise ValueError(
                "a magnitude limit needs the stars' magnitudes: give a table with the "
                f"{cuts.magnitude_column!r} column, not a SkyCoord"
            )
        x, v, sel, columns = _skycoord_rows(source, frame)
        description, extra_meta = f"SkyCoord (frame {source.frame.name})", {}
        magnitude, v_cov, reobserved = None, None, None
    else:
        frame = frame if frame is not None else FrameParameters()
        wanted = {c for names in CONVENTIONS.values() for c in names} | set(_OPTIONAL)
        if cuts.magnitude_limit is not None:
            wanted.add(cuts.magnitude_column)
        table, description = _as_table(source, format, sorted(wanted))
        x, v, sel, columns, magnitude, v_cov, reobserved = _table_rows(
            table, frame, cuts, convention, assume_gaia_units
        )
        extra_meta = {}
        truth = meta_record(table.meta, "truth")
        if truth is not None:
            extra_meta["truth"] = truth
        mismatch = _frame_note(table.meta, frame)
        if mismatch:
            warnings.warn(mismatch, stacklevel=2)
            sel.report.notes.append(mismatch)

    rows = np.flatnonzero(sel.keep)
    sun = sun_position(frame)
    inside = cut_volume(sel, rows, x, sun, cuts)
    if not inside.all():
        x, v = x[inside], v[inside]
        magnitude = magnitude[inside] if magnitude is not None else None
        v_cov = v_cov[inside] if v_cov is not None else None
        reobserved = None if reobserved is None else tuple(a[inside] for a in reobserved)
    report = sel.report
    report.notes.append(_frame_summary(frame))
    sel.check_min_stars(cuts.min_stars)
    if magnitude is not None:
        distance = np.linalg.norm(x - sun, axis=1)
        completeness = Completeness.from_magnitude_limit(
            magnitude, distance, cuts.magnitude_limit, sun
        )
        extra_meta["completeness"] = completeness.to_dict()
        near, far = np.percentile(distance, [10, 90])
        rel = np.exp(np.diff(completeness.log_relative(np.array([near, far])))[0])
        report.notes.append(
            f"completeness: {completeness.description}; S falls by a factor {rel:.2f} from "
            f"{near:.2f} to {far:.2f} kpc from the Sun (the 10th and 90th percentile distances)"
        )

    if v_cov is not None:
        used = [c for c in (*_VELOCITY_ERRORS, *_CORRELATIONS) if c in columns["used"]]
        sigma = np.sqrt(np.trace(v_cov, axis1=1, axis2=2) / 3)
        if not sigma.any():
            v_cov = None  # exact velocities: nothing to subtract
            report.notes.append(f"velocity errors from {', '.join(used)}: all zero")
        else:
            how = (
                "subtract each star's velocity covariance"
                if reobserved is None
                else "extrapolate to error-free stars from the stars observed once more (every "
                "error drawn again), which takes out the distance errors' shift of the "
                "positions too"
            )
            report.notes.append(
                f"velocity errors from {', '.join(used)}: rms per axis {np.median(sigma):.3g} "
                f"km/s (median; 90th percentile {np.percentile(sigma, 90):.3g}); the fit's "
                f"Jeans moments {how}"
            )

    meta = {
        "frame": frame.to_dict(),
        "cuts": cuts.to_dict(),
        "cut_report": report.to_dict(),
        "n_input": report.n_input,
        "n_output": report.n_output,
        "source": description,
        "columns": columns,
        **extra_meta,
    }
    return PhaseSpace(x, v, Units.galactic(), meta, v_cov, reobserved), report


def _skycoord_rows(coord: SkyCoord, frame: FrameParameters):
    """Transform every row, then drop non-finite ones; returns kept x, v."""
    x, v = skycoord_to_galactocentric(coord, frame)
    sel = Selection(len(x))
    sel.note("duplicate_source_id", "not applicable: SkyCoord input has no source_id")
    sel.note("missing_radial_velocity", "not applicable: SkyCoord has radial velocities")
    names = ("x", "y", "z", "v_x", "v_y", "v_z")
    cut_non_finite(sel, {n: a for n, a in zip(names, [*x.T, *v.T], strict=True)})
    sel.note("parallax_over_error", "not applicable: SkyCoord input has no parallax")
    if sel.n_kept < len(x):
        x, v = x[sel.keep], v[sel.keep]
    return x, v, sel, {"convention": "skycoord", "frame": coord.frame.name}


def _table_rows(
    table: Table,
    frame: FrameParameters,
    cuts: QualityCuts,
    convention: str | None,
    assume_gaia_units: bool,
):
    """Cuts on the table's columns as numpy arrays, then the transform of the kept rows."""
    conv, names = _detect(table.colnames, convention)
    use_snr = conv == "gaia" and cuts.min_parallax_over_error is not None
    if use_snr and "parallax_error" not in names:
        raise ValueError(
            "the parallax S/N cut needs a parallax_error column [mas], which the catalog "
            "lacks; add it, or disable the cut with min_parallax_over_error=None"
        )
    needed = list(CONVENTIONS[conv])
    if conv != "galactocentric":  # the parallax's only with parallaxes
        needed += [
            c
            for c in (*_VELOCITY_ERRORS, *_CORRELATIONS)
            if c in names and (conv == "gaia" or "parallax" not in c)
        ]
    cols = {c: _float_column(table, names[c], c, assume_gaia_units) for c in needed}
    _check_errors(cols, names)
    if cuts.magnitude_limit is not None:
        found = _match(table.colnames, cuts.magnitude_column)
        if found is None:
            raise ValueError(
                f"the magnitude limit needs the apparent-magnitude column "
                f"{cuts.magnitude_column!r}, which the catalog lacks; name the column with "
                'magnitude_column (e.g. [cuts] magnitude_column = "phot_g_mean_mag")'
            )
        names["magnitude"] = found
        needed.append("magnitude")
        cols["magnitude"] = _float_column(table, found, "magnitude", assume_gaia_units)

    sel = Selection(len(table))
    source_id, known = None, None
    if "source_id" in names:
        source_id, known = _source_id(table, names["source_id"])
    cut_duplicates(sel, source_id, cuts, known)
    if conv == "galactocentric":
        sel.note("missing_radial_velocity", "not applicable: Cartesian velocities given")
    else:
        cut_missing_radial_velocity(sel, cols["radial_velocity"], cuts)
    cut_non_finite(sel, {names[c]: a for c, a in cols.items()})
    if conv == "gaia":
        cut_parallax(sel, cols["parallax"], cols.get("parallax_error"), cuts)
    else:
        sel.note("parallax_over_error", f"not applicable: no parallax ({conv} columns)")
    if conv == "distance":
        cut_non_positive_distance(sel, cols["distance"])
    cut_magnitude(sel, cols.get("magnitude"), cuts)

    rows = np.flatnonzero(sel.keep)
    if conv == "galactocentric":
        x = np.stack([cols[c][rows] for c in ("x", "y", "z")], axis=1)
        v = np.stack([cols[c][rows] for c in ("v_x", "v_y", "v_z")], axis=1)
    else:
        if conv == "gaia":
            # Only kept rows get a distance; the rest stay NaN and are never transformed.
            distance = np.full(len(table), np.nan)
            distance[rows] = 1.0 / (cols["parallax"][rows] - cuts.parallax_zero_point)
        else:
            distance = cols["distance"][rows]
        x, v = observables_to_galactocentric(
            cols["ra"],
            cols["dec"],
            distance,
            cols["pmra"],
            cols["pmdec"],
            cols["radial_velocity"],
            frame,
            rows=rows,
        )
    used = {c: names[c] for c in needed}
    sel.report.notes.insert(
        0,
        f"columns: {conv} convention ({', '.join(used.values())})"
        + ("; Gaia units assumed where missing" if assume_gaia_units else ""),
    )
    columns = {"convention": conv, "used": used, "assume_gaia_units": assume_gaia_units}
    magnitude = cols["magnitude"][rows] if "magnitude" in cols else None
    reobserved = None
    if conv == "gaia" and "parallax_error" in cols and cols["parallax_error"][rows].any():
        reobserved = _reobserved(cols, rows, frame, cuts.parallax_zero_point)
    v_cov = None
    if any(c in cols for c in _VELOCITY_ERRORS):
        errors = {c.removesuffix("_error"): cols[c][rows] for c in _VELOCITY_ERRORS if c in cols}
        pairs = {pair: cols[c][rows] for c, pair in _CORRELATIONS.items() if c in cols}
        d = distance[rows] if conv == "gaia" else distance
        v_cov = velocity_covariance(
            cols["ra"][rows],
            cols["dec"][rows],
            d,
            cols["pmra"][rows],
            cols["pmdec"][rows],
            errors,
            pairs,
            frame,
        )
    return x, v, sel, columns, magnitude, v_cov, reobserved
