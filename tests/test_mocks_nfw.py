"""The energy-truncated NFW mock: tracer density, isotropic dispersions, DF and its gradient."""

import numpy as np
import pytest
from scipy import integrate, stats

from deeppot_galpy.compare import field_errors
from deeppot_galpy.mocks import NFW, get_mock

N = 2**15


@pytest.fixture(scope="module")
def mock():
    return NFW(rmax=10.0)


@pytest.fixture(scope="module")
def sample(mock):
    return mock.sample(N, seed=5)


def _tracer_cdf(mock, r):
    """M_nu(<r) / M_nu by quadrature of the mock's tracer density."""

    def shell(s):
        rr = np.exp(s)
        return 4 * np.pi * rr**3 * mock.tracer_density(np.array([[rr, 0.0, 0.0]]))[0]

    return np.array([integrate.quad(shell, np.log(1e-8), np.log(ri), limit=200)[0] for ri in r])


def test_registry_bounds_and_reproducibility(mock, sample):
    assert get_mock("nfw").rmax == 10.0
    assert sample.r.max() < mock.rmax
    # every star is bound below the truncation energy
    assert np.all(mock.energy(sample.x, sample.v) < mock.e_max)
    a, b = mock.sample(256, seed=9), mock.sample(256, seed=9)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.v, b.v)


def test_tracer_density_normalised_and_cuspy(mock):
    assert _tracer_cdf(mock, [mock.rmax])[0] == pytest.approx(1.0, abs=1e-6)
    # the energy cut leaves the cusp alone: nu = rho / M_nu deep inside
    x = np.array([[0.01, 0.0, 0.0]])
    assert mock.tracer_density(x)[0] * mock.tracer_mass == pytest.approx(
        mock.density(x)[0], rel=1e-3
    )


def test_radial_counts_chi2(mock, sample):
    edges = np.array([0.0, 0.05, 0.1, 0.2, 0.4, 0.7, 1.0, 1.5, 2.0, 3.0, 4.0, 5.5, 7.0, 8.5, 10.0])
    expected = N * np.diff(_tracer_cdf(mock, edges[1:]), prepend=0.0)
    observed = np.histogram(sample.r, edges)[0]
    chi2 = np.sum((observed - expected) ** 2 / expected)
    dof = len(expected) - 1
    assert chi2 < dof + 5.0 * np.sqrt(2.0 * dof)
    grid = np.geomspace(1e-3, 10.0, 200)
    res = stats.kstest(sample.r, lambda r: np.interp(r, grid, _tracer_cdf(mock, grid)))
    assert res.pvalue > 1e-3


def test_isotropic_dispersion_profile(mock, sample):
    r = sample.r
    rhat = sample.x / r[:, None]
    vr2 = np.sum(sample.v * rhat, axis=1) ** 2
    v2 = np.sum(sample.v**2, axis=1)
    for lo, hi in [(0.1, 0.3), (0.5, 1.0), (1.5, 2.5), (4.0, 6.0), (7.0, 8.0)]:
        s = (r > lo) & (r < hi)
        rm = float(np.median(r[s]))
        x = np.array([[rm, 0.0, 0.0]])
        phi = mock.potential(x)[0]
        vmax = np.sqrt(2 * (mock.e_max - phi))

        def moment(k, x=x, vmax=vmax):
            f = lambda v: v ** (2 + k) * np.exp(mock.log_df(x, np.array([[v, 0, 0]])))[0]  # noqa: E731
            return integrate.quad(f, 0, vmax, limit=200)[0]

        sigma2 = moment(2) / moment(0) / 3.0  # 1D dispersion at the bin's median radius
        tol = 4 * v2[s].std() / v2[s].mean() / np.sqrt(s.sum()) + 0.04
        assert abs(v2[s].mean() / 3 / sigma2 - 1) < tol
        beta = 1.0 - (v2[s] - vr2[s]).mean() / (2.0 * vr2[s].mean())
        assert abs(beta) < 5 * np.sqrt(2.0 / s.sum()) + 0.01


def test_grad_log_df_matches_finite_differences(mock, sample):
    x, v = sample.x[:64], sample.v[:64]
    gx, gv = mock.grad_log_df(x, v)
    eps = 1e-6
    for k in range(3):
        d = np.zeros(3)
        d[k] = eps
        fx = (mock.log_df(x + d, v) - mock.log_df(x - d, v)) / (2 * eps)
        fv = (mock.log_df(x, v + d) - mock.log_df(x, v - d)) / (2 * eps)
        assert np.all(np.abs(fx - gx[:, k]) < 1e-5 * np.linalg.norm(gx, axis=1) + 1e-8)
        assert np.all(np.abs(fv - gv[:, k]) < 1e-5 * np.linalg.norm(gv, axis=1) + 1e-8)


def test_truth_matches_galpy(mock, sample):
    errs = field_errors(mock, mock.galpy_potential(), sample.x[:2000])
    for key in ("phi", "force", "density"):
        assert np.max(errs[key]) < 1e-10
