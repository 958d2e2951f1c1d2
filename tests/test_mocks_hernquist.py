"""The Osipkov-Merritt Hernquist mock: exact density, anisotropy profile, DF and its gradient."""

import numpy as np
import pytest
from scipy import integrate, stats

from deeppot_galpy.compare import field_errors
from deeppot_galpy.mocks import HernquistOM, get_mock

N = 2**15


@pytest.fixture(scope="module")
def mock():
    return HernquistOM(ra=1.0)


@pytest.fixture(scope="module")
def sample(mock):
    return mock.sample(N, seed=11)


def test_registry_and_reproducibility(mock):
    assert isinstance(get_mock("hernquist_om", ra=2.0), HernquistOM)
    state = np.random.get_state()[1].copy()  # noqa: NPY002
    a, b = mock.sample(512, seed=3), mock.sample(512, seed=3)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.v, b.v)
    # galpy draws from numpy's global RNG: the mock seeds and restores it
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # noqa: NPY002
    with pytest.raises(ValueError, match="negative"):
        HernquistOM(ra=0.1)


def test_enclosed_mass_ks(mock, sample):
    res = stats.kstest(sample.r, lambda r: mock.enclosed_mass(r))
    assert res.pvalue > 1e-3


def test_radial_counts_chi2(mock, sample):
    edges = np.concatenate([[0.0], np.geomspace(0.05, 50.0, 15), [np.inf]])
    expected = N * np.diff(mock.enclosed_mass(edges[:-1]).tolist() + [1.0])
    observed = np.histogram(sample.r, edges)[0]
    chi2 = np.sum((observed - expected) ** 2 / expected)
    dof = len(expected) - 1
    assert chi2 < dof + 5.0 * np.sqrt(2.0 * dof)


def test_anisotropy_and_dispersion_profiles(mock, sample):
    r = sample.r
    rhat = sample.x / r[:, None]
    vr2 = np.sum(sample.v * rhat, axis=1) ** 2
    vt2 = np.sum(sample.v**2, axis=1) - vr2
    edges = np.geomspace(0.1, 10.0, 9)
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        s = (r > lo) & (r < hi)
        rm = float(np.median(r[s]))
        # beta = 1 - <vt^2> / 2<vr^2> against the analytic r^2 / (r^2 + ra^2), with the
        # bin's spread of beta(r) and the estimator's noise in the tolerance
        beta = 1.0 - vt2[s].mean() / (2.0 * vr2[s].mean())
        noise = (
            (1 - beta)
            * np.hypot(vt2[s].std() / vt2[s].mean(), vr2[s].std() / vr2[s].mean())
            / np.sqrt(s.sum())
        )
        spread = np.ptp(mock.beta(np.array([lo, hi])))
        assert abs(beta - mock.beta(rm)) < 4 * noise + 0.25 * spread
        # sigma_r against galpy's moment integral
        sr2 = mock.df.sigmar(rm) ** 2
        assert (
            abs(vr2[s].mean() / sr2 - 1)
            < 4 * vr2[s].std() / vr2[s].mean() / np.sqrt(s.sum()) + 0.03
        )


def test_df_normalised_to_density(mock):
    # nu(r) = int f d^3v; in OM variables w_t = v_t sqrt(1 + r^2/ra^2), w_r = v_r,
    # f depends on |w| only and d^3v = d^3w / (1 + r^2/ra^2).
    for r in (0.3, 1.0, 3.0):
        x = np.array([[r, 0.0, 0.0]])
        psi = -mock.potential(x)[0]

        def integrand(w, r=r, x=x):
            return 4 * np.pi * w**2 * np.exp(mock.log_df(x, np.array([[w, 0.0, 0.0]])))[0]

        nu = integrate.quad(integrand, 0, np.sqrt(2 * psi))[0] / (1 + r**2 / mock.ra**2)
        assert nu == pytest.approx(mock.density(x)[0], rel=1e-6)


def test_grad_log_df_matches_finite_differences(mock, sample):
    x, v = sample.x[:64], sample.v[:64]
    gx, gv = mock.grad_log_df(x, v)
    eps = 1e-6
    for k in range(3):
        d = np.zeros(3)
        d[k] = eps
        fx = (mock.log_df(x + d, v) - mock.log_df(x - d, v)) / (2 * eps)
        fv = (mock.log_df(x, v + d) - mock.log_df(x, v - d)) / (2 * eps)
        scale_x = np.linalg.norm(gx, axis=1)
        scale_v = np.linalg.norm(gv, axis=1)
        assert np.all(np.abs(fx - gx[:, k]) < 1e-5 * scale_x + 1e-8)
        assert np.all(np.abs(fv - gv[:, k]) < 1e-5 * scale_v + 1e-8)


def test_truth_matches_galpy(mock, sample):
    errs = field_errors(mock, mock.galpy_potential(), sample.x[:2000])
    for key in ("phi", "force", "density"):
        assert np.max(errs[key]) < 1e-10


def test_constant_beta_sphere_and_its_metric():
    """An, Naik et al.'s beta = 1/2 sphere: its anisotropy, truncation, mass profile, metric."""
    m = get_mock("hernquist_beta")
    s = m.sample(8192, seed=5)
    assert s.r.max() <= 200.0
    v_r = np.sum(s.x * s.v, axis=1) / s.r
    v_t2 = np.sum(s.v**2, axis=1) - v_r**2
    assert 1 - np.mean(v_t2) / (2 * np.mean(v_r**2)) == pytest.approx(0.5, abs=0.03)
    truncated = lambda r: np.minimum(m.enclosed_mass(r) / m.enclosed_mass(200.0), 1.0)  # noqa: E731
    assert stats.kstest(s.r, truncated).pvalue > 1e-3

    class Scaled:  # a field 2% too strong: the metric reads 2%
        def __init__(self, k):
            self.k = k

        def acceleration(self, x):
            return self.k * m.acceleration(x)

    assert m.radial_force_error(Scaled(1.0)) == 0.0
    assert m.radial_force_error(Scaled(1.02)) == pytest.approx(0.02)
    with pytest.raises(ValueError, match="beta"):
        get_mock("hernquist_beta", beta=0.9)
