"""The optional Agama bridge: fields, exports within their reported error, the Agama disk mock.

Tests that need agama skip without it; the install advice is tested everywhere.
"""

import sys
import warnings

import numpy as np
import pytest
import torch

from deeppot_galpy.compare import CHECK_POINTS, as_field, check_points, field_errors, in_region
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
    with pytest.raises(ImportError, match="pip install agama") as err:
        bridge.require_agama()
    # what `pip install agama` needs, and Agama's own instructions
    for needs in ("network", "GSL", "compiler", "github.com/GalacticDynamics-Oxford/Agama"):
        assert needs in str(err.value)
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
    fresh = field_errors(pot, net, check_points(region, 4096, seed=99))["force"]
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
    # each decade of distance from the centre weighs the same: beyond 0.1 of it, as exact as
    # the grid; within 0.05 the azimuthal harmonics of an off-axis field are coarser
    assert report["force_err_median"] < 1e-4
    by_radius = report["force_err_median_by_radius"]
    assert all(m < 1e-5 for lo, _, m in by_radius if lo >= 0.1)
    assert all(m < 1e-2 for _, _, m in by_radius)
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


@pytest.mark.agama
def test_export_report_weights_like_the_stars_and_says_so(agama):
    """Check points spread evenly in log radius (the report says so), reported by radius: the
    export of a Plummer sphere is judged where its mass is, not in the sparse outer volume."""
    from deeppot_galpy.agama import to_agama

    region = Plummer().sample(4096, 1).region()
    _, report = to_agama(Plummer(), region, lmax=4, n_check=2000)
    assert report["check_points"] == CHECK_POINTS and "log-uniform" in CHECK_POINTS
    by_radius = report["force_err_median_by_radius"]
    assert len(by_radius) == 4 and by_radius[0][0] == pytest.approx(region["r_min"], rel=0.05)
    # the points' median radius is the geometric mean of the radial range (log-uniform)
    ball = {k: region[k] for k in ("center", "r_min", "r_max")}  # no box cutting the radii
    x = check_points(ball, 2000)
    r = np.linalg.norm(x - region["center"], axis=1)
    assert np.median(r) == pytest.approx(np.sqrt(region["r_min"] * region["r_max"]), rel=0.1)


@pytest.mark.agama
def test_symmetry_is_about_the_galaxys_centre(agama):
    """An axisymmetric export of the MN disk from a region whose centre is slightly off the
    axis: the symmetry holds about the origin, not the data centre."""
    from deeppot_galpy.agama import to_agama

    disk = MiyamotoNagaiDisk()
    region = {"center": [0.2, 0.1, 0.0], "r_min": 0.05, "r_max": 2.0}
    _, report = to_agama(disk, region, kind="CylSpline", mmax=0, symmetry="axisymmetric")
    assert report["force_err_p90"] < 1e-3  # 36% when the symmetry was about the data centre
    assert report["center"] == [0.0, 0.0, 0.0]


@pytest.mark.agama
def test_symmetry_of_an_off_centre_region_is_refused(agama):
    from deeppot_galpy.agama import to_agama

    local = {"center": [1.0, 0.0, 0.0], "r_min": 0.02, "r_max": 0.5}
    with pytest.raises(ValueError, match="galaxy's, about its centre"):
        to_agama(MiyamotoNagaiDisk(), local, kind="CylSpline", symmetry="axisymmetric")
    _, report = to_agama(MiyamotoNagaiDisk(), local, kind="CylSpline", lmax=12)  # no symmetry
    assert report["center"] == [1.0, 0.0, 0.0]


@pytest.mark.agama
@pytest.mark.parametrize("own, expected", [("spherical", "spherical"), ("mirror", "axisymmetric")])
def test_export_takes_the_networks_symmetry(agama, random_net, own, expected):
    from deeppot_galpy.agama import to_agama

    net = random_net(symmetry=own)
    region = Plummer().sample(4096, 1).region()
    _, report = to_agama(net, region, lmax=8, seed=3)
    assert report["symmetry"] == expected
    away = region | {"center": [3.0 * region["r_max"], 0.0, 0.0]}  # a volume off the centre
    assert to_agama(net, away, lmax=8, seed=3)[1]["symmetry"] == "none"


@pytest.mark.agama
def test_exports_refuse_other_agama_units(agama):
    """Agama's units are global: an N-body export evaluated after a switch to kpc, km/s would
    read garbage, so it refuses, and works again once the units are back."""
    from deeppot_galpy.agama import AgamaField, to_agama

    region = Plummer().sample(4096, 1).region()
    pot, _ = to_agama(Plummer(), region, lmax=4)
    x = np.array([[1.0, 0.0, 0.0]])
    expected = Plummer().acceleration(x)
    np.testing.assert_allclose(pot.force(x), expected, rtol=1e-5, atol=1e-8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        agama.setUnits(length=1, velocity=1, mass=1)
    for evaluate in (pot.force, pot.acceleration, pot.potential, as_field(pot).density):
        with pytest.raises(ValueError, match=r"built in.*setUnits\(\)"):
            evaluate(x)
    raw = AgamaField(agama.Potential(type="Plummer", mass=1e10, scaleRadius=1.0))  # kpc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        agama.setUnits()
    np.testing.assert_allclose(pot.acceleration(x), expected, rtol=1e-5, atol=1e-8)
    with pytest.raises(ValueError, match="setUnits\\(length=1, velocity=1, mass=1\\)"):
        raw.potential(x)


@pytest.mark.agama
def test_cylspline_report_has_lmax(agama):
    from deeppot_galpy.agama import to_agama

    region = {"center": [0.0, 0.0, 0.0], "r_min": 0.05, "r_max": 2.0}
    _, report = to_agama(MiyamotoNagaiDisk(), region, kind="CylSpline", lmax=6)
    assert report["lmax"] == 6 and report["mmax"] == 6


@pytest.mark.agama
def test_network_export_evaluates_only_the_potential(agama, monkeypatch):
    """Agama needs Phi alone: the export must not pay for the network's backward pass."""
    from deeppot_galpy import galpy_potential
    from deeppot_galpy.agama import to_agama

    def no_gradient(self, x):
        raise AssertionError("the gradient was computed")

    monkeypatch.setattr(galpy_potential.NumpyPotentialMLP, "phi_grad", no_gradient)
    torch.manual_seed(0)
    net = PotentialNet(torch.zeros(3), 1.0, 1.0, PotentialConfig(hidden=(16, 16)))
    _, report = to_agama(net, Plummer().sample(2048, 1).region(), lmax=2)
    assert report["n_check"] == 4096 and np.isfinite(report["force_err_median"])
