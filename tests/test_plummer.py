"""The Plummer mock against its analytic density, velocity distribution and DF."""

import numpy as np
import pytest
from scipy import integrate, stats

from deeppot_galpy.mocks import Plummer

N = 2**15


@pytest.fixture(scope="module")
def sample():
    return Plummer().sample(N, seed=3)


def test_radii_follow_enclosed_mass(sample):
    # M(<r) = r^3 / (1 + r^2)^{3/2} for G = M = b = 1
    cdf = lambda r: r**3 / (1 + r**2) ** 1.5  # noqa: E731
    assert stats.kstest(sample.r, cdf).pvalue > 1e-3


def test_positions_and_velocities_isotropic(sample):
    for arr in (sample.x, sample.v):
        cos_t = arr[:, 2] / np.linalg.norm(arr, axis=1)
        assert stats.kstest(cos_t, stats.uniform(-1, 2).cdf).pvalue > 1e-3


def test_velocity_dispersion_profile(sample):
    # Jeans: sigma_1D^2(r) = (1/6) (1 + r^2)^{-1/2} for the isotropic Plummer sphere
    r = sample.r
    for lo, hi in ((0.0, 0.5), (0.5, 1.0), (1.0, 2.0)):
        sel = (r >= lo) & (r < hi)
        v2 = np.sum(sample.v[sel] ** 2, axis=1) / 3
        pred = np.mean((1 + r[sel] ** 2) ** -0.5) / 6
        assert abs(v2.mean() / pred - 1) < 5 * v2.std() / np.sqrt(sel.sum()) / pred


def test_speeds_follow_df(sample):
    # given r, q = v / v_esc has density prop. to q^2 (1 - q^2)^{7/2}
    m = Plummer()
    q = np.linalg.norm(sample.v, axis=1) / np.sqrt(-2 * m.potential(sample.x))
    norm = integrate.quad(lambda t: t**2 * (1 - t**2) ** 3.5, 0, 1)[0]
    grid = np.linspace(0, 1, 2001)
    pdf = grid**2 * (1 - grid**2) ** 3.5 / norm
    cdf_grid = integrate.cumulative_trapezoid(pdf, grid, initial=0)
    assert stats.kstest(q, lambda t: np.interp(t, grid, cdf_grid)).pvalue > 1e-3
    assert np.all(m.energy(sample.x, sample.v) < 0)


@pytest.mark.parametrize("r", [0.3, 1.0, 2.5])
def test_df_integrates_to_density(r):
    # rho(r) = 4 pi int_0^vesc v^2 f(E) dv: checks the normalisation of f
    m = Plummer()
    x = np.array([[r, 0.0, 0.0]])
    vesc = np.sqrt(-2 * m.potential(x))[0]

    def integrand(v):
        return 4 * np.pi * v**2 * np.exp(m.log_df(x, np.array([[v, 0.0, 0.0]])))[0]

    rho = integrate.quad(integrand, 0, vesc)[0]
    assert rho == pytest.approx(m.density(x)[0], rel=1e-6)


def test_truth_derivatives_consistent():
    m = Plummer()
    rng = np.random.default_rng(0)
    x, v = rng.normal(size=(20, 3)), 0.2 * rng.normal(size=(20, 3))
    h = 1e-6
    fd_acc = np.stack(
        [-(m.potential(x + h * e) - m.potential(x - h * e)) / (2 * h) for e in np.eye(3)], 1
    )
    np.testing.assert_allclose(m.acceleration(x), fd_acc, rtol=1e-6, atol=1e-9)
    lap = sum(
        (m.potential(x + 1e-3 * e) - 2 * m.potential(x) + m.potential(x - 1e-3 * e)) / 1e-6
        for e in np.eye(3)
    )
    np.testing.assert_allclose(lap / (4 * np.pi), m.density(x), rtol=1e-4)
    gx, gv = m.grad_log_df(x, v)
    fd_gx = np.stack(
        [(m.log_df(x + h * e, v) - m.log_df(x - h * e, v)) / (2 * h) for e in np.eye(3)], 1
    )
    fd_gv = np.stack(
        [(m.log_df(x, v + h * e) - m.log_df(x, v - h * e)) / (2 * h) for e in np.eye(3)], 1
    )
    np.testing.assert_allclose(gx, fd_gx, rtol=1e-5)
    np.testing.assert_allclose(gv, fd_gv, rtol=1e-5, atol=1e-8)


def test_sampling_is_seeded():
    a, b, c = (Plummer().sample(100, s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.eta, b.eta)
    assert not np.allclose(a.eta, c.eta)
