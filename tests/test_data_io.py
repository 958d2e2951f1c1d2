"""Catalog files: each format round trips, bad files fail clearly (deeppot_galpy.data.catalog)."""

import numpy as np
import pytest
from astropy.table import Table

from deeppot_galpy.data import (
    GaiaErrorModel,
    QualityCuts,
    catalog_to_phasespace,
    make_gaia_mock,
    read_catalog,
    truth_potential,
    write_gaia_mock,
)

N = 400
CUTS = QualityCuts(min_stars=1)
MOCK = {"n": N, "seed": 3, "errors": GaiaErrorModel()}


@pytest.fixture(scope="module")
def reference():
    """The in-memory result every file format must reproduce."""
    return catalog_to_phasespace(make_gaia_mock(**MOCK), cuts=CUTS)


@pytest.mark.parametrize("ext", ["ecsv", "fits", "parquet", "h5"])
def test_format_round_trip(tmp_path, reference, ext):
    path = tmp_path / f"mock.{ext}"
    written = write_gaia_mock(path, **MOCK)
    table = read_catalog(path)
    assert len(table) == N
    assert str(table["pmra"].unit) == "mas / yr"
    np.testing.assert_array_equal(np.asarray(table["parallax"]), np.asarray(written["parallax"]))
    ps, report = catalog_to_phasespace(path, cuts=CUTS)
    ps_ref, report_ref = reference
    np.testing.assert_array_equal(ps.x, ps_ref.x)
    np.testing.assert_array_equal(ps.v, ps_ref.v)
    assert report.to_dict()["steps"] == report_ref.to_dict()["steps"]
    assert ps.meta["source"] == str(path)
    # the truth survives the file (as JSON text in FITS headers)
    assert ps.meta["truth"] == written.meta["truth"]
    assert truth_potential(table) is not None


def test_csv_has_no_units(tmp_path, reference):
    path = tmp_path / "mock.csv"
    write_gaia_mock(path, **MOCK)
    with pytest.raises(ValueError, match="column 'ra' has no unit; expected deg"):
        catalog_to_phasespace(path, cuts=CUTS)
    ps, _ = catalog_to_phasespace(path, cuts=CUTS, assume_gaia_units=True)
    np.testing.assert_allclose(ps.x, reference[0].x, rtol=1e-12, atol=1e-12)


def test_format_override(tmp_path):
    path = tmp_path / "mock.txt"
    write_gaia_mock(path, format="ecsv", n=20)
    with pytest.raises(ValueError, match="cannot tell the format"):
        read_catalog(path)
    assert len(read_catalog(path, format="ecsv")) == 20


def test_parquet_reads_only_needed_columns(tmp_path):
    path = tmp_path / "mock.parquet"
    table = make_gaia_mock(30)
    table["phot_g_mean_mag"] = np.full(30, 15.0)
    table.write(path)
    subset = read_catalog(path, columns=["ra", "DEC", "parallax", "absent"])
    assert subset.colnames == ["ra", "dec", "parallax"]


def test_missing_unreadable_and_empty_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_catalog(tmp_path / "nope.fits")
    with pytest.raises(FileNotFoundError):
        catalog_to_phasespace(tmp_path / "nope.ecsv")
    bad = tmp_path / "bad.fits"
    bad.write_bytes(b"this is not a FITS file" * 10)
    with pytest.raises(ValueError, match="cannot read .*bad.fits as fits"):
        read_catalog(bad)
    empty = tmp_path / "empty.ecsv"
    make_gaia_mock(5)[:0].write(empty)
    with pytest.raises(ValueError, match="empty"):
        read_catalog(empty)
    with pytest.raises(ValueError, match="not a file"):
        read_catalog(tmp_path)


def test_source_types(tmp_path):
    with pytest.raises(TypeError, match="path, an astropy Table"):
        catalog_to_phasespace(np.zeros((10, 6)))
    path = tmp_path / "small.ecsv"
    write_gaia_mock(path, n=10)
    assert isinstance(read_catalog(str(path)), Table)
