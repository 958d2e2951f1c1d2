"""symmetry = "auto": the symmetry the stars show, and none where they show none; the DF
model "auto": the mixture of velocity ellipsoids for a disk's survey volume only."""

from dataclasses import replace

import numpy as np
import pytest

from deeppot_galpy.df.flows import FlowConfig
from deeppot_galpy.mocks import get_mock
from deeppot_galpy.phasespace import PhaseSpace
from deeppot_galpy.shape import MIXTURE_HIDDEN, choose_df_model, choose_symmetry


@pytest.fixture(scope="module")
def plummer():
    return get_mock("plummer").sample(2**14, 5)


def _chosen(x: np.ndarray, v: np.ndarray) -> str:
    return choose_symmetry(x, v, PhaseSpace(x, v).region()).symmetry


def _tilt(x: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return x @ np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def test_a_round_system_is_spherical_and_a_flattened_one_mirror(plummer):
    assert _chosen(plummer.x, plummer.v) == "spherical"
    flat = plummer.x * [1.0, 1.0, 0.8]
    assert _chosen(flat, plummer.v) == "mirror"
    assert _chosen(get_mock("mn_disk").sample(2**12, 1).x, plummer.v[: 2**12]) == "mirror"


@pytest.mark.parametrize(
    "shape",
    [
        lambda x: x * [1.0, 0.9, 0.8],  # triaxial
        lambda x: _tilt(x * [1.0, 1.0, 0.8], 0.3),  # flattened about a tilted axis
        lambda x: x + [0.3, 0.0, 0.0],  # centred away from the origin
    ],
)
def test_no_symmetry_where_the_stars_break_it(plummer, shape):
    assert _chosen(shape(plummer.x), plummer.v) == "none"


def test_a_survey_volume_is_a_disk_only_if_it_rotates(plummer):
    x, v = _volume()
    assert _chosen(x, v + [0.0, 220.0, 0.0]) == "mirror"
    assert _chosen(x, v) == "none"  # a halo-like sample: nothing says where the disk is
    # no hard edge: as many stars per kpc of distance out to 2 kpc (a magnitude limit thins
    # them as 1/d^2), still a disk volume
    rng = np.random.default_rng(3)
    d = (x - [-8.1, 0.0, 0.02]) / np.linalg.norm(x - [-8.1, 0.0, 0.02], axis=1, keepdims=True)
    soft = d * rng.uniform(0, 2, (len(x), 1)) + [-8.1, 0.0, 0.02]
    assert _chosen(soft, v + [0.0, 220.0, 0.0]) == "mirror"
    # a satellite on a tangential orbit: cold and moving, but concentrated to its own centre
    satellite = plummer.x * 0.5 + [50.0, 0.0, 0.0]
    assert _chosen(satellite, 20.0 * plummer.v + [0.0, 250.0, 0.0]) == "none"
    # ... and told to be given about its own centre, which a halo-like volume is not
    region = PhaseSpace(satellite, plummer.v).region()
    reason = choose_symmetry(satellite, 20.0 * plummer.v + [0.0, 250.0, 0.0], region).reason
    assert "one system about (50" in reason
    assert "one system" not in choose_symmetry(x, v, PhaseSpace(x, v).region()).reason


def _volume(n: int = 2**13, seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """A heliocentric volume of radius 1 kpc, velocities of dispersion 30 km/s."""
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    x = d * rng.uniform(0, 1, (n, 1)) ** (1 / 3) + [-8.1, 0.0, 0.02]
    return x, rng.normal(0.0, 30.0, x.shape)


def test_the_mixture_of_ellipsoids_is_chosen_for_a_disk_volume_only(plummer):
    def chosen(x, v, symmetry):
        choice = choose_df_model(x, v, symmetry, PhaseSpace(x, v).region())
        # read at one azimuth (axisymmetric) exactly where the mixture is chosen
        assert choice["axisymmetric"] == (choice["model"] == "mixture")
        # the speed's spline for a sphere's round velocities alone
        assert choice["speed_profile"] == (symmetry == "spherical")
        return choice["model"]

    x, v = _volume()
    rotating = v + [0.0, 220.0, 0.0]
    assert chosen(x, rotating, "mirror") == "mixture"
    # the same volume without a disk's symmetry, or without its rotation
    assert chosen(x, rotating, "none") == "factorised"
    assert chosen(x, v, "mirror") == "factorised"
    # a whole disk (centred on the origin), round or flattened spheres
    disk = get_mock("mn_disk").sample(2**12, 1)
    assert chosen(disk.x, disk.v, "mirror") == "factorised"
    assert chosen(plummer.x, plummer.v, "spherical") == "factorised"
    assert chosen(plummer.x * [1.0, 1.0, 0.8], plummer.v, "mirror") == "factorised"


def test_a_disk_volumes_mixture_is_widened_unless_its_width_is_set(plummer):
    from deeppot_galpy.config import PRESETS
    from deeppot_galpy.pipeline import _resolve_df_model

    def resolved(stars, symmetry, **flow):
        base = PRESETS["default"]
        net = replace(base.potential.config, symmetry=symmetry)
        config = replace(
            base, flow=replace(base.flow, **flow), potential=replace(base.potential, config=net)
        )
        return _resolve_df_model(config, stars, stars.region())

    x, v = _volume()
    volume = PhaseSpace(x, v + [0.0, 220.0, 0.0])
    config, record = resolved(volume, "mirror")
    assert (config.flow.model, config.flow.hidden) == ("mixture", MIXTURE_HIDDEN)
    assert record["hidden"] == list(MIXTURE_HIDDEN)
    assert resolved(volume, "mirror", hidden=(64, 64))[0].flow.hidden == (64, 64)
    sphere = resolved(plummer, "spherical")[0].flow
    assert (sphere.model, sphere.hidden) == ("factorised", FlowConfig.hidden)
    # the azimuth frame: set for the disk's volume, not for the sphere unless set by hand
    assert config.flow.axisymmetric and not sphere.axisymmetric
    assert resolved(plummer, "spherical", axisymmetric=True)[0].flow.axisymmetric
