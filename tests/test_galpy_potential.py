"""DeepPotential as a galpy Potential: derivatives, caching, galpy integration, state."""

from __future__ import annotations

import copy
import pickle
import warnings

import numpy as np
import pytest
import torch
from conftest import NETS
from galpy.orbit import Orbit
from galpy.potential import (
    MiyamotoNagaiPotential,
    PlummerPotential,
    evaluateDensities,
    evaluatePotentials,
    evaluateRforces,
    vcirc,
)

from deeppot_galpy.compare import field_errors
from deeppot_galpy.galpy_potential import DeepPotential, NumpyPotentialMLP, OutsideDataWarning

pytestmark = pytest.mark.filterwarnings("ignore:Using C implementation")  # galpy's note


POINTS = [(0.7, 0.3, 0.4), (1.9, -0.8, 2.5), (0.05, 1.2, -1.0), (3.0, 0.0, 5.9)]


R_, Z_, PHI_ = 0, 1, 2  # axes of a point (R, z, phi)


def _partial(f, point, axis, h=1e-5):
    """Central difference of f(R, z, phi) along one cylindrical coordinate."""
    up, down = list(point), list(point)
    up[axis] += h
    down[axis] -= h
    return (f(*up) - f(*down)) / (2 * h)


@pytest.mark.parametrize("activation, symmetry", NETS)
def test_numpy_path_matches_autograd(random_net, activation, symmetry):
    net = random_net(activation, symmetry=symmetry).double()
    x = np.random.default_rng(0).normal(size=(7, 3)) * 3
    phi, grad = NumpyPotentialMLP(net).phi_grad(x)
    phi_t, grad_t = net.gradient(torch.as_tensor(x))
    np.testing.assert_allclose(phi, phi_t.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(grad, grad_t.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("symmetry", ["none", "axisymmetric", "mirror", "spherical"])
def test_symmetry_is_exact(random_net, symmetry):
    pot = DeepPotential(random_net(symmetry=symmetry))
    azimuths = np.linspace(0.0, 2 * np.pi, 7)
    about_z = pot(1.3, 0.4, azimuths)
    theta = np.linspace(0.0, np.pi, 7)  # r = 1.36 in every direction of the (x, z) plane
    about_centre = pot(1.36 * np.sin(theta), 1.36 * np.cos(theta))
    spread = {k: np.ptp(v) / np.max(np.abs(v)) for k, v in (("z", about_z), ("o", about_centre))}
    torque = np.max(np.abs(pot.phitorque(1.3, 0.4, azimuths)))
    if symmetry == "none":  # the control: a random network has no symmetry
        assert spread["z"] > 1e-3 and spread["o"] > 1e-3 and torque > 1e-4
    else:
        assert spread["z"] < 1e-6 and torque < 1e-7
        assert (spread["o"] < 1e-6) == (symmetry == "spherical")
        mirrored = abs(pot(1.3, 0.4) - pot(1.3, -0.4)) < 1e-9 * abs(pot(1.3, 0.4))
        assert mirrored == (symmetry != "axisymmetric")


@pytest.mark.parametrize("activation, symmetry", NETS)
def test_forces_are_gradients_of_the_potential(random_net, activation, symmetry):
    pot = DeepPotential(random_net(activation, symmetry=symmetry))
    for point in POINTS:
        scale = max(abs(pot.Rforce(*point)), abs(pot.zforce(*point)), 1e-3)
        for name, axis in (("Rforce", R_), ("zforce", Z_), ("phitorque", PHI_)):
            expected = -_partial(pot, point, axis)
            got = getattr(pot, name)(*point)
            assert abs(got - expected) < 1e-5 * scale, (name, got, expected)


# second derivative -> (force, axis) pairs whose -d(force)/d(axis) must equal it; two pairs
# for a mixed derivative check both orders of differentiation (the Hessian is symmetric)
SECOND = {
    "R2deriv": [("Rforce", R_)],
    "z2deriv": [("zforce", Z_)],
    "Rzderiv": [("Rforce", Z_), ("zforce", R_)],
    "phi2deriv": [("phitorque", PHI_)],
    "Rphideriv": [("phitorque", R_), ("Rforce", PHI_)],
    "phizderiv": [("phitorque", Z_), ("zforce", PHI_)],
}


@pytest.mark.parametrize("activation, symmetry", NETS)
def test_second_derivatives_are_derivatives_of_the_forces(random_net, activation, symmetry):
    pot = DeepPotential(random_net(activation, symmetry=symmetry))
    for point in POINTS:
        scale = max(abs(pot.R2deriv(*point)), abs(pot.z2deriv(*point)), 1e-3)
        for name, pairs in SECOND.items():
            got = getattr(pot, name)(*point)
            for force, axis in pairs:
                expected = -_partial(getattr(pot, force), point, axis)
                assert abs(got - expected) < 1e-5 * scale, (name, force, got, expected)


@pytest.mark.parametrize("activation, symmetry", NETS)
def test_density_is_laplacian_over_4pi(random_net, activation, symmetry):
    pot = DeepPotential(random_net(activation, symmetry=symmetry))
    R, z, phi = np.array(POINTS).T
    rho = pot.dens(R, z, phi)
    # galpy's own Poisson route (R2deriv + Rforce/R + phi2deriv/R^2 + z2deriv) / 4 pi
    np.testing.assert_allclose(rho, pot.dens(R, z, phi, forcepoisson=True), rtol=1e-8, atol=1e-12)
    x = np.stack([R * np.cos(phi), R * np.sin(phi), z], axis=1)
    _, _, hess = pot.cartesian(x, order=2)
    np.testing.assert_allclose(hess, np.swapaxes(hess, 1, 2), rtol=1e-10, atol=1e-14)
    h = 1e-5  # divergence of the (exact) gradient by central differences
    lap = sum(
        (pot.cartesian(x + h * e)[1][:, i] - pot.cartesian(x - h * e)[1][:, i]) / (2 * h)
        for i, e in enumerate(np.eye(3))
    )
    np.testing.assert_allclose(rho, lap / (4 * np.pi), rtol=1e-5)


def test_arrays_match_scalars_and_keep_shape(random_net):
    pot = DeepPotential(random_net())
    R = np.linspace(0.1, 3.0, 12).reshape(3, 4)
    for name in ("__call__", "Rforce", "zforce", "phitorque", "R2deriv", "phizderiv", "dens"):
        out = getattr(pot, name)(R, 0.3, phi=0.2)
        assert out.shape == (3, 4)
        expected = [getattr(pot, name)(float(r), 0.3, phi=0.2) for r in R.ravel()]
        np.testing.assert_allclose(out.ravel(), expected, rtol=1e-10, atol=1e-14)


def test_cache_never_serves_stale_values(random_net):
    pot, fresh = DeepPotential(random_net()), DeepPotential(random_net())
    for R, z, phi in POINTS + POINTS[::-1]:
        assert pot.Rforce(R, z, phi) == pytest.approx(fresh.Rforce(R, z, phi), rel=1e-12)
        assert pot.zforce(R, z, phi) == pytest.approx(fresh.zforce(R, z, phi), rel=1e-12)
        assert pot.R2deriv(R, z, phi) == pytest.approx(fresh.R2deriv(R, z, phi), rel=1e-10)
    forces = pot.Rforce(np.array([1.0, 2.0]), 0.0)
    forces[:] = 0.0  # a caller editing the returned array must not reach the cache
    assert np.all(pot.Rforce(np.array([1.0, 2.0]), 0.0) != 0.0)


def test_phi_none_amp_and_physical_switches(random_net):
    import astropy.units as u

    pot = DeepPotential(random_net(), amp=1.0)
    double = DeepPotential(random_net(), amp=2.0)
    R = np.array([0.5, 1.0])
    assert np.allclose(pot.Rforce(R, 0.0, phi=None), pot.Rforce(R, 0.0, phi=0.0))
    for name in ("__call__", "Rforce", "z2deriv", "dens"):
        a = getattr(pot, name)(R, 0.2, phi=0.3)
        np.testing.assert_allclose(getattr(double, name)(R, 0.2, phi=0.3), 2 * a, rtol=1e-12)
    # Quantity inputs are converted with ro; physical output multiplies by the vo/ro factors.
    phys = DeepPotential(random_net(), ro=8.0, vo=220.0)
    natural = pot(1.0, 0.25, phi=0.1)
    assert phys(8.0 * u.kpc, 2.0 * u.kpc, phi=0.1, quantity=True).to_value(
        u.km**2 / u.s**2
    ) == pytest.approx(natural * 220.0**2, rel=1e-10)
    phys.turn_physical_off()
    assert phys(8.0 * u.kpc, 2.0 * u.kpc, phi=0.1) == pytest.approx(natural, rel=1e-12)
    phys.turn_physical_on(vo=200.0)
    assert phys(1.0, 0.25, phi=0.1) == pytest.approx(natural * 200.0**2, rel=1e-12)
    assert phys(1.0, 0.25, phi=0.1, use_physical=False) == pytest.approx(natural, rel=1e-12)


def test_pickle_and_deepcopy_round_trip(random_net):
    pot = DeepPotential(random_net("tanh"), amp=1.5, ro=9.0, vo=200.0)
    pot.turn_physical_off()
    blob = pickle.dumps(pot)
    assert b"torch" not in blob  # weights travel as numpy, no pickled torch objects
    for other in (pickle.loads(blob), copy.deepcopy(pot)):
        assert isinstance(other, DeepPotential)
        assert (other._ro, other._vo, other._amp, other._roSet) == (9.0, 200.0, 1.5, False)
        for name in ("__call__", "Rforce", "phitorque", "dens"):
            a = getattr(pot, name)(1.1, 0.4, phi=0.7)
            assert getattr(other, name)(1.1, 0.4, phi=0.7) == pytest.approx(a, rel=1e-12)


def test_outside_data_warns_once(plummer_fit):
    pot = DeepPotential(plummer_fit.net, plummer_fit.units, plummer_fit.region)
    r_max = plummer_fit.region["r_max"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pot.Rforce(r_max, 0.0)  # inside 1.5 r_max: silent
    with pytest.warns(OutsideDataWarning, match="not constrained"):
        pot.Rforce(np.array([1.0, 2.0 * r_max]), 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pot.Rforce(3.0 * r_max, 0.0)


def test_load_from_run_dir(plummer_run_dir, plummer_fit):
    pot = DeepPotential.load(plummer_run_dir)
    assert pot.region == plummer_fit.region
    x = np.array([[0.5, 0.2, -0.3]])
    acc = plummer_fit.net.evaluate(x, laplacian=False)["acc"]
    np.testing.assert_allclose(pot.acceleration(x), acc, rtol=1e-5)


def test_agrees_with_galpy_plummer_to_the_network_accuracy(plummer_fit):
    """Through galpy's interface, errors against PlummerPotential equal the network's own."""
    pot = DeepPotential(plummer_fit.net, plummer_fit.units, plummer_fit.region)
    x = plummer_fit.truth.sample(2048, seed=2).x
    x = x[np.linalg.norm(x, axis=1) < plummer_fit.region["r_max"]]
    via_galpy = field_errors(pot, PlummerPotential(amp=1.0, b=1.0), x)
    direct = field_errors(plummer_fit.net, plummer_fit.truth, x)
    acc = plummer_fit.accuracy
    for key in ("force", "density", "phi"):
        # float64 galpy path vs float32 network: identical up to rounding of the network
        assert np.median(via_galpy[key]) == pytest.approx(acc[f"{key}_err_median"], abs=1e-4)
        np.testing.assert_allclose(via_galpy[key], direct[key], rtol=1e-4, atol=1e-4)
    assert acc["force_err_median"] < 0.05  # sanity: the fixture fit is a real fit


def test_sum_with_miyamoto_nagai_disk(plummer_fit):
    halo = DeepPotential(plummer_fit.net, plummer_fit.units, plummer_fit.region)
    disk = MiyamotoNagaiPotential(amp=0.5, a=1.0, b=0.1)
    pots = [halo, disk]
    R = np.linspace(0.2, 5.0, 9)
    # galpy's list functions want phi= for a non-axisymmetric member; the method defaults to 0
    np.testing.assert_allclose(
        vcirc(pots, R, phi=0.0) ** 2, halo.vcirc(R) ** 2 + disk.vcirc(R) ** 2, rtol=1e-10
    )
    combined = halo + disk  # galpy's CompositePotential
    np.testing.assert_allclose(combined.vcirc(R, phi=0.0), vcirc(pots, R, phi=0.0), rtol=1e-12)
    for f in (evaluatePotentials, evaluateRforces, evaluateDensities):
        np.testing.assert_allclose(
            f(pots, R, 0.1, phi=0.3), f(halo, R, 0.1, phi=0.3) + f(disk, R, 0.1, phi=0.3)
        )


def test_orbits_with_galpy_python_integrators(plummer_fit):
    """A few orbits: energy conserved, and close to the same orbits in the true potential."""
    pot = DeepPotential(plummer_fit.net, plummer_fit.units, plummer_fit.region)
    true = PlummerPotential(amp=1.0, b=1.0)
    vxvv = [[1.0, 0.1, 0.5, 0.2, 0.05, 0.0], [0.6, -0.2, 0.4, -0.1, 0.1, 1.0]]
    ts = np.linspace(0.0, 2 * np.pi, 101)  # about one orbital period
    o = Orbit(vxvv)
    o.integrate(ts, pot, method="dop853", numcores=1)
    ref = Orbit(vxvv)
    ref.integrate(ts, true, method="dop853_c")
    e = o.E(ts, pot=pot)
    assert np.max(np.abs(e / e[:, :1] - 1)) < 1e-7
    # positions differ by roughly the force error times t^2 / 2
    dx = np.hypot(o.x(ts) - ref.x(ts), o.y(ts) - ref.y(ts))
    tol = 10 * plummer_fit.accuracy["force_err_p90"] * np.max(np.hypot(ref.x(ts), ref.y(ts)))
    assert np.max(dx) < tol
    lf = Orbit(vxvv)
    lf.integrate(np.linspace(0.0, 2 * np.pi, 2001), pot, method="leapfrog", numcores=1)
    np.testing.assert_allclose(lf.x(ts[-1]), o.x(ts[-1]), atol=2e-3)


def test_plot_rotcurve(plummer_fit):
    import matplotlib

    matplotlib.use("Agg")
    pot = DeepPotential(plummer_fit.net, plummer_fit.units, plummer_fit.region)
    assert pot.plotRotcurve(Rrange=[0.1, 5.0], grid=21) is not None
