"""A whole system that moves is fitted in its rest frame, where its DF is stationary."""

import numpy as np
import pytest

from deeppot_galpy.commands.options import TENSION_BROKEN, rest_frame_note, tension_note
from deeppot_galpy.mocks import Plummer
from deeppot_galpy.potential import JeansMoments
from deeppot_galpy.rest_frame import bulk_motion, to_rest_frame
from deeppot_galpy.stars import Stars


@pytest.fixture(scope="module")
def plummer():
    m = Plummer()
    return m, m.sample(2**14, 5)


def test_a_system_at_rest_is_left_alone(plummer):
    _, ps = plummer
    region = ps.region()
    assert bulk_motion(ps.v, region) is None
    stars = Stars.of(ps, None, None)
    assert to_rest_frame(stars, region)[0] is stars


def test_a_moving_system_is_taken_to_its_rest_frame(plummer):
    m, ps = plummer
    V = np.array([1.2, -0.8, 0.5])  # a few times the dispersion, as a dwarf's orbital motion
    moving = Stars.of(ps.eta + np.r_[0.0, 0.0, 0.0, V], None, None)
    region = moving.summary.region()
    rest, motion = to_rest_frame(moving, region)
    noise = np.asarray(motion["noise"])
    assert np.all(np.abs(np.asarray(motion["velocity"]) - V) < 5 * noise)
    assert np.allclose(rest.eta[:, :3], ps.x) and np.allclose(rest.summary.x, ps.x)
    # the stationary Jeans equations hold for the true potential in the rest frame only
    violation, tension = {}, {}
    for name, s in (("moving", moving.summary), ("rest", rest.summary)):
        jeans = JeansMoments(s.x, s.v, region, n_functions=64, seed=2)
        grad_phi = -m.acceleration(jeans.x.double().numpy())
        violation[name], tension[name] = jeans.violation(grad_phi), jeans.tension(grad_phi)
    assert violation["rest"] < 0.08 < violation["moving"]
    # even the true potential is rejected by the moving stars: the CLI says so loudly
    assert tension["rest"] < 1.6 and tension["moving"] > TENSION_BROKEN
    assert "WARNING" in tension_note(tension["moving"]) and "WARNING" not in tension_note(1.5)
    assert "its error bars are grown" in tension_note(1.5)
    assert "only a sphere's" in tension_note(1.5, spherical=False)
    note = rest_frame_note(motion)
    assert "rest frame" in note and f"{motion['velocity'][0]:.4g}" in note


def test_a_survey_volume_streaming_with_its_galaxy_is_not_moved(plummer):
    _, ps = plummer
    x = ps.x + np.array([40.0, 0.0, 0.0])  # a volume far from the galaxy's centre
    v = ps.v + np.array([0.0, 3.0, 0.0])  # ... carried by the galaxy's rotation
    region = Stars.of(np.concatenate([x, v], axis=1), None, None).summary.region()
    assert bulk_motion(v, region) is None
