"""Weak-form Jeans moments: zero for the true potential, and they remove the flows' force bias."""

import numpy as np
import pytest
import torch

from deeppot_galpy.compare import potential_metrics
from deeppot_galpy.mocks import Plummer
from deeppot_galpy.potential import CBEPoints, JeansMoments, PotentialTraining, fit_potential


@pytest.fixture(scope="module")
def plummer():
    m = Plummer()
    ps = m.sample(2**15, 21)
    return m, ps, JeansMoments(ps.x, ps.v, ps.region(), n_functions=64, seed=2)


def test_true_potential_satisfies_the_moments(plummer):
    m, _, jeans = plummer
    x = jeans.x.double().numpy()
    truth = jeans.violation(-m.acceleration(x))
    assert truth < 0.06  # Monte Carlo noise of 2^15 stars
    for factor in (0.85, 1.15):
        assert jeans.violation(-factor * m.acceleration(x)) > 2 * truth


def test_test_functions_stay_inside_the_region(plummer):
    _, ps, jeans = plummer
    region = ps.region()
    reach = np.linalg.norm(jeans.centers - region["center"], axis=1) + 2.5 * jeans.widths
    assert np.all(reach < region["r_max"])


def test_a_range_of_neighbour_fractions_mixes_scales(plummer):
    m, ps, wide = plummer  # 2% of the stars within each function's width

    def moments(neighbours):
        return JeansMoments(ps.x, ps.v, ps.region(), n_functions=64, neighbours=neighbours, seed=2)

    narrow, mixed = moments(0.002), moments((0.002, 0.02))
    med = [np.median(j.widths) for j in (narrow, mixed, wide)]
    assert med[0] < 0.8 * med[1] and med[1] < 0.8 * med[2], med
    assert narrow.widths.min() <= mixed.widths.min() * 1.05
    x = mixed.x.double().numpy()
    assert mixed.violation(-m.acceleration(x)) < 0.1  # still satisfied by the truth


def test_jeans_term_removes_force_bias_of_a_smoothed_df(plummer):
    """A smoothed DF model (grad_x ln f 10% too shallow) biases |a| low with the CBE loss
    alone, as the flows' smoothing does; the stars' own moments pull it towards the truth
    (at the default weight only partly against so large a bias: measured -10% -> -8%)."""
    torch.set_num_threads(1)
    m, ps, jeans = plummer
    sub = ps.subset(np.arange(2**12))
    gx, gv = m.grad_log_df(sub.x, sub.v)
    points = CBEPoints(sub.x, sub.v, 0.9 * gx, gv, m.log_df(sub.x, sub.v))
    held = m.sample(4096, 5).x
    bias = {}
    for weight in (0.0, 10.0):
        cfg = PotentialTraining(steps=500, batch_size=1024, jeans_weight=weight)
        net, _ = fit_potential(points, cfg, progress=False, jeans=jeans)
        bias[weight] = potential_metrics(net, m, held, r_range=(0.1, 3.0))["force_bias_median"]
    assert bias[0.0] < -0.07
    assert abs(bias[10.0]) < 0.9 * abs(bias[0.0])


def test_flattened_functions_hold_for_the_truth_and_see_a_wrong_vertical_force(plummer):
    """Slabs 0.3 times as thick as they are wide: the true force satisfies them, and a force
    whose z component alone is 15% too strong does not."""
    m, ps, _ = plummer
    slabs = JeansMoments(ps.x, ps.v, ps.region(), n_functions=64, seed=2, flattening=0.3)
    axes = torch.linalg.eigvalsh(slabs._metric.double()) ** -0.5  # widths, widest first
    assert torch.allclose(axes[:, 2] / axes[:, 0], torch.full_like(axes[:, 0], 0.3), rtol=1e-4)
    assert torch.allclose(slabs._metric[:, 2, 2].double(), axes[:, 2] ** -2, rtol=1e-4)
    x = slabs.x.double().numpy()
    truth = slabs.violation(-m.acceleration(x))
    assert truth < 0.08
    assert slabs.violation(-m.acceleration(x) * np.array([1.0, 1.0, 1.15])) > 2 * truth


def test_shells_hold_for_the_truth_and_see_a_wrong_radial_force(plummer):
    """Functions 0.3 times as thin along their centre's radius: the true force satisfies
    them, and one 15% too strong does not."""
    m, ps, _ = plummer
    shells = JeansMoments(
        ps.x, ps.v, ps.region(), n_functions=64, seed=2, flattening=0.3, normal="radial"
    )
    n = shells._c.double() / shells._c.double().norm(dim=1, keepdim=True)
    thin = torch.einsum("mi,mij,mj->m", n, shells._metric.double(), n)
    assert torch.allclose(thin, torch.linalg.eigvalsh(shells._metric.double())[:, 2], rtol=1e-4)
    x = shells.x.double().numpy()
    truth = shells.violation(-m.acceleration(x))
    assert truth < 0.1  # Monte Carlo noise of 2^15 stars
    assert shells.violation(-1.15 * m.acceleration(x)) > 2 * truth
    with pytest.raises(ValueError, match="unknown normal"):
        JeansMoments(ps.x, ps.v, ps.region(), n_functions=64, normal="x")
