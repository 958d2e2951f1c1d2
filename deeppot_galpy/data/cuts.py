r"""Quality and volume cuts on a star catalog, and the report of what each one removed.

Nothing is altered silently: every cut, including a disabled or inapplicable one, adds a line to
the :class:`CutReport` with the rows before it, the rows it removed, and why. No value is ever
invented: a missing radial velocity drops the star (it is never set to 0), a non-positive
parallax drops it (it is never inverted), NaN/inf/masked values in any column used drop it.

Cuts, in the order they are applied:

``duplicate_source_id``
    rows repeating a ``source_id`` seen earlier (the first is kept).
``missing_radial_velocity``
    ``radial_velocity`` NaN or masked. With ``require_radial_velocity=False`` such rows are an
    error instead: without a radial velocity a star has no 6D position.
``non_finite``
    NaN, inf or masked in any other column used.
``parallax_zero_point``
    removes nothing; the corrected parallax :math:`\varpi - \varpi_0` is used below.
``parallax_over_error``
    :math:`(\varpi - \varpi_0)/\sigma_\varpi <` ``min_parallax_over_error``. A zero
    :math:`\sigma_\varpi` (noiseless mock) passes a positive parallax; a negative one fails.
``non_positive_parallax``
    :math:`\varpi - \varpi_0 \le 0`: the distance :math:`d = 1/(\varpi - \varpi_0)` (kpc for mas)
    is undefined. Applied even when the S/N cut is disabled.
``non_positive_distance``
    the same for catalogs that give ``distance``.
``magnitude_limit``
    apparent magnitude (``magnitude_column``) fainter than the declared ``magnitude_limit``,
    or a note that none was declared. A declared limit also makes the fit correct for the
    catalog's completeness (:mod:`deeppot_galpy.completeness`).
``volume``
    stars outside :class:`Volume`.

Fewer than ``min_stars`` left raises :class:`TooFewStarsError` (a ``ValueError``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np
from astropy.table import Table

__all__ = ["CutReport", "CutStep", "QualityCuts", "TooFewStarsError", "Volume"]


def _check_keys(cls, d: dict) -> None:
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} key(s) {unknown}; allowed: {sorted(allowed)}")


@dataclass(frozen=True)
class Volume:
    """A spatial selection around the Sun or the Galactic centre, in Galactocentric axes.

    ``kind="sphere"``: :math:`|\\vec x - \\vec c| \\le` ``radius_kpc``.
    ``kind="cylinder"``: :math:`\\sqrt{(x - c_x)^2 + (y - c_y)^2} \\le` ``radius_kpc`` and
    :math:`|z - c_z| \\le` ``z_max_kpc``, the axis along Galactocentric :math:`z`.
    ``center`` is ``"sun"`` (the frame's solar position) or ``"galcen"`` (the origin).
    """

    kind: str = "sphere"
    center: str = "sun"
    radius_kpc: float = 1.0
    z_max_kpc: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("sphere", "cylinder"):
            raise ValueError(f"Volume kind must be 'sphere' or 'cylinder'; got {self.kind!r}")
        if self.center not in ("sun", "galcen"):
            raise ValueError(f"Volume center must be 'sun' or 'galcen'; got {self.center!r}")
        if not (math.isfinite(self.radius_kpc) and self.radius_kpc > 0):
            raise ValueError(f"Volume radius_kpc must be > 0; got {self.radius_kpc}")
        if self.kind == "cylinder":
            if self.z_max_kpc is None or not self.z_max_kpc > 0:
                raise ValueError(f"a cylinder Volume needs z_max_kpc > 0; got {self.z_max_kpc}")
        elif self.z_max_kpc is not None:
            raise ValueError("z_max_kpc applies to kind='cylinder' only")

    def contains(self, x: np.ndarray, sun: np.ndarray) -> np.ndarray:
        """Boolean mask of the Galactocentric positions ``x`` [kpc] (N, 3) inside the volume.

        ``sun`` is the Sun's Galactocentric position [kpc], used when ``center="sun"``.
        """
        c = np.asarray(sun) if self.center == "sun" else np.zeros(3)
        d = x - c
        if self.kind == "sphere":
            return np.einsum("ij,ij->i", d, d) <= self.radius_kpc**2
        r2 = d[:, 0] ** 2 + d[:, 1] ** 2
        return (r2 <= self.radius_kpc**2) & (np.abs(d[:, 2]) <= self.z_max_kpc)

    def describe(self) -> str:
        where = "the Sun" if self.center == "sun" else "the Galactic centre"
        if self.kind == "sphere":
            return f"sphere r <= {self.radius_kpc:g} kpc around {where}"
        return (
            f"cylinder R <= {self.radius_kpc:g} kpc, |z| <= {self.z_max_kpc:g} kpc around {where}"
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Volume:
        _check_keys(cls, d)
        return cls(**d)


@dataclass(frozen=True)
class QualityCuts:
    """Which rows of a catalog to keep (see the module docstring for each cut).

    Parameters
    ----------
    min_parallax_over_error : minimum :math:`(\\varpi - \\varpi_0)/\\sigma_\\varpi`; ``None``
        disables the cut (non-positive parallaxes are still dropped). Needs ``parallax_error``.
    parallax_zero_point : :math:`\\varpi_0` [mas], subtracted from every parallax before the S/N
        and the distance. Gaia DR3's is about -0.017 mas on average (it depends on magnitude,
        colour and position; see the ``gaiadr3-zeropoint`` package for per-star values).
    require_radial_velocity : drop rows without a radial velocity (True), or raise if any row
        lacks one (False). Never filled in.
    drop_duplicates : drop rows repeating a ``source_id`` (the first is kept).
    volume : a :class:`Volume`, or ``None`` for no spatial cut.
    magnitude_limit : the catalog's limiting apparent magnitude (e.g. 13 for a G <= 13
        sample), or ``None``. Fainter rows are dropped, and the fit corrects for the
        completeness this limit implies at each distance, estimated from the stars'
        magnitudes and distances (:class:`~deeppot_galpy.completeness.Completeness`). Declare
        the limit the catalog was actually selected by: a fainter one understates the
        correction.
    magnitude_column : the apparent-magnitude column (unit mag, or none), extinction-corrected
        where extinction matters.
    min_stars : fewer stars than this after the cuts raises :class:`TooFewStarsError`.
    """

    min_parallax_over_error: float | None = 5.0
    parallax_zero_point: float = 0.0
    require_radial_velocity: bool = True
    drop_duplicates: bool = True
    volume: Volume | None = None
    magnitude_limit: float | None = None
    magnitude_column: str = "phot_g_mean_mag"
    min_stars: int = 1000

    def __post_init__(self) -> None:
        m = self.min_parallax_over_error
        if m is not None and not (isinstance(m, int | float) and math.isfinite(m) and m >= 0):
            raise ValueError(f"min_parallax_over_error must be None or a number >= 0; got {m!r}")
        if not math.isfinite(self.parallax_zero_point):
            raise ValueError("parallax_zero_point must be finite (mas)")
        for name in ("require_radial_velocity", "drop_duplicates"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False; got {getattr(self, name)!r}")
        if isinstance(self.volume, dict):
            object.__setattr__(self, "volume", Volume.from_dict(self.volume))
        if self.volume is not None and not isinstance(self.volume, Volume):
            raise ValueError(f"volume must be a Volume, a dict or None; got {self.volume!r}")
        m_lim = self.magnitude_limit
        if m_lim is not None and not (isinstance(m_lim, int | float) and math.isfinite(m_lim)):
            raise ValueError(f"magnitude_limit must be None or a finite magnitude; got {m_lim!r}")
        column = self.magnitude_column
        if not (isinstance(column, str) and column):
            raise ValueError(f"magnitude_column must be a column name; got {column!r}")
        if isinstance(self.min_stars, bool) or not isinstance(self.min_stars, int):
            raise ValueError(f"min_stars must be an integer; got {self.min_stars!r}")
        if self.min_stars < 1:
            raise ValueError(f"min_stars must be >= 1; got {self.min_stars}")

    def to_dict(self) -> dict:
        """JSON-safe; ``parallax_zero_point`` in mas, the volume as a dict or None."""
        d = asdict(self)
        d["volume"] = self.volume.to_dict() if self.volume is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> QualityCuts:
        """Inverse of :meth:`to_dict`. Missing keys take the defaults; unknown keys raise.

        TOML has no null: ``min_parallax_over_error = false`` and ``volume = false`` disable.
        """
        _check_keys(cls, d)
        d = dict(d)
        for name in ("min_parallax_over_error", "volume", "magnitude_limit"):
            if d.get(name, None) is False:
                d[name] = None
        return cls(**d)


@dataclass(frozen=True)
class CutStep:
    """One line of a :class:`CutReport`."""

    name: str
    reason: str
    before: int
    removed: int

    @property
    def after(self) -> int:
        return self.before - self.removed


class CutReport:
    """What each cut removed, in order, plus free-text notes (column convention, frame, ...)."""

    def __init__(self, n_input: int):
        self.n_input = int(n_input)
        self.steps: list[CutStep] = []
        self.notes: list[str] = []

    def add(self, name: str, reason: str, removed: int) -> None:
        self.steps.append(CutStep(name, reason, self.n_output, int(removed)))

    @property
    def n_output(self) -> int:
        return self.steps[-1].after if self.steps else self.n_input

    def __len__(self) -> int:
        return len(self.steps)

    def __repr__(self) -> str:
        return f"CutReport(n_input={self.n_input}, n_output={self.n_output}, {len(self)} cuts)"

    def __str__(self) -> str:
        head = ("cut", "before", "removed", "after", "reason")
        rows = [
            (s.name, f"{s.before:,}", f"{s.removed:,}", f"{s.after:,}", s.reason)
            for s in self.steps
        ]
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]

        def line(r):
            cells = [r[0].ljust(widths[0])] + [
                c.rjust(w) for c, w in zip(r[1:4], widths[1:], strict=True)
            ]
            return "  ".join([*cells, r[4]]).rstrip()

        frac = self.n_output / self.n_input if self.n_input else 0.0
        out = [
            f"Catalog cuts: {self.n_input:,} rows in, {self.n_output:,} kept ({frac:.1%})",
            line(head),
            line(tuple("-" * len(h) for h in head)),
        ]
        out += [line(r) for r in rows]
        out += [f"note: {n}" for n in self.notes]
        return "\n".join(out)

    def to_dict(self) -> dict:
        return {
            "n_input": self.n_input,
            "n_output": self.n_output,
            "steps": [{**asdict(s), "after": s.after} for s in self.steps],
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, d: dict) -> CutReport:
        report = cls(d["n_input"])
        for s in d["steps"]:
            report.steps.append(CutStep(s["name"], s["reason"], s["before"], s["removed"]))
        report.notes = list(d.get("notes", []))
        return report

    def to_table(self) -> Table:
        """An astropy Table with columns name, reason, before, removed, after."""
        return Table(
            rows=[(s.name, s.reason, s.before, s.removed, s.after) for s in self.steps],
            names=("name", "reason", "before", "removed", "after"),
            dtype=(str, str, np.int64, np.int64, np.int64),
        )


class TooFewStarsError(ValueError):
    """Fewer stars than ``QualityCuts.min_stars`` survived; ``.report`` says where they went."""

    def __init__(self, n_left: int, need: int, report: CutReport):
        self.report = report
        super().__init__(
            f"table after cuts too small to fit: {n_left} stars left, need >= {need} "
            f"(QualityCuts.min_stars)\n{report}"
        )


class Selection:
    """The rows still kept (a boolean mask over the input) and the report of each cut."""

    def __init__(self, n_input: int):
        self.keep = np.ones(n_input, dtype=bool)
        self.report = CutReport(n_input)

    @property
    def n_kept(self) -> int:
        return self.report.n_output

    def drop(self, name: str, reason: str, fail: np.ndarray) -> None:
        """Drop the kept rows where ``fail`` is true (a mask over all input rows)."""
        newly = fail & self.keep
        self.keep &= ~newly
        self.report.add(name, reason, np.count_nonzero(newly))

    def drop_index(self, name: str, reason: str, index: np.ndarray) -> None:
        """Drop the input rows ``index``, all of which must currently be kept."""
        self.keep[index] = False
        self.report.add(name, reason, len(index))

    def note(self, name: str, reason: str) -> None:
        """A cut that removes nothing (disabled, not applicable, or a correction)."""
        self.report.add(name, reason, 0)

    def check_min_stars(self, min_stars: int) -> None:
        if self.n_kept < min_stars:
            raise TooFewStarsError(self.n_kept, min_stars, self.report)


def cut_duplicates(
    sel: Selection,
    source_id: np.ndarray | None,
    cuts: QualityCuts,
    known: np.ndarray | None = None,
) -> None:
    """Drop repeats of a ``source_id``; rows where ``known`` is false (masked id) never repeat."""
    name = "duplicate_source_id"
    if not cuts.drop_duplicates:
        sel.note(name, "disabled (drop_duplicates=False)")
        return
    if source_id is None:
        sel.note(name, "not applied: no source_id column")
        return
    idx = np.arange(len(source_id)) if known is None else np.flatnonzero(known)
    first = np.unique(source_id[idx], return_index=True)[1]
    repeat = np.zeros(len(source_id), dtype=bool)
    repeat[idx] = True
    repeat[idx[first]] = False
    sel.drop(name, "source_id seen in an earlier row (first kept)", repeat)


def cut_missing_radial_velocity(sel: Selection, rv: np.ndarray, cuts: QualityCuts) -> None:
    name = "missing_radial_velocity"
    missing = np.isnan(rv)
    if cuts.require_radial_velocity:
        sel.drop(name, "radial_velocity NaN or masked (never filled in)", missing)
        return
    n = int(np.count_nonzero(missing & sel.keep))
    if n:
        raise ValueError(
            f"{n} rows have no radial_velocity (NaN or masked) and require_radial_velocity="
            "False: a 6D position needs one and none is invented; set "
            "require_radial_velocity=True to drop (and report) those rows"
        )
    sel.note(name, "none missing (require_radial_velocity=False)")


def cut_non_finite(sel: Selection, columns: dict[str, np.ndarray]) -> None:
    fail = np.zeros(len(sel.keep), dtype=bool)
    counts = []
    for col, values in columns.items():
        bad = ~np.isfinite(values)
        n = int(np.count_nonzero(bad & sel.keep))
        if n:
            counts.append(f"{col} ({n:,})")
        fail |= bad
    detail = ", ".join(counts) if counts else "none"
    sel.drop("non_finite", f"NaN/inf/masked in: {detail}", fail)


def cut_parallax(
    sel: Selection, parallax: np.ndarray, parallax_error: np.ndarray | None, cuts: QualityCuts
) -> None:
    """Zero point, S/N and positivity cuts on ``parallax`` [mas] (see the module docstring)."""
    zp = cuts.parallax_zero_point
    sel.note("parallax_zero_point", f"parallax - ({zp:g} mas) used for S/N and distance")
    corrected = parallax - zp
    non_positive = ~(corrected > 0)
    m = cuts.min_parallax_over_error
    if m is None:
        sel.note("parallax_over_error", "disabled (min_parallax_over_error=None)")
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            snr = corrected / parallax_error
        fail = ~(snr >= m) | (parallax_error < 0)
        n_np = int(np.count_nonzero(non_positive & sel.keep))
        n_neg_err = int(np.count_nonzero((parallax_error < 0) & sel.keep))
        reason = f"(parallax - zp)/parallax_error < {m:g} (of these, {n_np:,} parallax - zp <= 0"
        if n_neg_err:
            reason += f", {n_neg_err:,} parallax_error < 0"
        reason += ")"
        sel.drop("parallax_over_error", reason, fail)
    sel.drop(
        "non_positive_parallax",
        "parallax - zp <= 0: distance undefined (never inverted)",
        non_positive,
    )


def cut_non_positive_distance(sel: Selection, distance: np.ndarray) -> None:
    sel.drop("non_positive_distance", "distance <= 0", ~(distance > 0))


def cut_magnitude(sel: Selection, magnitude: np.ndarray | None, cuts: QualityCuts) -> None:
    """Drop rows fainter than ``cuts.magnitude_limit`` (or note that none is declared)."""
    if cuts.magnitude_limit is None or magnitude is None:
        sel.note("magnitude_limit", "none declared: no completeness correction")
        return
    sel.drop(
        "magnitude_limit",
        f"{cuts.magnitude_column} > {cuts.magnitude_limit:g} (the declared limit; the fit "
        "corrects for the completeness it implies)",
        magnitude > cuts.magnitude_limit,
    )


def cut_volume(
    sel: Selection, rows: np.ndarray, x: np.ndarray, sun: np.ndarray, cuts: QualityCuts
) -> np.ndarray:
    """Apply ``cuts.volume`` to the kept input ``rows`` at positions ``x``; mask of those kept."""
    if cuts.volume is None:
        sel.note("volume", "disabled (volume=None)")
        return np.ones(len(rows), dtype=bool)
    inside = cuts.volume.contains(x, sun)
    sel.drop_index("volume", f"outside {cuts.volume.describe()}", rows[~inside])
    return inside
