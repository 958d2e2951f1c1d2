"""Weak-form test functions with velocity structure, and the per-position least-squares force."""

import numpy as np
import pytest
import torch

from deeppot_galpy.mocks import HernquistOM, Plummer
from deeppot_galpy.potential import JeansMoments
from deeppot_galpy.potential.pointwise import least_squares_force
from deeppot_galpy.potential.weakform import FAMILIES, parse_families

FAMILY_NAMES = sorted(FAMILIES)


@pytest.fixture(scope="module")
def systems():
    """An isotropic and a radially anisotropic sphere, 2^16 exact stars each."""
    return {m.name: (m, m.sample(2**16, 4)) for m in (Plummer(), HernquistOM(ra=1.0))}


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_moments_are_the_velocity_gradient_of_the_factors(family):
    """moments() is sum_n psi_nm grad_v h_nmk . g_n with grad_v h by autograd of value()."""
    fam = FAMILIES[family]
    gen = torch.Generator().manual_seed(0)
    n, m = 7, 5
    v = torch.randn(n, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    u = torch.randn(m, 3, generator=gen, dtype=torch.float64)
    s = torch.rand(m, generator=gen, dtype=torch.float64) + 0.5
    psi = torch.rand(n, m, generator=gen, dtype=torch.float64)
    g = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    h = fam.value(v, (v.unsqueeze(1) - u) / s[:, None], s)  # (n, m, size)
    assert h.shape == (n, m, fam.size)
    jac = torch.stack(
        [
            torch.autograd.grad(h[:, j, k].sum(), v, retain_graph=True)[0]
            for j in range(m)
            for k in range(fam.size)
        ],
        1,
    ).view(n, m, fam.size, 3)
    expected = torch.einsum("nm,nmkj,nj->mk", psi, jac, g)
    got = fam.moments(psi, ((v - 0).unsqueeze(1) - u).detach() / s[:, None], g)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("family", FAMILY_NAMES)
@pytest.mark.parametrize("system", ["plummer", "hernquist_om"])
def test_true_force_satisfies_each_family_and_a_scaled_one_does_not(systems, system, family):
    m, ps = systems[system]
    jeans = JeansMoments(ps.x, ps.v, ps.region(), n_functions=64, seed=2, velocity=family)
    x = jeans.x.double().numpy()
    truth = jeans.violation(-m.acceleration(x))
    # Monte Carlo noise of 2^16 stars (measured 0.03-0.14, the Gaussian windows the noisiest,
    # halving with 2^17 stars)
    assert truth < 0.15, truth
    for factor in (0.9, 1.1):  # the truth is the best amplitude ...
        assert jeans.violation(-factor * m.acceleration(x)) > truth, (factor, truth)
    for factor in (0.8, 1.25):  # ... and a 20% error stands well above the noise
        assert jeans.violation(-factor * m.acceleration(x)) > 1.5 * truth, (factor, truth)


def test_linear_family_is_the_jeans_equation(systems):
    """velocity='linear' (the default) gives <psi grad Phi> = <v_j v . grad psi> directly."""
    m, ps = systems["plummer"]
    jeans = JeansMoments(ps.x, ps.v, ps.region(), n_functions=16, seed=2)
    x, v = jeans.x.double().numpy(), jeans.v.double().numpy()
    d = x[:, None] - jeans.centers
    psi = np.exp(-0.5 * np.sum(d**2, -1) / jeans.widths**2)
    v_grad_psi = -np.einsum("nk,nmk->nm", v, d) * psi / jeans.widths**2
    np.testing.assert_allclose(jeans.A[0].numpy(), v_grad_psi.T @ v / len(x), rtol=1e-4, atol=1e-7)


def test_family_names_are_checked():
    assert [f.name for f in parse_families("linear+windows")] == ["linear", "windows"]
    assert [f.name for f in parse_families(["cubic"])] == ["cubic"]
    for bad in ("quartic", "linear+linear", "", []):
        with pytest.raises(ValueError, match="velocity test functions"):
            parse_families(bad)


def _velocities(m, x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k isotropic velocities at each position, bound (|v| < 0.9 v_esc), (P, k, 3)."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(len(x), k, 3))
    u /= np.linalg.norm(u, axis=-1, keepdims=True)
    v_esc = np.sqrt(-2.0 * m.potential(x))
    return u * (0.9 * v_esc[:, None, None] * rng.uniform(size=(len(x), k, 1)) ** (1 / 3))


def test_least_squares_force_is_exact_for_the_true_df():
    m = Plummer()
    x = m.sample(200, 5).x
    a = least_squares_force(m.grad_log_df, x, _velocities(m, x, 32, 6))
    np.testing.assert_allclose(a, m.acceleration(x), rtol=1e-8, atol=1e-12)
    one = least_squares_force(m.grad_log_df, x[0], _velocities(m, x[:1], 8, 7)[0])
    np.testing.assert_allclose(one, m.acceleration(x[:1])[0], rtol=1e-8)


def test_least_squares_force_sees_a_wrong_potential():
    """f(E) with E in a potential 0.8x the true one: grad_x ln f is 0.8x as steep, and the
    solve returns that potential's force (20% off the truth), not the true one."""
    m = Plummer()
    x = m.sample(200, 5).x

    def wrong(xs: np.ndarray, vs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        gx, gv = m.grad_log_df(xs, vs)
        return 0.8 * gx, gv

    a = least_squares_force(wrong, x, _velocities(m, x, 32, 6))
    a_true = m.acceleration(x)
    err = np.linalg.norm(a - a_true, axis=1) / np.linalg.norm(a_true, axis=1)
    np.testing.assert_allclose(err, 0.2, rtol=1e-6)


def test_least_squares_force_rejects_bad_input():
    m = Plummer()
    x = m.sample(4, 5).x
    v = _velocities(m, x, 8, 6)
    with pytest.raises(ValueError, match="need x"):
        least_squares_force(m.grad_log_df, x, v[0])
    with pytest.raises(ValueError, match="at least 3"):
        least_squares_force(m.grad_log_df, x, v[:, :2])

    def undefined(xs: np.ndarray, vs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        gx, gv = m.grad_log_df(xs, vs)  # NaN where f = 0, as some DF models give it
        return gx, np.where(np.linalg.norm(vs, axis=1, keepdims=True) > 0.5, np.nan, gv)

    with pytest.raises(ValueError, match="not finite"):
        least_squares_force(undefined, x, 10.0 * v)
    with pytest.raises(ValueError, match="fewer than 3 directions"):  # all along one axis
        least_squares_force(m.grad_log_df, x, v * np.array([1.0, 0.0, 0.0]))
