"""The radial profile nu(r) from the stars' radii, and its place in the CBE points (issue 12)."""

import numpy as np
import pytest
import torch

from deeppot_galpy.cbe_points import draw_cbe_points
from deeppot_galpy.df import FlowConfig, FlowEnsemble
from deeppot_galpy.df.radial import RadialProfile
from deeppot_galpy.mocks import Plummer


def plummer_slope(r):
    """d ln nu / dr of the Plummer sphere (b = 1)."""
    return -5 * r / (1 + r * r)


@pytest.fixture(scope="module")
def radii():
    return np.linalg.norm(Plummer().sample(2**15, 4).x, axis=1)


def test_the_profile_of_plummer_radii_has_the_true_slope(radii):
    r = np.quantile(radii, [0.05, 0.2, 0.5, 0.8, 0.95])
    x = np.stack([0 * r, r / np.sqrt(2), r / np.sqrt(2)], axis=1)
    grad = RadialProfile.from_radii(radii).grad_log(x)
    np.testing.assert_allclose(grad, (plummer_slope(r) / r)[:, None] * x, rtol=0.08, atol=1e-3)


def test_a_truncated_sample_is_not_read_as_a_falling_density(radii):
    """Stars cut at r = 2: inside the cut the slope stays the sphere's, not the edge's."""
    cut = radii[radii < 2.0]
    r = np.array([1.2, 1.5, 1.8])
    x = np.stack([r, 0 * r, 0 * r], axis=1)
    slope = RadialProfile.from_radii(cut).grad_log(x)[:, 0]
    np.testing.assert_allclose(slope, plummer_slope(r), rtol=0.1)


def test_points_take_nu_and_the_velocities_conditional(radii):
    torch.manual_seed(0)
    config = FlowConfig(steps=1, bins=4, hidden=(8, 8), model="factorised")
    stars = Plummer().sample(512, 1)
    ens = FlowEnsemble(stars.standardization(), 2, config)
    profile = RadialProfile.from_radii(radii)
    points, _ = draw_cbe_points([ens], 256, stars.region(), 3, density=profile)
    eta = np.hstack([points.x, points.v])
    _, conditional = ens.log_prob_and_grad(eta, conditional=True)
    np.testing.assert_allclose(points.gx, conditional[:, :3] + profile.grad_log(points.x))
    np.testing.assert_allclose(points.gv, conditional[:, 3:])
    joint = FlowEnsemble(stars.standardization(), 1, FlowConfig(steps=1, hidden=(8, 8)))
    with pytest.raises(ValueError, match="factorised"):
        joint.log_prob_and_grad(eta, conditional=True)
