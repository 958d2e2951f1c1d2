"""Frame parameters and the Galactocentric <-> ICRS transforms (deeppot_galpy.data.frames)."""

import json

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import Galactic, Galactocentric, SkyCoord, galactocentric_frame_defaults

from deeppot_galpy.data import (
    FrameParameters,
    galactocentric_to_observables,
    observables_to_galactocentric,
    skycoord_to_galactocentric,
    sun_position,
)

OTHER = FrameParameters(
    galcen_distance=8.3, z_sun=27.0, galcen_v_sun=(11.1, 232.24, 7.25), roll=0.0
)


def _stars(n=500, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 3.0, (n, 3)), rng.normal(0.0, 150.0, (n, 3))


def _obs_arrays(obs):
    keys = ("ra", "dec", "distance", "pmra", "pmdec", "radial_velocity")
    return [obs[k] for k in keys]


def test_defaults_are_astropys_current_ones():
    f = FrameParameters()
    gc = Galactocentric()
    assert f.galcen_distance == pytest.approx(gc.galcen_distance.to_value(u.kpc))
    assert f.z_sun == pytest.approx(gc.z_sun.to_value(u.pc))
    assert f.galcen_v_sun == pytest.approx(tuple(gc.galcen_v_sun.xyz.to_value(u.km / u.s)))
    # read at creation time, not frozen at import
    with galactocentric_frame_defaults.set("pre-v4.0"):
        assert FrameParameters().galcen_distance == pytest.approx(8.3)
    assert FrameParameters().galcen_distance == pytest.approx(f.galcen_distance)


def test_to_frame_and_back():
    frame = OTHER.to_frame()
    assert frame.galcen_distance.to_value(u.kpc) == pytest.approx(8.3)
    assert frame.z_sun.to_value(u.pc) == pytest.approx(27.0)
    assert FrameParameters.from_frame(frame) == OTHER


def test_dict_round_trip_is_json_safe_and_validated():
    d = OTHER.to_dict()
    assert set(d) == {
        "galcen_distance_kpc",
        "z_sun_pc",
        "galcen_v_sun_kms",
        "roll_deg",
        "galcen_ra_deg",
        "galcen_dec_deg",
    }
    assert FrameParameters.from_dict(json.loads(json.dumps(d))) == OTHER
    assert FrameParameters.from_dict({"galcen_distance_kpc": 8.0}).z_sun == FrameParameters().z_sun
    with pytest.raises(ValueError, match="r0_kpc"):
        FrameParameters.from_dict({"r0_kpc": 8.0})
    with pytest.raises(ValueError, match="galcen_distance"):
        FrameParameters(galcen_distance=-1.0)
    with pytest.raises(ValueError, match="galcen_v_sun"):
        FrameParameters(galcen_v_sun=(1.0, 2.0))


@pytest.mark.parametrize("frame", [FrameParameters(), OTHER], ids=["default", "other"])
def test_round_trip_recovers_phase_space(frame):
    x, v = _stars()
    obs = galactocentric_to_observables(x, v, frame)
    x2, v2 = observables_to_galactocentric(*_obs_arrays(obs), frame)
    np.testing.assert_allclose(x2, x, rtol=0, atol=1e-11)
    np.testing.assert_allclose(v2, v, rtol=0, atol=1e-9)


def test_chunks_and_row_selection_do_not_change_results():
    x, v = _stars(101)
    frame = FrameParameters()
    arrays = _obs_arrays(galactocentric_to_observables(x, v, frame))
    full = observables_to_galactocentric(*arrays, frame)
    chunked = observables_to_galactocentric(*arrays, frame, chunk_rows=7)
    rows = np.array([3, 50, 99])
    picked = observables_to_galactocentric(*arrays, frame, rows=rows, chunk_rows=2)
    for a, b in zip(full, chunked, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(picked[0], full[0][rows])


def test_frame_changes_results():
    x, v = _stars(50)
    obs = galactocentric_to_observables(x, v, FrameParameters())
    x_other, v_other = observables_to_galactocentric(*_obs_arrays(obs), OTHER)
    # Mostly a shift by the change in R0 along x and in v_sun.
    assert np.median(x_other[:, 0] - x[:, 0]) == pytest.approx(-(8.3 - 8.122), abs=0.02)
    assert np.abs(v_other - v).max() > 1.0


def test_sun_position():
    frame = FrameParameters()
    sun = sun_position(frame)
    assert np.linalg.norm(sun) == pytest.approx(frame.galcen_distance, rel=1e-9)
    assert sun[0] < 0
    assert sun[2] == pytest.approx(frame.z_sun / 1000.0, rel=1e-6)


def test_skycoord_in_galactic_frame():
    x, v = _stars(200)
    frame = FrameParameters()
    gc = SkyCoord(
        Galactocentric(
            x=x[:, 0] * u.kpc,
            y=x[:, 1] * u.kpc,
            z=x[:, 2] * u.kpc,
            v_x=v[:, 0] * u.km / u.s,
            v_y=v[:, 1] * u.km / u.s,
            v_z=v[:, 2] * u.km / u.s,
            **{k: getattr(frame.to_frame(), k) for k in Galactocentric.frame_attributes},
        )
    )
    galactic = gc.transform_to(Galactic())
    x2, v2 = skycoord_to_galactocentric(galactic, frame, chunk_rows=64)
    np.testing.assert_allclose(x2, x, atol=1e-10)
    np.testing.assert_allclose(v2, v, atol=1e-8)


def test_skycoord_without_radial_velocity_is_refused():
    c = SkyCoord(
        ra=[10.0, 20.0] * u.deg,
        dec=[0.0, 5.0] * u.deg,
        distance=[1.0, 2.0] * u.kpc,
        pm_ra_cosdec=[1.0, 2.0] * u.mas / u.yr,
        pm_dec=[1.0, 2.0] * u.mas / u.yr,
    )
    with pytest.raises(ValueError, match="radial velocity"):
        skycoord_to_galactocentric(c, FrameParameters())
    with pytest.raises(ValueError, match="distance"):
        skycoord_to_galactocentric(SkyCoord(ra=[1.0] * u.deg, dec=[2.0] * u.deg), FrameParameters())
