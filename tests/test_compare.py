"""compare: zero error against itself, the known error of a scaled field, every reference kind."""

import copy

import numpy as np
import pytest
import torch
from galpy.potential import MiyamotoNagaiPotential, PlummerPotential, vcirc

from deeppot_galpy.compare import (
    CallableField,
    as_field,
    check_points,
    circular_velocity,
    disk_metrics,
    field_errors,
    in_region,
    potential_metrics,
    summarize,
    vertical_force,
)
from deeppot_galpy.mocks import Plummer
from deeppot_galpy.plots import plot_circular_velocity, plot_error_profile, plot_vertical_force
from deeppot_galpy.potential import PotentialConfig, PotentialNet
from deeppot_galpy.units import Units

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def x():
    return Plummer().sample(4096, seed=0).x


@pytest.fixture(scope="module")
def disk_x():
    rng = np.random.default_rng(1)
    R = rng.uniform(0.2, 2.0, 3000)
    phi = rng.uniform(0, 2 * np.pi, 3000)
    return np.stack([R * np.cos(phi), R * np.sin(phi), 0.1 * rng.standard_normal(3000)], 1)


def plummer_phi(x):
    return -1.0 / np.sqrt(1.0 + np.sum(x**2, axis=-1))


def test_self_comparison_is_exact(x):
    errs = field_errors(Plummer(), PlummerPotential(amp=1.0, b=1.0), x)
    for key in ("phi", "force", "force_R", "force_z", "density"):
        assert np.max(errs[key]) < 1e-12
    res = potential_metrics(Plummer(), Plummer(), x, r_range=(0.1, 3.0))
    assert res["force_err_p90"] == 0.0 and res["density_err_p90"] == 0.0
    assert res["force_bias_median"] == 0.0


def test_scaled_amplitude_gives_known_errors(x):
    errs = field_errors(PlummerPotential(amp=1.05, b=1.0), Plummer(), x)
    np.testing.assert_allclose(errs["force"], 0.05, rtol=1e-10)
    np.testing.assert_allclose(errs["density"], 0.05, rtol=1e-10)
    np.testing.assert_allclose(errs["force_ratio"], 1.05, rtol=1e-10)
    # a spherical field's error has no azimuthal part: R and z parts add up in quadrature
    np.testing.assert_allclose(errs["force_R"] ** 2 + errs["force_z"] ** 2, 0.05**2, rtol=1e-8)
    s = summarize(errs)
    assert s["force_err_median"] == pytest.approx(0.05)
    assert s["force_bias_median"] == pytest.approx(0.05)
    # Phi error after removing the median offset c = 0.05 median(Phi): 0.05 |Phi - med| / |Phi|
    phi = plummer_phi(x)
    expected = 0.05 * np.abs(phi - np.median(phi)) / np.abs(phi)
    np.testing.assert_allclose(errs["phi"], expected, atol=1e-12)


def test_callable_references(x):
    truth = Plummer()
    fd = as_field(plummer_phi)
    assert isinstance(fd, CallableField) and not fd.autograd
    e = field_errors(fd, truth, x[:500])
    # differences of Phi lose digits where rho is a tiny cancellation of second derivatives
    inner = np.linalg.norm(x[:500], axis=1) < 5
    assert np.max(e["force"]) < 1e-7 and np.max(e["density"][inner]) < 1e-5
    assert np.median(e["density"]) < 1e-6

    def torch_phi(xt):
        return -1.0 / torch.sqrt(1.0 + (xt**2).sum(-1))

    ag = as_field(torch_phi)
    assert ag.autograd
    e = field_errors(ag, truth, x[:500])
    assert np.max(e["force"]) < 1e-12 and np.max(e["density"]) < 1e-10


def test_network_field_matches_autograd_callable(x):
    torch.manual_seed(0)
    net = PotentialNet(torch.zeros(3), 1.0, 1.0, PotentialConfig(hidden=(32, 32)))
    e = field_errors(net, CallableField(net), x[:300])
    assert np.max(e["force"]) < 1e-5
    assert np.median(e["density"]) < 1e-4


def test_float64_network_is_a_field(x):
    torch.manual_seed(0)
    net = PotentialNet(torch.zeros(3), 1.0, 1.0, PotentialConfig(hidden=(32, 32)))
    e = field_errors(copy.deepcopy(net).double(), net, x[:300])
    assert np.max(e["force"]) < 1e-5 and np.median(e["density"]) < 1e-4


def test_unknown_reference_raises():
    with pytest.raises(TypeError, match="reference field"):
        as_field(3.0)


def test_region_restricts_points(x):
    region = {
        "center": [0.0, 0.0, 0.0],
        "r_min": 0.2,
        "r_max": 2.0,
        "lo": [-1.5] * 3,
        "hi": [1.5] * 3,
    }
    mask = in_region(x, region)
    r = np.linalg.norm(x, axis=1)
    expected = (r >= 0.2) & (r <= 2.0) & np.all(np.abs(x) <= 1.5, axis=1)
    np.testing.assert_array_equal(mask, expected)
    assert in_region(x, None).all()
    res = potential_metrics(PlummerPotential(amp=1.05, b=1.0), Plummer(), x, region=region)
    assert res["n_points"] == expected.sum()
    assert res["r_range"] == [0.2, 2.0]
    assert res["force_err_p90"] == pytest.approx(0.05)


def test_disk_metrics_known_errors(disk_x):
    ref = MiyamotoNagaiPotential(amp=1.0, a=0.5, b=0.1)
    same = disk_metrics(ref, ref, disk_x, R_sun=1.0)
    assert same["vc_err_max"] == 0.0 and same["kz_err_max"] == 0.0
    scaled = disk_metrics(MiyamotoNagaiPotential(amp=1.05, a=0.5, b=0.1), ref, disk_x)
    assert scaled["vc_err_median"] == pytest.approx(np.sqrt(1.05) - 1, rel=1e-10)
    assert scaled["kz_err_max"] == pytest.approx(0.05, rel=1e-10)
    assert scaled["force_R_err_median"] ** 2 + scaled["force_z_err_median"] ** 2 < 0.05**2 + 1e-9
    # a thinner disk: same v_c far out, a different K_z near the plane
    thin = disk_metrics(MiyamotoNagaiPotential(amp=1.0, a=0.5, b=0.05), ref, disk_x)
    assert thin["kz_err_max"] > 0.1 > thin["vc_err_median"]


def test_rotation_curve_and_vertical_force_match_galpy():
    pot = MiyamotoNagaiPotential(amp=1.0, a=0.5, b=0.1)
    R = np.linspace(0.2, 2.0, 7)
    np.testing.assert_allclose(circular_velocity(pot, R), vcirc(pot, R), rtol=1e-12)
    z = np.linspace(0.05, 0.5, 5)
    np.testing.assert_allclose(
        vertical_force(pot, z, R=1.0), pot.zforce(np.ones_like(z), z), rtol=1e-12
    )
    # the same about a shifted centre
    c = np.array([0.3, -0.2, 0.1])

    def shifted(xt):
        return as_field(pot).potential(xt - c)

    np.testing.assert_allclose(
        circular_velocity(CallableField(shifted), R, center=c), vcirc(pot, R), rtol=1e-6
    )


def test_plots_are_labelled(tmp_path, disk_x):
    ref = MiyamotoNagaiPotential(amp=1.0, a=0.5, b=0.1)
    model = MiyamotoNagaiPotential(amp=1.03, a=0.5, b=0.12)
    units = Units.galactic()
    res = potential_metrics(model, ref, disk_x)
    dm = disk_metrics(model, ref, disk_x)
    for name, fig in {
        "profile": plot_error_profile(res, units=units),
        "vc": plot_circular_velocity(dm, units=units),
        "kz": plot_vertical_force(dm),
    }.items():
        ax = fig.axes[0]
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
        assert ax.get_legend() is not None
        fig.savefig(tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
    assert "kpc" in plot_error_profile(res, units=units).axes[0].get_xlabel()


def test_check_points_are_log_uniform_in_radius_and_inside_the_box():
    ball = {"center": [0.5, 0.0, 0.0], "r_min": 0.01, "r_max": 10.0}
    x = check_points(ball, 4000, seed=1)
    r = np.linalg.norm(x - ball["center"], axis=1)
    assert len(x) == 4000 and r.min() >= 0.01 and r.max() <= 10.0
    # log-uniform: each decade holds a third of the points
    np.testing.assert_allclose(
        np.histogram(np.log10(r), [-2, -1, 0, 1])[0] / 4000, 1 / 3, atol=0.03
    )
    np.testing.assert_array_equal(x, check_points(ball, 4000, seed=1))
    box = ball | {"lo": [-1.0, -1.0, -0.2], "hi": [2.0, 1.0, 0.2]}  # a slab: most of it cut
    xb = check_points(box, 1000, seed=2)
    assert len(xb) == 1000 and in_region(xb, box).all()
    with pytest.raises(ValueError, match="box holds almost none"):
        check_points(ball | {"lo": [20.0, 20.0, 20.0]}, 100)


def test_galpy_potentials_convert_into_physical_units():
    """A galpy potential with ro = 8 kpc, vo = 220 km/s read in kpc, km/s, Msun."""
    pot = PlummerPotential(amp=2.0, b=0.5, ro=8.0, vo=220.0)
    units = Units.galactic()
    f = as_field(pot, units=units)
    x = np.array([[8.0, 0.0, 0.0], [0.0, 4.0, 4.0]])
    r2 = np.sum((x / 8.0) ** 2, axis=1)
    np.testing.assert_allclose(f.potential(x), -2.0 / np.sqrt(r2 + 0.25) * 220.0**2)
    np.testing.assert_allclose(
        f.acceleration(x),
        -2.0 * (x / 8.0) / (r2 + 0.25)[:, None] ** 1.5 * 220.0**2 / 8.0,
        atol=1e-9,  # components that vanish come out at ~1e-13 (round-off of phi)
    )
    rho_nat = 3 * 2.0 * 0.25 / (4 * np.pi) / (r2 + 0.25) ** 2.5
    np.testing.assert_allclose(f.density(x), rho_nat * 220.0**2 / 64.0 / units.G)
    with pytest.raises(ValueError, match="disagrees"):
        as_field(pot, G=2.0, units=units)
