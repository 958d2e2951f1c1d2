"""Bootstrap replicates of the potential: error bars that cover the truth at the stated rate."""

import warnings

import numpy as np
import pytest
import torch

from deeppot_galpy.compare import coverage
from deeppot_galpy.mocks import Plummer, get_mock
from deeppot_galpy.potential import CBEPoints, PotentialTraining, fit_potential
from deeppot_galpy.potential.replicates import (
    SIGMA_CALIBRATION,
    SPHERE_CALIBRATION,
    TENSION_GAIN,
    TENSION_NOISE,
    VOLUME_CALIBRATION,
    calibration,
    fit_calibration,
    fit_replicates,
    replicate_spread,
)
from deeppot_galpy.rundir import RunDir


def _noisy_points(m: Plummer, n: int, seed: int) -> CBEPoints:
    """Plummer stars with the true grad_x ln f times 50% independent noise: a known error.

    Noise on grad_x ln f scatters the fit without biasing it. (Noise on grad_v ln f would also
    bias |a| low, by attenuation, in every replicate alike: a shared error that no bootstrap
    sees, and that the coverage measured on the mocks includes.)
    """
    ps = m.sample(n, seed)
    gx, gv = m.grad_log_df(ps.x, ps.v)
    gx = gx * (1 + 0.5 * np.random.default_rng(seed).normal(size=gx.shape))
    return CBEPoints(ps.x, ps.v, gx, gv, m.log_df(ps.x, ps.v))


@pytest.fixture(scope="module")
def fitted():
    torch.set_num_threads(1)
    m = Plummer()
    cfg = PotentialTraining(
        steps=400, batch_size=512, jeans_weight=0, replicates=6, replicate_steps=200
    )
    points = _noisy_points(m, 2**12, 0)
    base, _ = fit_potential(points, cfg, seed=1, progress=False)
    nets = fit_replicates(
        base, lambda b: (_noisy_points(m, 2**12, 10 + b), None), cfg, points.x, 2, "cpu", False
    )
    return m, points, base, nets


def test_replicate_errors_cover_the_truth(fitted):
    m, _, base, nets = fitted
    x = m.sample(4096, 99).x
    r = np.linalg.norm(x, axis=1)
    x = x[(r > 0.1) & (r < 3.0)]
    cov = coverage(base, m, x, replicate_spread(nets, x, factors=None), m.units.G)
    force = cov["force"]
    # the fit's error comes from the gradient noise, which the replicates redraw: the spread
    # must be of the size of the error (zero spread would cover nothing, a huge one everything)
    assert 0.45 < force["within_1sigma"] < 0.85, force
    assert force["within_2sigma"] > force["within_1sigma"] + 0.1, force
    assert 0.5 < force["sigma_rel_median"] / force["err_rel_median"] < 2.0, force


def test_replicates_share_the_zero_point_and_round_trip(fitted, tmp_path):
    _, points, base, nets = fitted
    ref = torch.as_tensor(points.x, dtype=torch.float32)
    with torch.no_grad():
        mean0 = base(ref).mean()
        for net in nets:
            assert abs(float(net(ref).mean() - mean0)) < 1e-4 * abs(float(mean0))
    run = RunDir(tmp_path, create=True)
    assert run.load_replicates() == []
    run.save_replicates(nets)
    loaded = run.load_replicates()
    x = np.random.default_rng(0).normal(size=(50, 3))
    for a, b in zip(nets, loaded, strict=True):
        np.testing.assert_array_equal(a.evaluate(x)["acc"], b.evaluate(x)["acc"])


def test_replicate_settings_are_validated():
    with pytest.raises(ValueError, match="spread needs two"):
        PotentialTraining(replicates=1)
    with pytest.raises(ValueError, match="at least two"):
        replicate_spread([], np.zeros((1, 3)))


def test_error_bars_refuse_too_few_replicates_and_unknown_quantities(fitted):
    from deeppot_galpy import DeepPotential
    from deeppot_galpy.uncertainty import error_bars

    _, _, _, nets = fitted
    reps = [DeepPotential(net) for net in nets]
    with pytest.raises(ValueError, match="at least two replicates"):
        error_bars(reps[:1], 1.0)
    with pytest.raises(ValueError, match="unknown quantities"):
        error_bars(reps, 1.0, quantities=["mass"])
    # galpy's own spread of v_c over the replicates, in natural units
    bars = error_bars(reps, np.array([0.5, 1.0]), quantities=["vcirc"])
    vc = np.array([p.vcirc(np.array([0.5, 1.0]), phi=0.0) for p in reps])
    np.testing.assert_allclose(bars["vcirc"], SIGMA_CALIBRATION["force"] * vc.std(axis=0, ddof=1))


def test_a_survey_volume_takes_its_own_calibration(fitted):
    from deeppot_galpy import DeepPotential
    from deeppot_galpy.uncertainty import error_bars

    whole = {"center": [0.0, 0.0, 0.0], "r_min": 0.0, "r_max": 3.0}
    volume = {"center": [1.0, 0.0, 0.0], "r_min": 0.0, "r_max": 0.6, "survey_volume": True}
    assert calibration(whole) is SIGMA_CALIBRATION and calibration(None) is SIGMA_CALIBRATION
    assert calibration(volume) is VOLUME_CALIBRATION
    _, _, _, nets = fitted
    R = np.array([0.8, 1.2])  # inside both regions
    vc = np.array([DeepPotential(net).vcirc(R, phi=0.0) for net in nets]).std(axis=0, ddof=1)
    for region, factors in ((whole, SIGMA_CALIBRATION), (volume, VOLUME_CALIBRATION)):
        reps = [DeepPotential(net, region=region) for net in nets]
        bars = error_bars(reps, R, quantities=["vcirc"])
        np.testing.assert_allclose(bars["vcirc"], factors["force"] * vc, rtol=1e-10)


def test_a_spherical_fit_grows_its_error_bars_with_its_tension():
    whole = {"center": [0.0, 0.0, 0.0], "r_min": 0.0, "r_max": 3.0}
    volume = {"center": [1.0, 0.0, 0.0], "r_min": 0.0, "r_max": 0.6, "survey_volume": True}
    assert calibration(whole, "spherical", TENSION_NOISE) == SPHERE_CALIBRATION
    tense = calibration(whole, "spherical", TENSION_NOISE + 0.5)
    grow = np.sqrt(1 + 0.5 * TENSION_GAIN)
    for kind, factor in SPHERE_CALIBRATION.items():
        assert tense[kind] == pytest.approx(grow * factor)
    # other kinds of fit, or a sphere whose tension was not measured, keep their factors
    assert calibration(whole, "mirror", 2.0) is SIGMA_CALIBRATION
    assert calibration(whole, "spherical", None) is SIGMA_CALIBRATION
    assert calibration(volume, "spherical", 2.0) is VOLUME_CALIBRATION
    # a saved fit quotes the factors it recorded; an older file, its region's
    assert fit_calibration({"region": whole, "calibration": tense}) == tense
    assert fit_calibration({"region": volume}) is VOLUME_CALIBRATION


def test_coverage_where_the_replicates_agree_exactly():
    # e.g. a symmetric potential's force component that vanishes on its axis in every replicate
    m = Plummer()
    x = m.sample(256, 1).x
    zero = {"phi": np.zeros(len(x)), "acc": np.zeros((len(x), 3)), "density": np.zeros(len(x))}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exact = coverage(m, m, x, zero, m.units.G)
        wrong = coverage(get_mock("nfw"), m, x, zero, m.units.G)
    assert all(exact[k]["within_1sigma"] == 1.0 for k in ("phi", "force", "density"))
    assert all(wrong[k]["within_2sigma"] == 0.0 for k in ("force", "density"))


def test_replicates_draw_the_points_their_calibration_was_measured_with(monkeypatch):
    """A fit with more CBE points than REPLICATE_POINTS (the default preset's 2^17) keeps its
    replicates at the calibration's count; fewer are drawn as asked."""
    from deeppot_galpy import cbe_points
    from deeppot_galpy.df import FlowConfig, FlowEnsemble

    torch.manual_seed(0)
    stars = Plummer().sample(512, 1)
    ens = FlowEnsemble(stars.standardization(), 2, FlowConfig(steps=1, hidden=(8, 8)))
    monkeypatch.setattr(cbe_points, "REPLICATE_POINTS", 128)
    cfg = PotentialTraining(jeans_weight=0.0)
    for asked, drawn in ((1024, 128), (64, 64)):
        sample = cbe_points.replicate_inputs(ens, stars, stars.region(), asked, cfg, 0, "cpu")
        points, jeans = sample(1)
        assert 0.8 * drawn <= len(points) <= drawn and jeans is None
