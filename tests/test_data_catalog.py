"""catalog_to_phasespace: conventions, units, cuts and their report (deeppot_galpy.data)."""

import json
import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import Galactic, Galactocentric, SkyCoord
from astropy.table import MaskedColumn, QTable, Table

from deeppot_galpy.data import (
    CutReport,
    FrameParameters,
    QualityCuts,
    TooFewStarsError,
    Volume,
    catalog_to_phasespace,
    galactocentric_to_observables,
    sun_position,
)
from deeppot_galpy.units import Units

KMS = u.km / u.s
MASYR = u.mas / u.yr
LOOSE = QualityCuts(min_stars=1)


def _stars(n=300, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 3.0, (n, 3)), rng.normal(0.0, 150.0, (n, 3))


def _gaia_table(x, v, frame=None):
    """Exact Gaia-named observables of x, v, with a tiny parallax error (S/N >> 5)."""
    obs = galactocentric_to_observables(x, v, frame or FrameParameters())
    t = Table()
    t["source_id"] = np.arange(len(x), dtype=np.int64) + 100
    t["ra"] = obs["ra"] * u.deg
    t["dec"] = obs["dec"] * u.deg
    t["parallax"] = 1.0 / obs["distance"] * u.mas
    t["parallax_error"] = np.full(len(x), 1e-3) * u.mas
    t["pmra"] = obs["pmra"] * MASYR
    t["pmdec"] = obs["pmdec"] * MASYR
    t["radial_velocity"] = obs["radial_velocity"] * KMS
    return t


def _step(report, name):
    (step,) = [s for s in report.steps if s.name == name]
    return step


@pytest.fixture(scope="module")
def stars():
    return _stars()


def test_gaia_table_recovers_positions_and_records_meta(stars):
    x, v = stars
    ps, report = catalog_to_phasespace(_gaia_table(x, v), cuts=LOOSE)
    np.testing.assert_allclose(ps.x, x, atol=1e-10)
    np.testing.assert_allclose(ps.v, v, atol=1e-8)
    assert ps.units == Units.galactic()
    assert report.n_input == report.n_output == len(x)
    meta = ps.meta
    assert meta["frame"] == FrameParameters().to_dict()
    assert meta["cuts"] == LOOSE.to_dict()
    assert meta["cut_report"] == report.to_dict()
    assert meta["n_input"] == len(x)
    assert meta["columns"]["convention"] == "gaia"
    assert meta["source"].startswith("Table")
    json.dumps(meta)


def test_non_default_frame_is_used_and_recorded(stars):
    x, v = stars
    other = FrameParameters(galcen_distance=8.3, z_sun=25.0, galcen_v_sun=(11.1, 232.2, 7.3))
    table = _gaia_table(x, v, other)
    ps_other, _ = catalog_to_phasespace(table, frame=other, cuts=LOOSE)
    np.testing.assert_allclose(ps_other.x, x, atol=1e-10)
    assert ps_other.meta["frame"] == other.to_dict()
    ps_default, _ = catalog_to_phasespace(table, cuts=LOOSE)
    assert np.abs(ps_default.x - x).max() > 0.1
    assert ps_default.meta["frame"] == FrameParameters().to_dict()


def test_recorded_frame_mismatch_warns(stars):
    x, v = stars
    table = _gaia_table(x, v)
    table.meta["frame"] = FrameParameters(galcen_distance=8.0).to_dict()
    with pytest.warns(UserWarning, match="records frame"):
        _, report = catalog_to_phasespace(table, cuts=LOOSE)
    assert any("records frame" in n for n in report.notes)


def test_distance_and_galactocentric_conventions(stars):
    x, v = stars
    gaia = _gaia_table(x, v)
    dist = Table(gaia, copy=True)
    dist["distance"] = (1.0 / gaia["parallax"]) * 1000.0 * u.pc / u.mas
    del dist["parallax"], dist["parallax_error"]
    ps, report = catalog_to_phasespace(dist, cuts=LOOSE)
    assert ps.meta["columns"]["convention"] == "distance"
    np.testing.assert_allclose(ps.x, x, atol=1e-10)
    assert "not applicable" in _step(report, "parallax_over_error").reason

    cart = QTable({n: x[:, i] * u.kpc for i, n in enumerate("xyz")})
    for i, n in enumerate(("v_x", "v_y", "v_z")):
        cart[n] = v[:, i] * 1000.0 * u.m / u.s
    ps, _ = catalog_to_phasespace(cart, cuts=LOOSE)
    assert ps.meta["columns"]["convention"] == "galactocentric"
    np.testing.assert_array_equal(ps.x, x)
    np.testing.assert_allclose(ps.v, v, rtol=1e-14)


def test_convention_override_and_case_insensitive_names(stars):
    x, v = stars
    t = _gaia_table(x, v)
    t["distance"] = (1.0 / t["parallax"].data) * u.kpc
    t.rename_column("ra", "RA")
    ps, _ = catalog_to_phasespace(t, cuts=LOOSE, convention="distance")
    assert ps.meta["columns"]["used"]["ra"] == "RA"
    assert ps.meta["columns"]["convention"] == "distance"
    with pytest.raises(ValueError, match="unknown convention"):
        catalog_to_phasespace(t, convention="heliocentric")


def test_missing_column_lists_conventions(stars):
    t = _gaia_table(*stars)
    del t["radial_velocity"]
    with pytest.raises(ValueError, match="missing radial_velocity") as err:
        catalog_to_phasespace(t, cuts=LOOSE)
    for name in ("gaia", "distance", "galactocentric", "v_x"):
        assert name in str(err.value)


def test_column_without_units_names_column_and_unit(stars):
    t = _gaia_table(*stars)
    t["pmdec"].unit = None
    with pytest.raises(ValueError, match=r"'pmdec' has no unit; expected mas / yr"):
        catalog_to_phasespace(t, cuts=LOOSE)
    ps, report = catalog_to_phasespace(t, cuts=LOOSE, assume_gaia_units=True)
    assert len(ps) == len(t)
    assert ps.meta["columns"]["assume_gaia_units"] is True
    t["parallax"].unit = u.km
    with pytest.raises(ValueError, match="'parallax' has unit km, not convertible to mas"):
        catalog_to_phasespace(t, cuts=LOOSE)


def test_cartesian_column_without_units_is_an_error_even_assuming_gaia(stars):
    x, v = stars
    t = Table({n: x[:, i] for i, n in enumerate("xyz")})
    for i, n in enumerate(("v_x", "v_y", "v_z")):
        t[n] = v[:, i] * KMS
    with pytest.raises(ValueError, match="'x' has no unit; expected a length unit"):
        catalog_to_phasespace(t, cuts=LOOSE, assume_gaia_units=True)


def test_nan_and_inf_rows_are_reported_and_dropped(stars):
    x, v = stars
    t = _gaia_table(x, v)
    t["pmra"][[3, 7]] = np.nan
    t["ra"][11] = np.inf
    ps, report = catalog_to_phasespace(t, cuts=LOOSE)
    step = _step(report, "non_finite")
    assert step.removed == 3
    assert "pmra (2)" in step.reason and "ra (1)" in step.reason
    keep = np.setdiff1d(np.arange(len(x)), [3, 7, 11])
    np.testing.assert_allclose(ps.x, x[keep], atol=1e-10)


def test_non_positive_parallax_is_dropped_never_inverted(stars):
    x, v = stars
    t = _gaia_table(x, v)
    t["parallax"][[0, 1]] = [-0.2, 0.0]
    _, report = catalog_to_phasespace(t, cuts=LOOSE)
    snr = _step(report, "parallax_over_error")
    assert snr.removed == 2 and "2 parallax - zp <= 0" in snr.reason
    assert _step(report, "non_positive_parallax").removed == 0

    no_snr = QualityCuts(min_parallax_over_error=None, min_stars=1)
    ps, report = catalog_to_phasespace(t, cuts=no_snr)
    assert _step(report, "parallax_over_error").reason.startswith("disabled")
    assert _step(report, "non_positive_parallax").removed == 2
    np.testing.assert_allclose(ps.x, x[2:], atol=1e-10)


def test_parallax_snr_cut_and_zero_point(stars):
    x, v = stars
    t = _gaia_table(x, v)
    t["parallax_error"][:10] = 1.0  # S/N < 1 for stars farther than 1 kpc
    _, report = catalog_to_phasespace(t, cuts=LOOSE)
    assert _step(report, "parallax_over_error").removed == 10

    zp = -0.02
    ps, report = catalog_to_phasespace(t, cuts=QualityCuts(parallax_zero_point=zp, min_stars=1))
    assert "-0.02 mas" in _step(report, "parallax_zero_point").reason
    d_true = 1.0 / t["parallax"][10:].value
    d_used = np.linalg.norm(ps.x - sun_position(FrameParameters()), axis=1)
    np.testing.assert_allclose(d_used, 1.0 / (1.0 / d_true - zp), rtol=1e-9)


def test_missing_parallax_error_needs_snr_disabled(stars):
    t = _gaia_table(*stars)
    del t["parallax_error"]
    with pytest.raises(ValueError, match="parallax_error"):
        catalog_to_phasespace(t, cuts=LOOSE)
    ps, _ = catalog_to_phasespace(t, cuts=QualityCuts(min_parallax_over_error=None, min_stars=1))
    assert len(ps) == len(t)


def test_missing_radial_velocity_nan_or_masked_is_dropped(stars):
    x, v = stars
    t = _gaia_table(x, v)
    rv = MaskedColumn(t["radial_velocity"], mask=np.zeros(len(t), bool))
    rv[5] = np.nan
    rv.mask[[8, 9]] = True
    t["radial_velocity"] = rv
    ps, report = catalog_to_phasespace(t, cuts=LOOSE)
    assert _step(report, "missing_radial_velocity").removed == 3
    assert _step(report, "non_finite").removed == 0
    keep = np.setdiff1d(np.arange(len(x)), [5, 8, 9])
    np.testing.assert_allclose(ps.v, v[keep], atol=1e-8)
    with pytest.raises(ValueError, match="3 rows have no radial_velocity"):
        catalog_to_phasespace(t, cuts=QualityCuts(require_radial_velocity=False, min_stars=1))


def test_masked_quantity_in_qtable(stars):
    t = QTable(_gaia_table(*stars), masked=True)
    t["pmra"].mask[4] = True
    _, report = catalog_to_phasespace(t, cuts=LOOSE)
    assert _step(report, "non_finite").removed == 1


def test_duplicate_source_id_keeps_first(stars):
    x, v = stars
    t = _gaia_table(x, v)
    t["source_id"][[10, 20, 21]] = t["source_id"][0]
    ps, report = catalog_to_phasespace(t, cuts=LOOSE)
    assert _step(report, "duplicate_source_id").removed == 3
    np.testing.assert_allclose(ps.x[0], x[0], atol=1e-10)
    assert len(ps) == len(x) - 3
    _, report = catalog_to_phasespace(t, cuts=QualityCuts(drop_duplicates=False, min_stars=1))
    assert _step(report, "duplicate_source_id").reason.startswith("disabled")
    del t["source_id"]
    _, report = catalog_to_phasespace(t, cuts=LOOSE)
    assert "no source_id" in _step(report, "duplicate_source_id").reason


def test_empty_and_too_small_tables(stars):
    t = _gaia_table(*stars)
    with pytest.raises(ValueError, match="empty"):
        catalog_to_phasespace(t[:0])
    with pytest.raises(TooFewStarsError) as err:
        catalog_to_phasespace(t)  # default min_stars = 1000 > 300
    msg = str(err.value)
    assert "table after cuts too small to fit: 300 stars left, need >= 1000" in msg
    assert "parallax_over_error" in msg  # the report comes with the error
    assert isinstance(err.value, ValueError)
    assert err.value.report.n_output == 300


def test_volume_cuts(stars):
    x, v = stars
    t = _gaia_table(x, v)
    frame = FrameParameters()
    sun = sun_position(frame)
    sphere = Volume(kind="sphere", center="sun", radius_kpc=7.0)
    ps, report = catalog_to_phasespace(t, cuts=QualityCuts(volume=sphere, min_stars=1))
    inside = np.linalg.norm(x - sun, axis=1) <= 7.0
    assert _step(report, "volume").removed == (~inside).sum() > 0
    np.testing.assert_allclose(ps.x, x[inside], atol=1e-10)

    cyl = Volume(kind="cylinder", center="galcen", radius_kpc=4.0, z_max_kpc=2.0)
    ps, report = catalog_to_phasespace(t, cuts=QualityCuts(volume=cyl, min_stars=1))
    inside = (np.hypot(x[:, 0], x[:, 1]) <= 4.0) & (np.abs(x[:, 2]) <= 2.0)
    assert len(ps) == inside.sum() and "cylinder" in _step(report, "volume").reason


def test_quality_cuts_dict_round_trip_and_validation():
    cuts = QualityCuts(
        min_parallax_over_error=None,
        parallax_zero_point=-0.017,
        volume=Volume("cylinder", "sun", 1.0, 0.5),
        min_stars=10,
    )
    assert QualityCuts.from_dict(json.loads(json.dumps(cuts.to_dict()))) == cuts
    toml_like = {"min_parallax_over_error": False, "volume": False}
    assert QualityCuts.from_dict(toml_like).min_parallax_over_error is None
    assert QualityCuts.from_dict({"volume": {"radius_kpc": 2.0}}).volume == Volume(radius_kpc=2.0)
    with pytest.raises(ValueError, match="min_snr"):
        QualityCuts.from_dict({"min_snr": 5})
    with pytest.raises(ValueError, match="cylinder Volume needs z_max_kpc"):
        Volume(kind="cylinder", radius_kpc=1.0)
    with pytest.raises(ValueError, match="center"):
        Volume(center="earth")
    with pytest.raises(ValueError, match="min_stars"):
        QualityCuts(min_stars=0)


def test_report_formats(stars):
    t = _gaia_table(*stars)
    t["pmra"][0] = np.nan
    _, report = catalog_to_phasespace(t, cuts=LOOSE)
    text = str(report)
    lines = text.splitlines()
    assert lines[0].startswith("Catalog cuts: 300 rows in, 299 kept")
    # aligned: every row's reason starts where the header's does, after right-aligned counts
    col = lines[1].index("reason")
    for line, step in zip(lines[3 : 3 + len(report)], report.steps, strict=True):
        assert line[col:].startswith(step.reason)
        assert line[:col].rstrip().endswith(f"{step.after:,}")
    for s in report.steps:
        assert s.name in text
    table = report.to_table()
    assert list(table["removed"]) == [s.removed for s in report.steps]
    assert CutReport.from_dict(json.loads(json.dumps(report.to_dict()))).to_dict() == (
        report.to_dict()
    )


def _galactocentric_skycoord(x, v, frame):
    return SkyCoord(
        Galactocentric(
            x=x[:, 0] * u.kpc,
            y=x[:, 1] * u.kpc,
            z=x[:, 2] * u.kpc,
            v_x=v[:, 0] * KMS,
            v_y=v[:, 1] * KMS,
            v_z=v[:, 2] * KMS,
            **{k: getattr(frame.to_frame(), k) for k in Galactocentric.frame_attributes},
        )
    )


def test_skycoord_input_in_galactic_frame(stars):
    x, v = stars
    galactic = _galactocentric_skycoord(x, v, FrameParameters()).transform_to(Galactic())
    ps, report = catalog_to_phasespace(galactic, cuts=LOOSE)
    np.testing.assert_allclose(ps.x, x, atol=1e-10)
    np.testing.assert_allclose(ps.v, v, atol=1e-8)
    assert ps.meta["source"] == "SkyCoord (frame galactic)"
    assert report.n_output == len(x)


def test_skycoord_in_galactocentric_frame_keeps_its_frame(stars):
    x, v = stars
    other = FrameParameters(galcen_distance=8.0, z_sun=0.0)
    ps, _ = catalog_to_phasespace(_galactocentric_skycoord(x, v, other), cuts=LOOSE)
    assert ps.meta["frame"] == other.to_dict()
    np.testing.assert_allclose(ps.x, x, atol=1e-12)


def test_skycoord_nan_rows_are_reported(stars):
    x, v = stars
    v = v.copy()
    v[2, 1] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ps, report = catalog_to_phasespace(
            _galactocentric_skycoord(x, v, FrameParameters()), cuts=LOOSE
        )
    assert _step(report, "non_finite").removed == 1 and len(ps) == len(x) - 1


def test_magnitude_limit_drops_fainter_rows_and_records_the_completeness():
    rng = np.random.default_rng(3)
    x = sun_position(FrameParameters()) + rng.normal(0.0, 0.5, (2000, 3))
    v = rng.normal(0.0, 40.0, (2000, 3))
    t = _gaia_table(x, v)
    d = np.linalg.norm(x - sun_position(FrameParameters()), axis=1)
    t["phot_g_mean_mag"] = rng.normal(1.5, 1.5, len(t)) + 5 * np.log10(100 * d)  # no unit
    t["phot_g_mean_mag"][5] = np.nan
    cuts = QualityCuts(magnitude_limit=12.0, min_stars=1)
    ps, report = catalog_to_phasespace(t, cuts=cuts)
    fainter = np.asarray(t["phot_g_mean_mag"]) > 12.0
    assert _step(report, "magnitude_limit").removed == fainter.sum() > 0
    assert "phot_g_mean_mag (1)" in _step(report, "non_finite").reason
    assert len(ps) == 2000 - fainter.sum() - 1
    record = ps.meta["completeness"]
    np.testing.assert_allclose(record["center_kpc"], sun_position(FrameParameters()))
    assert "m <= 12" in record["description"] and any("completeness" in n for n in report.notes)
    # undeclared: nothing dropped, no completeness, and the report says so
    ps, report = catalog_to_phasespace(t, cuts=LOOSE)
    assert "none declared" in _step(report, "magnitude_limit").reason
    assert "completeness" not in ps.meta and len(ps) == 2000


def test_magnitude_limit_needs_the_magnitude_column(stars):
    x, v = stars
    cuts = QualityCuts(magnitude_limit=12.0, min_stars=1)
    with pytest.raises(ValueError, match="apparent-magnitude column 'phot_g_mean_mag'"):
        catalog_to_phasespace(_gaia_table(x, v), cuts=cuts)
    with pytest.raises(ValueError, match="magnitude_limit must be"):
        QualityCuts(magnitude_limit=float("nan"))
    assert QualityCuts.from_dict({"magnitude_limit": False}).magnitude_limit is None
