"""The local-disk mock: sizes and frame, exact sampling of its DF, a stationary DF, truth in
kpc/km/s/Msun, and its Gaia-archive table."""

import numpy as np
import pytest
from galpy.orbit import Orbit
from galpy.potential import evaluateDensities, evaluatezforces
from galpy.util.conversion import dens_in_msolpc3

from deeppot_galpy.data import GaiaErrorModel, QualityCuts, catalog_to_phasespace
from deeppot_galpy.mocks import available_mocks, get_mock
from deeppot_galpy.mocks.local_disk import LocalDisk, galpy_frame
from deeppot_galpy.units import Units


@pytest.fixture(scope="module")
def mock() -> LocalDisk:
    return get_mock("local_disk")


@pytest.fixture(scope="module")
def stars(mock):
    return mock.sample(3000, seed=3)


def test_sizes_and_frame(mock, stars):
    assert "local_disk" in available_mocks()
    assert len(stars) == 3000 and stars.units == Units.galactic()
    d = np.linalg.norm(stars.x - mock.sun, axis=1)
    assert d.max() <= mock.radius and np.percentile(d, 90) > 0.8 * mock.radius
    assert mock.sun[0] == pytest.approx(-8.122, abs=1e-3)  # astropy's frame
    # rotating towards +y at the Sun, slower than v_c by the asymmetric drift
    assert 180 < np.mean(stars.v[:, 1]) < 220
    stats = stars.meta["sampling"]
    assert sum(s["accepted"] for s in stats.values()) >= 3000
    assert all(s["above_envelope"] == 0 for s in stats.values())
    assert stars.meta["frame"] == mock.frame.to_dict()
    # the description rebuilds the same mock
    again = get_mock("local_disk", **stars.meta["mock"]["params"])
    assert again.params == mock.params
    assert mock.region["r_max"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown galpy Milky Way potential"):
        LocalDisk(potential="NoSuchPotential")


def test_truth_in_physical_units(mock):
    x = mock.sun[None] + np.array([[0.3, -0.2, 0.5]])
    R, z = np.hypot(*x[0, :2]) / 8.0, x[0, 2] / 8.0
    pot = mock.galpy_potential()
    rho = mock.density(x)[0] * 1e-9  # Msun/kpc^3 -> Msun/pc^3
    # the package's G (Units.galactic) and galpy's differ by 2e-4
    assert rho == pytest.approx(evaluateDensities(pot, R, z) * dens_in_msolpc3(220.0, 8.0), 1e-3)
    assert mock.acceleration(x)[0, 2] == pytest.approx(
        evaluatezforces(pot, R, z) * 220.0**2 / 8.0, rel=1e-10
    )


def test_sampling_is_exact():
    """The sample's moments against importance-weighted ones from another proposal."""
    mock = LocalDisk(thick_fraction=0.0)  # the thin disk alone: one DF to weigh with
    stars = mock.sample(4000, seed=5)
    rng = np.random.default_rng(6)
    # positions uniform in the sphere, velocities from wide Gaussians
    n = 16000
    u = rng.standard_normal((n, 3))
    x = (
        mock.sun
        + u * (mock.radius * rng.uniform(size=n) ** (1 / 3) / np.linalg.norm(u, axis=1))[:, None]
    )
    mean, width = np.array([0.0, 200.0, 0.0]), np.array([60.0, 50.0, 45.0])
    t = rng.standard_normal((n, 3))
    v = mean + width * t
    ln_w = mock._log_df(mock._dfs()[0], x, v) + 0.5 * np.sum(t * t, axis=1)
    w = np.exp(ln_w - ln_w.max())
    w /= w.sum()
    v_sample = galpy_frame(stars.x, stars.v)
    for name, sample_values, proposal_values in (
        ("|z|", np.abs(stars.x[:, 2]), np.abs(x[:, 2])),
        ("v_T", v_sample[:, 1], v[:, 1]),
        ("v_R^2", v_sample[:, 0] ** 2, v[:, 0] ** 2),
        ("v_z^2", v_sample[:, 2] ** 2, v[:, 2] ** 2),
    ):
        is_mean = w @ proposal_values
        is_err = np.sqrt(np.sum(w**2 * (proposal_values - is_mean) ** 2))
        err = np.hypot(is_err, sample_values.std() / np.sqrt(len(sample_values)))
        assert abs(sample_values.mean() - is_mean) < 4 * err, name
        assert err < 0.03 * abs(is_mean), name  # the check is sharp enough to mean something


def test_df_ignores_the_models_physical_outputs(mock, stars, monkeypatch):
    """galpy's Milky Way models with physical outputs on (Irrgang13, McMillan17) give the DF
    in the model's natural units: the same ln f as a copy of the model with them off."""
    import copy

    from galpy.potential import mwpotentials, turn_physical_on

    physical = copy.deepcopy(mock.galpy_potential())
    turn_physical_on(physical, ro=mock.ro, vo=mock.vo)
    monkeypatch.setattr(mwpotentials, "PhysicalMW14", physical, raising=False)
    other = LocalDisk(potential="PhysicalMW14")
    x, v = stars.x[:50], galpy_frame(stars.x[:50], stars.v[:50])
    ln_f = [m._log_df(m._dfs()[0], x, v) for m in (mock, other)]
    assert np.all(np.isfinite(ln_f[0]))
    np.testing.assert_allclose(ln_f[1], ln_f[0], rtol=1e-8, atol=1e-8)


def test_sampler_refuses_a_tiny_acceptance(mock, monkeypatch):
    # one proposal in a thousand carries the DF: the envelope accepts ~1e-3 / 1.3 of them
    def spiky(df, x, v):
        return np.where(np.arange(len(x)) % 1000 == 0, 0.0, -50.0)

    monkeypatch.setattr(mock, "_log_df", spiky)
    with pytest.raises(ValueError, match="accepts .* of the sampler's proposals"):
        mock.sample(100, seed=0)


def test_df_is_stationary(mock, stars):
    """ln f is conserved along orbits in the true potential (a function of integrals of
    motion), to a small fraction of its spread over the stars; v_z, not an integral, is not."""
    ro, vo = mock.ro, mock.vo
    x, v = stars.x[:100], galpy_frame(stars.x[:100], stars.v[:100])
    R = np.hypot(x[:, 0], x[:, 1])
    ic = np.stack([R / ro, v[:, 0] / vo, v[:, 1] / vo, x[:, 2] / ro, v[:, 2] / vo, np.zeros(100)])
    orbits = Orbit(ic.T)
    t = np.linspace(0.0, 2.0, 41)  # 2 natural time units = 71 Myr, about a vertical period
    orbits.integrate(t, mock.galpy_potential(), method="dop853_c", progressbar=False)
    Rt, vRt, vTt, zt, vzt = (
        getattr(orbits, q)(t, use_physical=False).ravel() for q in ("R", "vR", "vT", "z", "vz")
    )
    xt = np.stack([Rt * ro, np.zeros_like(Rt), zt * ro], axis=1)
    vt = np.stack([vRt, vTt, vzt], axis=1) * vo
    ln_f = mock._log_df(mock._dfs()[0], xt, vt).reshape(100, len(t))
    vz = vzt.reshape(100, len(t))
    spread = np.std(ln_f[:, 0])
    assert np.median(np.std(ln_f, axis=1)) < 0.01 * spread  # measured: 0.002
    assert np.median(np.std(vz, axis=1)) > 0.3 * np.std(vz[:, 0])


def test_gaia_table_round_trip(mock, stars):
    exact = mock.gaia_table(stars, seed=2)
    assert len(exact) == len(stars) and {"parallax", "pmra", "radial_velocity"} <= set(
        exact.colnames
    )
    assert exact.meta["truth"]["name"] == "local_disk"
    back, _ = catalog_to_phasespace(exact, mock.frame, QualityCuts(min_stars=100))
    np.testing.assert_allclose(back.x, stars.x, atol=1e-6)
    np.testing.assert_allclose(back.v, stars.v, atol=1e-5)
    noisy = mock.gaia_table(stars, seed=2, errors=GaiaErrorModel(0.03, 0.03, 1.5))
    # the default parallax S/N >= 5 cut keeps every star within 1.5 kpc (S/N ~ 22 at the edge)
    assert np.all(noisy["parallax"] / noisy["parallax_error"] > 15)
    assert np.std(noisy["radial_velocity"] - exact["radial_velocity"]) == pytest.approx(1.5, 0.1)
