"""The optional Agama bridge: fields, exports within their reported error, the Agama disk mock.

Tests that need agama skip without it; the install advice is tested everywhere.
"""

import sys
import warnings

import numpy as np
import pytest
import torch

from deeppot_galpy.compare import as_field, field_errors, in_region
from deeppot_galpy.mocks import MiyamotoNagaiDisk, Plummer
from deeppot_galpy.potential import PotentialConfig, PotentialNet
from deeppot_galpy.units import Units

torch.set_num_threads(1)


@pytest.fixture
def agama():
    """agama in N-body units (G = 1), put back there afterwards (its units are global)."""
    mod = pytest.importorskip("agama")
    with warnings.catch_warnings():  # resetting units with live instances warns; we know
        warnings.simplefilter("ignore", RuntimeWarning)
        mod.setUnits()
        yield mod
        mod.setUnits()


def test_missing_agama_says_how_to_install(monkeypatch):
    from deeppot_galpy import agama as bridge

    monkeypatch.setitem(sys.modules, "agama", None)  # makes `import agama` fail
    with pytest.raises(ImportError, match="pip install agama"):
        bridge.require_agama()
    with pytest.raises(ImportError, match="GSL"):
        bridge.to_agama(Plummer(), {"center": [0, 0, 0], "r_min": 0.1, "r_max": 1.0})


@pytest.mark.agama
def test_agama_potential_is_a_reference_field(agama):
    pot = agama.Potential(type="Plummer", mass=1.0, scaleRadius=1.0)
    x = Plummer().sample(2000, 0).x
    errs = field_errors(pot, Plummer(), x)
    for key in ("phi", "force", "density"):
        assert np.max(errs[key]) < 1e-10


@pytest.mark.agama
def test_multipole_export_of_a_known_field(agama):
    from deeppot_galpy.agama import to_agama

    region = Plummer().sample(4096, 1).region()
    pot, report = to_agama(Plummer(), region, lmax=4)
    assert report["force_err_p90"] < 1e-5 and report["phi_err_p90"] < 1e-6
    assert report["density_err_median"] < 1e-3
    x = Plummer().sample(2000, 2).x
    x = x[in_region(x, region)]
    assert np.median(field_errors(pot, Plummer(), x)["force"]) < 1e-5


@pytest.mark.agama
def test_network_export_matches_within_reported_tolerance(agama):
    from deeppot_galpy.agama import to_agama

    torch.manual_seed(0)
    net = PotentialNet(torch.zeros(3), 1.0, 1.0, PotentialConfig(hidden=(32, 32)))
    region = Plummer().sample(4096, 1).region()
    pot, report = to_agama(net, region, lmax=8, seed=3)
    assert report["n_check"] == 4096 and report["kind"] == "Multipole"
    # fresh points in the region: ~90% of force errors below the reported p90
    from deeppot_galpy.agama import _check_points

    fresh = field_errors(pot, net, _check_points(region, 4096, seed=99))["force"]
    assert 0.85 < np.mean(fresh <= report["force_err_p90"]) < 0.95
    assert np.median(fresh) == pytest.approx(report["force_err_median"], rel=0.2)


@pytest.mark.agama
def test_cylspline_export_about_an_off_axis_centre(agama):
    """A local volume of the MN disk, off its axis: the expansion is built about the data
    centre and shifted back with Agama's ``center`` modifier."""
    from deeppot_galpy.agama import to_agama

    disk = MiyamotoNagaiDisk()
    region = {"center": [1.0, 0.0, 0.0], "r_min": 0.02, "r_max": 0.5,
              "lo": [0.5, -0.5, -0.2], "hi": [1.5, 0.5, 0.2]}  # fmt: skip
    pot, report = to_agama(disk, region, kind="CylSpline", lmax=12, grid_size_R=24,
                           grid_size_z=24)  # fmt: skip
    assert report["zmax"] == pytest.approx(0.2)
    assert report["force_err_p90"] < 1e-3
    x = np.array([[1.2, 0.1, 0.05], [0.8, -0.2, -0.1]])
    np.testing.assert_allclose(as_field(pot).potential(x), disk.potential(x), rtol=1e-5)


@pytest.mark.agama
def test_export_refuses_mismatched_units(agama):
    from deeppot_galpy.agama import to_agama

    region = {"center": [0, 0, 0], "r_min": 0.1, "r_max": 10.0}
    with pytest.raises(ValueError, match=r"setUnits\(length=1, velocity=1, mass=1\)"):
        to_agama(Plummer(), region, units=Units.galactic())


@pytest.mark.agama
def test_agama_disk_mock(agama):
    from deeppot_galpy.agama import AgamaDiskMock
    from deeppot_galpy.mocks import get_mock

    mock = get_mock("agama_qi_disk")
    assert isinstance(mock, AgamaDiskMock)
    ps = mock.sample(2048, seed=4)
    assert ps.units == Units.galactic()
    np.testing.assert_array_equal(mock.sample(64, seed=4).x, mock.sample(64, seed=4).x)
    R = np.hypot(ps.x[:, 0], ps.x[:, 1])
    vphi = (ps.x[:, 0] * ps.v[:, 1] - ps.x[:, 1] * ps.v[:, 0]) / R
    near_sun = np.abs(R - 8.0) < 1.0
    assert 180 < np.median(vphi[near_sun]) < 240  # km/s
    assert np.median(np.abs(ps.x[:, 2])) < 0.6  # kpc
    # the galpy twin in natural units (ro = 8 kpc, vo = 220 km/s)
    x = ps.x[:500]
    galpy = as_field(mock.galpy_potential())
    np.testing.assert_allclose(galpy.potential(x / 8.0) * 220.0**2, mock.potential(x), rtol=1e-8)
    np.testing.assert_allclose(
        galpy.density(x / 8.0) * 220.0**2 / 64.0 / mock.units.G, mock.density(x), rtol=1e-8
    )
    # changing agama's global units afterwards is caught
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        agama.setUnits()
    with pytest.raises(ValueError, match="setUnits"):
        mock.potential(x)


@pytest.mark.agama
def test_deep_potential_export_uses_its_network_region_and_units(agama):
    from deeppot_galpy.agama import to_agama
    from deeppot_galpy.galpy_potential import DeepPotential

    torch.manual_seed(1)
    net = PotentialNet(torch.zeros(3), 1.0, 1.0, PotentialConfig(hidden=(32, 32)))
    region = Plummer().sample(4096, 1).region()
    dp = DeepPotential(net, Units.nbody(), region)
    _, from_dp = to_agama(dp, lmax=6, seed=3)
    _, from_net = to_agama(net, region, lmax=6, seed=3)
    assert from_dp["center"] == pytest.approx(region["center"])
    # the float64 copy and the float32 original export alike
    assert from_dp["force_err_median"] == pytest.approx(from_net["force_err_median"], rel=0.05)
