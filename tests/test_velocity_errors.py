"""Velocity measurement errors: their covariance from a Gaia table, and the Jeans moments'
deconvolution of them."""

import astropy.units as u
import numpy as np
import pytest
from astropy.table import Table

from deeppot_galpy.cbe_points import CBEPoints
from deeppot_galpy.data import QualityCuts, catalog_to_phasespace
from deeppot_galpy.data.frames import (
    FrameParameters,
    observables_to_galactocentric,
    velocity_covariance,
)
from deeppot_galpy.mocks import Plummer
from deeppot_galpy.potential import PotentialTraining, fit_potential
from deeppot_galpy.potential.jeans import JeansMoments


def _observables(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "ra": rng.uniform(0, 360, n),
        "dec": np.degrees(np.arcsin(rng.uniform(-1, 1, n))),
        "parallax": rng.uniform(0.8, 3.0, n),
        "pmra": rng.normal(0, 20, n),
        "pmdec": rng.normal(0, 20, n),
        "radial_velocity": rng.normal(0, 40, n),
    }


def test_the_covariance_is_that_of_the_transformed_velocities():
    """Monte Carlo draws of (pmra, pmdec, RV, parallax) with a pm-pm and a parallax-pm
    correlation, pushed through astropy: their Galactocentric velocity covariance matches."""
    frame = FrameParameters()
    obs = {k: v[:1].repeat(20000) for k, v in _observables(1, 0).items()}
    sigma = {"pmra": 0.05, "pmdec": 0.08, "radial_velocity": 2.0, "parallax": 0.02}
    rho = {("pmra", "pmdec"): 0.4, ("parallax", "pmra"): -0.3}
    names = ["pmra", "pmdec", "radial_velocity", "parallax"]
    cov_obs = np.diag([sigma[k] ** 2 for k in names])
    for (p, q), r in rho.items():
        i, j = names.index(p), names.index(q)
        cov_obs[i, j] = cov_obs[j, i] = r * sigma[p] * sigma[q]
    draws = np.random.default_rng(1).multivariate_normal(np.zeros(4), cov_obs, len(obs["ra"]))
    shifted = {**obs, **{k: obs[k] + draws[:, i] for i, k in enumerate(names)}}
    _, v = observables_to_galactocentric(
        shifted["ra"],
        shifted["dec"],
        1 / shifted["parallax"],
        shifted["pmra"],
        shifted["pmdec"],
        shifted["radial_velocity"],
        frame,
    )
    n1 = slice(0, 1)
    cov = velocity_covariance(
        obs["ra"][n1],
        obs["dec"][n1],
        1 / obs["parallax"][n1],
        obs["pmra"][n1],
        obs["pmdec"][n1],
        {k: np.array([s]) for k, s in sigma.items()},
        {pq: np.array([r]) for pq, r in rho.items()},
        frame,
    )[0]
    mc = np.cov(v.T)
    scale = np.sqrt(np.outer(np.diag(mc), np.diag(mc)))
    np.testing.assert_allclose(cov / scale, mc / scale, atol=0.04)  # MC error ~ 2 / sqrt(2e4)


def _gaia_table(obs: dict[str, np.ndarray], parallax_error: np.ndarray) -> Table:
    """A Gaia-archive table of ``obs`` with errors of 0.1 mas/yr and 3 km/s."""
    n = len(obs["ra"])
    table = Table({k: v for k, v in obs.items()})
    for k, unit in (("ra", u.deg), ("dec", u.deg), ("parallax", u.mas)):
        table[k].unit = unit
    for k in ("pmra", "pmdec"):
        table[k].unit = u.mas / u.yr
        table[f"{k}_error"] = np.full(n, 0.1) * u.mas / u.yr
    table["radial_velocity"].unit = u.km / u.s
    table["radial_velocity_error"] = np.full(n, 3.0) * u.km / u.s
    table["parallax_error"] = parallax_error * u.mas
    return table


def test_a_gaia_table_carries_its_velocity_covariance_and_bad_errors_are_refused():
    table = _gaia_table(_observables(50, 2), np.full(50, 0.01))
    data, report = catalog_to_phasespace(table, cuts=QualityCuts(min_stars=10))
    assert data.v_cov.shape == (50, 3, 3)
    # the RV alone gives 3 km/s along the line of sight: the trace is at least 9
    assert np.all(np.trace(data.v_cov, axis1=1, axis2=2) >= 9.0)
    assert any("velocity errors from" in note for note in report.notes)
    assert np.allclose(data.subset(np.arange(5)).v_cov, data.v_cov[:5])
    table["pmra_error"][3] = -0.1
    with pytest.raises(ValueError, match="pmra_error.*1 invalid"):
        catalog_to_phasespace(table, cuts=QualityCuts(min_stars=10))


def test_jeans_moments_of_noisy_velocities_hold_only_when_deconvolved():
    """Plummer stars whose velocities carry errors of 0.2-0.5 of the dispersion, each star its
    own anisotropic covariance: the true force satisfies the weak-form moments once the
    covariances are subtracted, and violates them several times more without."""
    mock = Plummer()
    stars = mock.sample(2**16, 4)
    rng = np.random.default_rng(5)
    axes = rng.normal(size=(len(stars), 3, 3)) * rng.uniform(0.1, 0.25, (len(stars), 1, 1))
    cov = axes @ axes.transpose(0, 2, 1)
    v = stars.v + np.einsum("nij,nj->ni", np.linalg.cholesky(cov), rng.normal(size=stars.v.shape))
    violation = {}
    for name, c in (("deconvolved", cov), ("ignored", None)):
        jeans = JeansMoments(stars.x, v, stars.region(), 64, seed=2, v_cov=c)
        violation[name] = jeans.violation(-mock.acceleration(jeans.x.double().numpy()))
    assert violation["deconvolved"] < 0.12
    assert violation["ignored"] > 2.5 * violation["deconvolved"]
    with pytest.raises(ValueError, match="linear family"):
        JeansMoments(stars.x, v, stars.region(), 64, velocity="cubic", v_cov=cov)


def test_a_gaia_table_with_parallax_errors_is_observed_once_more():
    """The stars observed once more (every error drawn again, for the Jeans moments' SIMEX):
    the same rows, distances that differ by the parallaxes' relative errors, and none where
    the parallaxes are exact."""
    obs = _observables(4000, 3)
    table = _gaia_table(obs, 0.05 * obs["parallax"])
    cuts = QualityCuts(min_stars=10)
    data, report = catalog_to_phasespace(table, cuts=cuts)
    x1, v1 = data.reobserved
    assert x1.shape == v1.shape == data.x.shape
    sun = np.asarray(FrameParameters().to_frame().galcen_distance.to_value(u.kpc))
    d0 = np.linalg.norm(data.x - [-sun, 0, 0], axis=1)
    d1 = np.linalg.norm(x1 - [-sun, 0, 0], axis=1)
    # 1/(parallax (1 + 0.05 e)) - 1/parallax ~ -0.05 e: the z-offset of the Sun aside
    assert 0.045 < np.std(d1 / d0 - 1) < 0.056
    assert abs(np.median(d1 / d0 - 1)) < 0.005
    assert any("observed once more" in note for note in report.notes)
    part = data.subset(np.arange(7))
    assert np.array_equal(part.reobserved[0], x1[:7]) and np.array_equal(part.reobserved[1], v1[:7])
    table["parallax_error"] = np.zeros(4000) * u.mas
    assert (
        catalog_to_phasespace(table, cuts=QualityCuts(min_stars=10, min_parallax_over_error=None))[
            0
        ].reobserved
        is None
    )


def _distance_errors(x, v, observer, sigma, rng):
    """x, v seen from ``observer`` with relative distance errors ``sigma``: each star moves
    along its line of sight and its tangential velocity scales with its distance."""
    los = x - observer
    n = los / np.linalg.norm(los, axis=1, keepdims=True)
    scale = 1.0 + sigma * rng.normal(size=(len(x), 1))
    v_r = (v * n).sum(1, keepdims=True) * n
    return observer + los * scale, v_r + (v - v_r) * scale


def test_distance_errors_leave_the_jeans_moments_once_observed_again():
    """Plummer stars seen from inside the sphere with 15% distance errors: the true force
    violates their moments (tension ~20, the force asked ~3% low), also with the
    velocities' part of the errors subtracted; extrapolated from the stars observed once
    more (SIMEX) it satisfies them nearly as it does the error-free stars', and a force 10%
    weaker does not. A few steps of a potential fit take the moments' second positions."""
    mock, rng = Plummer(), np.random.default_rng(5)
    stars = mock.sample(2**16, 4)
    observer = np.array([-1.5, 0.0, 0.0])
    x, v = _distance_errors(stars.x, stars.v, observer, 0.15, rng)
    n = (x - observer) / np.linalg.norm(x - observer, axis=1, keepdims=True)
    v_t = v - (v * n).sum(1, keepdims=True) * n
    v_cov = 0.15**2 * np.einsum("ni,nj->nij", v_t, v_t)  # the velocities' part, first order
    scores = {}
    for name, kw in (
        ("ignored", {}),
        ("velocities", {"v_cov": v_cov}),
        ("simex", {"reobserved": _distance_errors(x, v, observer, 0.15, rng)}),
    ):
        jeans = JeansMoments(x, v, stars.region(), 64, seed=2, **kw)
        acc = mock.acceleration(jeans.positions.double().numpy())
        scores[name] = (jeans.tension(-acc), jeans.violation(-acc), jeans.violation(-0.9 * acc))
    assert scores["simex"][0] < 3.0, scores
    assert min(scores["ignored"][0], scores["velocities"][0]) > 3 * scores["simex"][0], scores
    assert scores["simex"][2] > 1.5 * scores["simex"][1], scores
    with pytest.raises(ValueError, match="not both"):
        JeansMoments(x, v, stars.region(), 64, v_cov=v_cov, reobserved=(x, v))

    sub = stars.subset(np.arange(2**11))
    gx, gv = mock.grad_log_df(sub.x, sub.v)
    points = CBEPoints(sub.x, sub.v, gx, gv, mock.log_df(sub.x, sub.v))
    cfg = PotentialTraining(steps=20, batch_size=256, jeans_weight=10.0, jeans_batch=64)
    _, history = fit_potential(points, cfg, progress=False, jeans=jeans)
    assert history["seconds"] > 0 and history["jeans_weight"] == 10.0
