"""Parametric CBE baseline and spherical Jeans masses: true parameters from true gradients."""

import numpy as np
import pytest
import torch

from deeppot_galpy.baseline import fit_parametric, jeans_enclosed_mass
from deeppot_galpy.compare import field_errors
from deeppot_galpy.mocks import get_mock
from deeppot_galpy.potential import CBEPoints
from deeppot_galpy.units import Units

torch.set_num_threads(1)


def true_points(mock, n=4096, seed=1, x_scale=1.0, v_scale=1.0):
    ps = mock.sample(n, seed)
    gx, gv = mock.grad_log_df(ps.x, ps.v)
    logf = mock.log_df(ps.x, ps.v)
    return CBEPoints(ps.x * x_scale, ps.v * v_scale, gx / x_scale, gv / v_scale, logf)


@pytest.mark.parametrize(
    "mock, family, expected",
    [
        ("plummer", "plummer", {"amp": 1.0, "b": 1.0}),
        ("hernquist_om", "hernquist", {"amp": 2.0, "a": 1.0}),  # galpy's amp is 2M
        ("nfw", "nfw", {"amp": 1.0, "a": 1.0}),
    ],
)
def test_recovers_sphere_parameters_from_true_gradients(mock, family, expected):
    m = get_mock(mock)
    pot, params = fit_parametric(true_points(m), family)
    for key, value in expected.items():
        assert params[key] == pytest.approx(value, rel=1e-4)
    assert params["loss"] < 1e-4 and params["converged"]
    x = m.sample(500, 7).x
    assert np.max(field_errors(pot, m, x)["force"]) < 1e-3


def test_recovers_miyamoto_nagai_from_a_stationary_df():
    """f(E, Lz) is stationary in any axisymmetric potential: ln f = -E / s^2 + Lz / l0 gives
    exact gradients at any phase-space points."""
    disk = get_mock("mn_disk")
    rng = np.random.default_rng(0)
    n = 4096
    R = 1.5 * rng.gamma(2.0, 0.25, n)
    phi = rng.uniform(0, 2 * np.pi, n)
    x = np.stack([R * np.cos(phi), R * np.sin(phi), 0.05 * rng.standard_normal(n)], 1)
    v = 0.2 * rng.standard_normal((n, 3)) + np.stack([-np.sin(phi), np.cos(phi), 0 * phi], 1)
    s2, l0 = 0.04, 0.5
    gx = disk.acceleration(x) / s2 + np.stack([v[:, 1], -v[:, 0], 0 * R], 1) / l0
    gv = -v / s2 + np.stack([-x[:, 1], x[:, 0], 0 * R], 1) / l0
    logf = -(0.5 * np.sum(v**2, 1) + disk.potential(x)) / s2
    pot, params = fit_parametric(CBEPoints(x, v, gx, gv, logf), "miyamoto_nagai")
    assert params["amp"] == pytest.approx(disk.M, rel=1e-3)
    assert params["a"] == pytest.approx(disk.a, rel=1e-3)
    assert params["b"] == pytest.approx(disk.b, rel=1e-3)


def test_physical_units_convert_to_galpy_natural_units():
    # A Plummer sphere of scale 5 kpc and velocity unit 100 km/s: GM = 100^2 * 5 (km/s)^2 kpc
    L, V = 5.0, 100.0
    pts = true_points(get_mock("plummer"), x_scale=L, v_scale=V)
    pot, params = fit_parametric(pts, "plummer", units=Units.galactic(), ro=8.0, vo=220.0)
    assert params["model_units"]["amp"] == pytest.approx(V**2 * L, rel=1e-4)
    assert params["model_units"]["b"] == pytest.approx(L, rel=1e-4)
    assert params["b"] == pytest.approx(L / 8.0, rel=1e-4)
    # the circular speed at 5 kpc, in km/s, through galpy's own physical conversion
    vc = pot.vcirc(L / 8.0, use_physical=False) * 220.0
    assert vc == pytest.approx(V * np.sqrt(L**2 / (2 * L**2) ** 1.5 * L), rel=1e-4)


def test_mismatched_family_fits_worse():
    m = get_mock("hernquist_om")
    _, right = fit_parametric(true_points(m), "hernquist")
    _, wrong = fit_parametric(true_points(m), "plummer")
    assert wrong["loss"] > 100 * max(right["loss"], 1e-6)
    with pytest.raises(ValueError, match="unknown family"):
        fit_parametric(true_points(m), "isochrone")


def test_jeans_mass_of_anisotropic_hernquist():
    m = get_mock("hernquist_om")
    ps = m.sample(2**15, 2)
    res = jeans_enclosed_mass(ps.x, ps.v, np.geomspace(0.1, 10.0, 11))
    r, mass = np.array(res["r"]), np.array(res["mass"])
    rel = mass[1:-1] / m.enclosed_mass(r[1:-1]) - 1
    assert np.median(np.abs(rel)) < 0.06 and np.max(np.abs(rel)) < 0.2
    np.testing.assert_allclose(res["beta"][1:-1], m.beta(r[1:-1]), atol=0.08)
