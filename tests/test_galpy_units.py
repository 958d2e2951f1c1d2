"""Physical units: a kpc / km/s network through galpy's ro, vo and astropy Quantities."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from galpy.orbit import Orbit
from galpy.potential import HernquistPotential

from deeppot_galpy.galpy_potential import DeepPotential

pytestmark = pytest.mark.filterwarnings("ignore:Using C implementation")  # galpy's note


RO_VO = [(8.0, 220.0), (10.0, 180.0), (8.122 * u.kpc, 235.0 * u.km / u.s)]


def _model_field(fit, x_kpc):
    """Phi (km/s)^2, acceleration (km/s)^2/kpc and density Msun/kpc^3 from the network itself."""
    out = fit.net.evaluate(np.atleast_2d(x_kpc))
    return out["phi"], out["acc"], out["lap"] / (4 * np.pi * fit.units.G)


@pytest.mark.parametrize("ro, vo", RO_VO)
def test_physical_outputs_do_not_depend_on_ro_vo(hernquist_galactic, ro, vo):
    fit = hernquist_galactic
    pot = DeepPotential(fit.net, fit.units, fit.region, ro=ro, vo=vo)
    x = np.array([8.0, 0.0, 0.0])
    phi, acc, rho = _model_field(fit, x)
    v_expected = np.sqrt(8.0 * -acc[0, 0])  # km/s: sqrt(R a_R)
    assert pot.vcirc(8 * u.kpc, quantity=True).to_value(u.km / u.s) == pytest.approx(
        v_expected, rel=1e-5
    )
    assert pot(8 * u.kpc, 0 * u.kpc, quantity=True).to_value(u.km**2 / u.s**2) == pytest.approx(
        phi[0], rel=1e-5
    )
    rho_pc = (rho[0] * u.Msun / u.kpc**3).to_value(u.Msun / u.pc**3)
    assert pot.dens(8 * u.kpc, 0 * u.kpc, quantity=True).to_value(
        u.Msun / u.pc**3
    ) == pytest.approx(rho_pc, rel=1e-5)
    a_R = pot.Rforce(8 * u.kpc, 0 * u.kpc, quantity=True)
    assert a_R.to_value(u.km**2 / u.s**2 / u.kpc) == pytest.approx(acc[0, 0], rel=1e-5)


def test_physical_is_on_by_default_for_a_physical_model(hernquist_galactic):
    fit = hernquist_galactic
    pot = DeepPotential(fit.net, fit.units, fit.region)
    assert pot._roSet and pot._voSet
    natural = DeepPotential(fit.net, fit.units, fit.region, ro=8.0, vo=220.0)
    natural.turn_physical_off()
    # natural units: 1 = 8 kpc, 220 km/s
    assert natural.vcirc(1.0) * 220.0 == pytest.approx(pot.vcirc(8.0 * u.kpc), rel=1e-10)


def test_matches_the_analytic_halo_to_the_network_accuracy(hernquist_galactic):
    """Against galpy's own HernquistPotential, through galpy's unit machinery on both sides."""
    fit = hernquist_galactic
    truth = HernquistPotential(amp=2 * fit.truth.mass * u.Msun, a=fit.truth.a * u.kpc)
    pot = DeepPotential(fit.net, fit.units, fit.region)
    R = np.array([3.0, 8.0, 20.0, 50.0]) * u.kpc
    z = np.array([0.0, 2.0, -5.0, 10.0]) * u.kpc
    tol = 3 * fit.accuracy["force_err_p90"]
    np.testing.assert_allclose(pot.vcirc(R, quantity=True), truth.vcirc(R, quantity=True), rtol=tol)
    np.testing.assert_allclose(
        pot.zforce(R, z, quantity=True).to_value(u.km / u.s / u.Myr),
        truth.zforce(R, z, quantity=True).to_value(u.km / u.s / u.Myr),
        rtol=tol,
        atol=tol * np.abs(truth.zforce(R, z, quantity=True).to_value(u.km / u.s / u.Myr)).max(),
    )
    np.testing.assert_allclose(
        pot.dens(R, z, quantity=True).to_value(u.Msun / u.pc**3),
        truth.dens(R, z, quantity=True).to_value(u.Msun / u.pc**3),
        rtol=3 * fit.accuracy["density_err_p90"],
    )


def test_orbit_in_physical_units(hernquist_galactic):
    fit = hernquist_galactic
    truth = HernquistPotential(amp=2 * fit.truth.mass * u.Msun, a=fit.truth.a * u.kpc)
    pot = DeepPotential(fit.net, fit.units, fit.region, ro=8.0, vo=220.0)
    ic = [8 * u.kpc, 20 * u.km / u.s, 180 * u.km / u.s, 1 * u.kpc, 10 * u.km / u.s, 0 * u.deg]
    ts = np.linspace(0.0, 0.3, 61) * u.Gyr
    o, ref = Orbit(ic, ro=8.0, vo=220.0), Orbit(ic, ro=8.0, vo=220.0)
    o.integrate(ts, pot, method="dop853")
    ref.integrate(ts, truth, method="dop853_c")
    r, r_ref = o.r(ts, quantity=True), ref.r(ts, quantity=True)
    assert r.unit.is_equivalent(u.kpc)
    # ~1 radial period: radii agree to a few times the force error
    np.testing.assert_allclose(r, r_ref, rtol=10 * fit.accuracy["force_err_p90"])
    e = o.E(ts, pot=pot, quantity=True)
    assert np.ptp(e.to_value(u.km**2 / u.s**2)) < 1e-6 * abs(e[0].to_value(u.km**2 / u.s**2))
