"""Gaia-like mocks: known truth, exact or noisy observables (deeppot_galpy.data.gaia_mock)."""

import astropy.units as u
import numpy as np
import pytest
from astropy.constants import G
from galpy.potential import evaluatePotentials, evaluateRforces

from deeppot_galpy.data import (
    FrameParameters,
    GaiaErrorModel,
    QualityCuts,
    catalog_to_phasespace,
    make_gaia_mock,
    sample_model,
    truth_potential,
)

G_KPC = G.to_value(u.kpc * (u.km / u.s) ** 2 / u.Msun)


def test_columns_units_and_meta():
    t = make_gaia_mock(50, seed=1)
    expected = {
        "source_id": None,
        "ra": "deg",
        "dec": "deg",
        "parallax": "mas",
        "parallax_error": "mas",
        "pmra": "mas / yr",
        "pmra_error": "mas / yr",
        "pmdec": "mas / yr",
        "pmdec_error": "mas / yr",
        "radial_velocity": "km / s",
        "radial_velocity_error": "km / s",
    }
    assert t.colnames == list(expected)
    for name, unit in expected.items():
        assert (t[name].unit is None) if unit is None else (str(t[name].unit) == unit)
    assert len(np.unique(t["source_id"])) == 50
    assert t.meta["truth"]["model"] == "plummer_mw"
    assert t.meta["truth"]["params"] == {"mass_msun": 1e11, "b_kpc": 3.0}
    assert t.meta["truth"]["units"]["length"] == "kpc"
    assert t.meta["frame"] == FrameParameters().to_dict()
    assert t.meta["errors"] is None
    assert np.all(t["parallax_error"] == 0)


def test_noiseless_mock_recovers_the_sample():
    frame = FrameParameters(galcen_distance=8.2, z_sun=0.0)
    t = make_gaia_mock(300, seed=2, frame=frame)
    x, v, _ = sample_model(300, seed=2)
    ps, report = catalog_to_phasespace(t, frame=frame, cuts=QualityCuts(min_stars=1))
    assert report.n_output == 300
    np.testing.assert_allclose(ps.x, x, atol=1e-10)
    np.testing.assert_allclose(ps.v, v, atol=1e-8)
    assert ps.meta["truth"] == t.meta["truth"]


def test_errors_have_the_stated_widths_and_same_stars():
    errors = GaiaErrorModel(parallax_mas=0.05, pm_mas_yr=0.1, radial_velocity_kms=2.0)
    exact = make_gaia_mock(4000, seed=4)
    noisy = make_gaia_mock(4000, seed=4, errors=errors)
    for name, width in [
        ("parallax", 0.05),
        ("pmra", 0.1),
        ("pmdec", 0.1),
        ("radial_velocity", 2.0),
    ]:
        d = np.asarray(noisy[name]) - np.asarray(exact[name])
        assert np.std(d) == pytest.approx(width, rel=0.05)
        assert np.all(noisy[f"{name}_error"] == width)
    assert np.array_equal(noisy["ra"], exact["ra"])
    assert noisy.meta["errors"] == errors.to_dict()
    assert (noisy["parallax"] <= 0).sum() > 0  # far stars scatter to negative parallax


def test_seeded_and_leaves_global_numpy_state_alone():
    # galpy draws from numpy's global generator; the mock must hand its state back.
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    a = make_gaia_mock(20, seed=9)
    assert np.array_equal(np.random.get_state()[1], before)  # noqa: NPY002
    b = make_gaia_mock(20, seed=9)
    c = make_gaia_mock(20, seed=10)
    assert np.array_equal(a["ra"], b["ra"]) and not np.array_equal(a["ra"], c["ra"])


@pytest.mark.parametrize(
    ("model", "params", "v2", "phi"),
    [
        # virial theorem: <v^2> = 3 pi G M / (32 b); Phi = -GM / sqrt(r^2 + b^2)
        (
            "plummer_mw",
            {"mass_msun": 1e11, "b_kpc": 3.0},
            3 * np.pi * G_KPC * 1e11 / (32 * 3.0),
            lambda r: -G_KPC * 1e11 / np.hypot(r, 3.0),
        ),
        # <v^2> = G M / (6 a); Phi = -GM / (r + a)
        (
            "hernquist_mw",
            {"mass_msun": 5e10, "a_kpc": 2.0},
            G_KPC * 5e10 / (6 * 2.0),
            lambda r: -G_KPC * 5e10 / (r + 2.0),
        ),
    ],
)
def test_truth_matches_sample_and_potential(model, params, v2, phi):
    x, v, truth = sample_model(20000, model=model, seed=5, params=params)
    assert np.mean(np.sum(v**2, axis=1)) == pytest.approx(v2, rel=0.05)
    pot = truth_potential(truth)
    r = np.array([0.5, 3.0, 20.0])
    got = evaluatePotentials(pot, r * u.kpc, 0.0 * u.kpc, quantity=True)
    np.testing.assert_allclose(got.to_value(u.km**2 / u.s**2), phi(r), rtol=1e-10)
    assert truth_potential(model, **params)(3.0 * u.kpc, 0 * u.kpc) == pytest.approx(
        pot(3.0 * u.kpc, 0 * u.kpc)
    )
    # inward radial force: Rforce < 0 in galpy's sign convention (a force, not a gradient)
    assert evaluateRforces(pot, 3.0 * u.kpc, 0.0 * u.kpc) < 0


def test_bad_model_and_params():
    with pytest.raises(ValueError, match="unknown mock model"):
        make_gaia_mock(10, model="nfw")
    with pytest.raises(ValueError, match="unknown parameter"):
        make_gaia_mock(10, params={"a_kpc": 1.0})
    with pytest.raises(ValueError, match="no truth record"):
        truth_potential({"frame": {}})
    with pytest.raises(ValueError, match="GaiaErrorModel.parallax_mas"):
        GaiaErrorModel(parallax_mas=-1.0)
