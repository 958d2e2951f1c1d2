"""A magnitude-limited catalog's completeness: the C- estimate against the analytic S(d), and
the weak-form Jeans moments that it corrects."""

import numpy as np
import pytest
from scipy.stats import norm

from deeppot_galpy.completeness import Completeness, distance_modulus
from deeppot_galpy.mocks import Plummer
from deeppot_galpy.potential import JeansMoments

M_MEAN, M_SIGMA = 1.5, 1.5  # a Gaussian luminosity function, the same everywhere


def observe(d_kpc: np.ndarray, m_max: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Apparent magnitudes of stars at distances d and the mask of those with m <= m_max."""
    m = np.random.default_rng(seed).normal(M_MEAN, M_SIGMA, len(d_kpc)) + distance_modulus(d_kpc)
    return m, m <= m_max


def true_slope(d_kpc, m_max):
    """d ln S / d ln d for the Gaussian luminosity function."""
    M_lim = m_max - distance_modulus(d_kpc)
    return -5 / np.log(10) * norm.pdf(M_lim, M_MEAN, M_SIGMA) / norm.cdf(M_lim, M_MEAN, M_SIGMA)


@pytest.fixture(scope="module")
def sphere():
    """2^17 stars uniform within 1.5 kpc of the observer, cut at m <= 12.5 (S = 0.5 at the edge)."""
    rng = np.random.default_rng(0)
    u = rng.normal(size=(2**17, 3))
    r = 1.5 * rng.uniform(size=2**17) ** (1 / 3)
    center = np.array([-8.1, 0.0, 0.02])
    x = center + u / np.linalg.norm(u, axis=1)[:, None] * r[:, None]
    m, keep = observe(r, 12.5, 1)
    comp = Completeness.from_magnitude_limit(m[keep], r[keep], 12.5, center)
    return center, x[keep], r[keep], comp


def test_the_luminosity_function_from_the_stars_gives_the_true_completeness(sphere):
    _, _, _, comp = sphere
    d = np.array([0.7, 1.0, 1.3, 1.5])
    np.testing.assert_allclose(comp.dlnS_dlnd(d), true_slope(d, 12.5), rtol=0.1)
    # ln S relative to the complete near stars: S(1.5 kpc) = 0.5
    M_lim = 12.5 - distance_modulus(d)
    ln_s = np.log(norm.cdf(M_lim, M_MEAN, M_SIGMA))
    np.testing.assert_allclose(comp.log_relative(d), ln_s, atol=0.03)


def test_the_gradient_points_to_the_observer_with_the_slope_over_distance(sphere):
    center, x, r, comp = sphere
    g = comp.grad_log(x[:500])
    unit = (x[:500] - center) / r[:500, None]
    np.testing.assert_allclose(g, (comp.dlnS_dlnd(r[:500]) / r[:500])[:, None] * unit)
    step = 1e-4  # against a finite difference of ln S along the line of sight
    fd = (comp.log_relative(r[:500] + step) - comp.log_relative(r[:500] - step)) / (2 * step)
    far = r[:500] > 0.8
    np.testing.assert_allclose(np.sum(g * unit, 1)[far], fd[far], rtol=0.04)
    assert Completeness.from_dict(comp.to_dict()) == comp


def test_a_complete_catalog_has_a_flat_completeness(sphere):
    center, x, r, _ = sphere
    m, keep = observe(r, 30.0, 2)
    comp = Completeness.from_magnitude_limit(m, r, 30.0, center)
    assert np.max(np.abs(comp.dlnS_dlnd(np.linspace(0.1, 1.5, 8)))) < 1e-3


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="m <= m_max"):
        Completeness.from_magnitude_limit(np.full(200, 13.0), np.ones(200), 12.0, np.zeros(3))
    with pytest.raises(ValueError, match=">= 100 stars"):
        Completeness.from_magnitude_limit(np.ones(10), np.ones(10), 12.0, np.zeros(3))


def test_jeans_moments_of_a_magnitude_limited_sample_hold_only_when_corrected():
    """Plummer stars seen from (0.5, 0, 0) with S from 0.96 to 0.05: the true force satisfies
    the weak-form moments with the completeness term, and violates them four times more
    without it."""
    mock = Plummer()
    stars = mock.sample(2**16, 3)
    center = np.array([0.5, 0.0, 0.0])
    d = np.linalg.norm(stars.x - center, axis=1)
    m, keep = observe(d, 11.5, 1)
    seen = stars.subset(keep)
    comp = Completeness.from_magnitude_limit(m[keep], d[keep], 11.5, center)
    violation = {}
    for name, c in (("corrected", comp), ("ignored", None)):
        jeans = JeansMoments(seen.x, seen.v, seen.region(), 64, seed=2, completeness=c)
        x = jeans.x.double().numpy()
        violation[name] = jeans.violation(-mock.acceleration(x))
    assert violation["corrected"] < 0.12  # Monte Carlo noise of ~2.4e4 stars
    assert violation["ignored"] > 2.5 * violation["corrected"]
