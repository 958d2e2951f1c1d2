"""Survey volumes: a hard-edged sample is recognised and the potential fit keeps off its rim."""

import numpy as np
import pytest

from deeppot_galpy.cbe_points import draw_cbe_points
from deeppot_galpy.mocks import Plummer
from deeppot_galpy.phasespace import EDGE_TRIM, FilledVolume, PhaseSpace
from deeppot_galpy.units import Units


def _heliocentric_ball(n: int, radius: float, sun: np.ndarray, seed: int = 0) -> PhaseSpace:
    """Stars of a disk-like density (denser towards -x and the plane) cut to a ball."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-radius, radius, (8 * n, 3))
    x = x[np.linalg.norm(x, axis=1) < radius]
    weight = np.exp(-x[:, 0] / 2.6 - np.abs(x[:, 2]) / 0.3)
    x = x[rng.uniform(size=len(x)) < weight / weight.max()][:n] + sun
    v = rng.normal(0.0, 30.0, x.shape)
    return PhaseSpace.from_eta(np.hstack([x, v]), Units.galactic(), {})


def test_a_heliocentric_cylinder_is_told_from_a_ball_by_its_faces():
    """A disk cut to R <= 1 kpc, |z| <= 0.5 kpc about the Sun fills a cylinder: fitted inside
    its side and its faces; the same disk in a ball stays a ball."""
    sun = np.array([-8.122, 0.0, 0.0208])
    stars = _heliocentric_ball(2**15, 1.5, sun)
    d = stars.x - sun
    cut = stars.subset((np.hypot(d[:, 0], d[:, 1]) <= 1.0) & (np.abs(d[:, 2]) <= 0.5))
    region = cut.region()
    assert region["survey_volume"]
    assert region["r_fit"] == pytest.approx(1.0 * (1.0 - EDGE_TRIM), rel=0.03)
    assert region["z_fit"] == pytest.approx(0.5 * (1.0 - EDGE_TRIM), rel=0.05)
    volume = FilledVolume.of(region)
    assert volume.half_height == pytest.approx(0.5, rel=0.05)
    assert np.mean(volume.depth(cut.x) < 0) < 0.03
    assert stars.region()["z_fit"] is None


def test_a_galaxy_has_no_survey_edge():
    region = Plummer().sample(2**14, 0).region()
    assert region["edge_contrast"] < 0.3
    assert region["r_fit"] == region["r_max"]
    assert region["fit_center"] == region["center"] and region["z_fit"] is None


def test_a_heliocentric_ball_is_fitted_inside_its_rim():
    sun = np.array([-8.122, 0.0, 0.0208])
    region = _heliocentric_ball(2**14, 1.5, sun).region()
    assert region["edge_contrast"] > 0.3
    # about the Sun (the ball's middle), not the median star, which sits towards the centre
    assert np.linalg.norm(np.asarray(region["fit_center"]) - sun) < 0.05
    assert np.linalg.norm(np.asarray(region["center"]) - sun) > 0.1
    assert region["r_fit"] == pytest.approx(1.5 * (1.0 - EDGE_TRIM), rel=0.02)


def test_a_large_ball_blurred_by_distance_errors_is_a_survey_volume():
    """A thin disk in a 3 kpc ball fills little of its outer shell, and DR3-like parallax errors
    (9% in distance at the rim) blur the rim: still a survey volume, fitted inside its rim."""
    sun = np.array([-8.122, 0.0, 0.0208])
    stars = _heliocentric_ball(2**15, 3.0, sun)
    d = stars.x - sun
    blur = 1.0 + 0.09 * np.linalg.norm(d, axis=1) / 3.0 * np.random.default_rng(1).normal(
        size=len(d)
    )
    region = PhaseSpace(sun + d * blur[:, None], stars.v, stars.units).region()
    assert region["survey_volume"]
    # the blur reaches further on the denser side: the middle is off the Sun by under a tenth
    assert np.linalg.norm(np.asarray(region["fit_center"]) - sun) < 0.3
    assert region["r_fit"] == pytest.approx(3.0 * (1.0 - EDGE_TRIM), rel=0.1)


class _UniformBall:
    """A stand-in flow ensemble: points filling a ball, zero gradients."""

    def __init__(self, center: np.ndarray, radius: float):
        self.center, self.radius = center, radius

    def sample(self, n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(4 * n, 3))
        x *= (rng.uniform(size=(4 * n, 1)) ** (1 / 3)) / np.linalg.norm(x, axis=1, keepdims=True)
        return np.hstack([self.center + self.radius * x[:n], np.zeros((n, 3))])

    def log_prob_and_grad(
        self, eta: np.ndarray, conditional: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros(len(eta)), np.ones_like(eta)


def test_cbe_points_keep_to_the_fit_ball():
    center = np.array([-8.0, 0.0, 0.0])
    region = {"center": [-7.8, 0.0, 0.0], "r_max": 1.6, "fit_center": center, "r_fit": 1.2}
    points, report = draw_cbe_points([_UniformBall(center, 1.5)], 4000, region, seed=0)
    d = np.linalg.norm(points.x - center, axis=1)
    assert d.max() <= 1.2
    assert report["dropped_outside_region"] == pytest.approx(4000 * (1 - (1.2 / 1.5) ** 3), rel=0.1)
