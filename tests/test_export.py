"""Exports to C-backed galpy potentials: the expansion machinery, fidelity reports, orbits."""

from __future__ import annotations

import pickle

import astropy.units as u
import numpy as np
import pytest
from galpy.potential import evaluatePotentials

from deeppot_galpy.export import (
    ExportGrid,
    c_accelerations,
    expansion,
    export_galpy,
    multipole_coefficients,
)
from deeppot_galpy.galpy_potential import DeepPotential
from deeppot_galpy.orbits import compare_orbits, integrate_batched, integrate_galpy

# galpy's notes that it integrates in C, and a numpy notice from inside galpy's SCF code
pytestmark = [
    pytest.mark.filterwarnings("ignore:Using C implementation"),
    pytest.mark.filterwarnings("ignore:'where' used without 'out':UserWarning"),
]


class OffsetPlummer:
    """Phi = -1/sqrt(1 + |x - c|^2): every (l, m) multipole, and mass beyond any grid."""

    def __init__(self, center):
        self.c = np.asarray(center, float)

    def cartesian(self, x, order=1):
        d = x - self.c
        q = 1.0 + np.sum(d**2, axis=1)
        return -(q**-0.5), d * q[:, None] ** -1.5

    def acceleration(self, x):
        return -self.cartesian(x)[1]


def _ball(n, r_max, seed=0):
    rng = np.random.default_rng(seed)
    u_ = rng.normal(size=(n, 3))
    r = np.exp(rng.uniform(np.log(0.05), np.log(r_max), n))
    return u_ * (r / np.linalg.norm(u_, axis=1))[:, None]


def test_multipole_reproduces_a_lopsided_field_including_outside_mass():
    """Non-axisymmetric, off-centre, and the grid ends at r = 3 with ~80% of the mass outside:
    interior forces and potential values need the exterior multipoles too."""
    src = OffsetPlummer([0.3, 0.2, 0.1])
    coef = multipole_coefficients(src, ExportGrid(L=8, r_lo=1e-3, r_hi=3.0))
    exported = expansion(coef, "multipole")
    x = _ball(300, 2.7)
    a = src.acceleration(x)
    err = np.linalg.norm(c_accelerations(exported, x) - a, axis=1) / np.linalg.norm(a, axis=1)
    assert np.max(err) < 1e-4
    x = x[:40]
    R, z, phi = np.hypot(x[:, 0], x[:, 1]), x[:, 2], np.arctan2(x[:, 1], x[:, 0])
    offset = evaluatePotentials(exported, R, z, phi=phi) - src.cartesian(x)[0]
    assert np.ptp(offset) < 1e-5  # the same potential, up to a constant
    assert abs(np.median(offset)) < 1e-4  # and that constant is small too
    # without the l >= 1 terms the same field is badly wrong: the test has teeth
    mono = expansion(coef, "interp_spherical")
    err_mono = np.linalg.norm(c_accelerations(mono, x) - a[:40], axis=1) / np.linalg.norm(
        a[:40], axis=1
    )
    assert np.median(err_mono) > 0.05


def test_c_accelerations_match_galpy_python_evaluation():
    from galpy.potential import MiyamotoNagaiPotential

    from deeppot_galpy.compare import as_field

    pot = MiyamotoNagaiPotential(amp=1.0, a=1.0, b=0.2)
    x = _ball(50, 5.0, seed=1)
    np.testing.assert_allclose(c_accelerations(pot, x), as_field(pot).acceleration(x), atol=1e-12)


@pytest.fixture(scope="module")
def plummer_export(plummer_fit):
    pot = DeepPotential(plummer_fit.net, plummer_fit.units, plummer_fit.region)
    exported, report = export_galpy(pot, "auto", ExportGrid(L=8))
    return pot, exported, report


def test_plummer_export_is_faithful_to_the_network(plummer_export, plummer_fit):
    pot, exported, report = plummer_export
    assert set(report["candidates"]) == {"interp_spherical", "multipole", "scf"}
    assert report["method"] == min(
        report["candidates"], key=lambda k: report["candidates"][k]["force_err_median"]
    )
    # the export adds far less error than the network has against the truth
    assert report["force_err_median"] < 0.1 * plummer_fit.accuracy["force_err_median"]
    assert exported.hasC and exported.hasC_dxdv
    assert not exported._roSet  # an N-body model exports in natural units
    # the report says how its points are weighted, the same way as the Agama export's
    from deeppot_galpy.compare import CHECK_POINTS

    assert report["check_points"] == CHECK_POINTS
    by_radius = report["force_err_median_by_radius"]
    assert by_radius[0][0] == pytest.approx(pot.natural_region()["r_min"], rel=0.05)
    assert by_radius[-1][1] == pytest.approx(pot.natural_region()["r_max"], rel=0.05)


def test_orbits_in_the_export_follow_the_network(plummer_export):
    """Orbits inside the data region: the C export tracks the network's own orbits."""
    pot, exported, report = plummer_export
    rng = np.random.default_rng(3)
    x0 = _ball(6, 3.0, seed=4)
    x0 = x0[np.linalg.norm(x0, axis=1) > 0.3]
    v_c = np.sqrt(np.sum(-pot.acceleration(x0) * x0, axis=1))
    w = np.cross(x0, rng.normal(size=x0.shape))
    v0 = 0.8 * v_c[:, None] * w / np.linalg.norm(w, axis=1, keepdims=True)
    t = np.linspace(0.0, 4 * np.pi, 201)  # ~2 periods in the core
    net_orbits = integrate_batched(pot, x0, v0, t, method="dop853")
    exp_orbits = integrate_galpy(exported, x0, v0, t, method="dop853_c")
    res = compare_orbits(exp_orbits, exported, net_orbits, pot)
    # regular orbits drift apart ~ (force error) x (t / t_dyn)^2; measured ~3x the median
    # error after these two periods, so 20x leaves room for other seeds and platforms
    tol = 20 * report["force_err_median"]
    assert res["divergence_final_p90"] < tol, (res["divergence_final_p90"], tol)
    assert res["energy_drift_max"] < 1e-8


def test_flattened_disk_needs_the_multipole(miyamoto_nagai_fit):
    fit = miyamoto_nagai_fit
    pot = DeepPotential(fit.net, fit.units, fit.region)
    exported, report = export_galpy(pot, "auto", ExportGrid(L=12))
    cands = report["candidates"]
    assert report["method"] == "multipole"
    assert cands["interp_spherical"]["force_err_median"] > 0.1  # a disk is not a sphere
    assert report["force_err_median"] < 0.1 * fit.accuracy["force_err_median"]


def test_physical_model_exports_with_its_units(hernquist_galactic):
    fit = hernquist_galactic
    pot = DeepPotential(fit.net, fit.units, fit.region, ro=8.0, vo=220.0)
    exported, report = export_galpy(pot, "interp_spherical", ExportGrid(L=1))
    assert exported._roSet and exported._voSet and exported._ro == 8.0
    R = np.array([5.0, 10.0, 30.0]) * u.kpc
    np.testing.assert_allclose(
        exported.vcirc(R, quantity=True).to_value(u.km / u.s),
        pot.vcirc(R, quantity=True).to_value(u.km / u.s),
        rtol=3 * report["force_err_max"],
    )


def test_export_refuses_data_away_from_the_origin(random_net):
    region = {"center": [5.0, 0.0, 0.0], "r_min": 0.1, "r_max": 1.0}
    with pytest.raises(ValueError, match="expand about the origin"):
        export_galpy(DeepPotential(random_net(), region=region))
    with pytest.raises(ValueError, match="unknown export method"):
        export_galpy(DeepPotential(random_net(), region=region), method="spline")


@pytest.mark.parametrize(
    "symmetry, center, method",
    [
        ("axisymmetric", [8.0, 0.0, 0.02], "interp_rz"),
        ("spherical", [0.1, 0.0, 0.0], "interp_spherical"),
    ],
)
def test_symmetric_network_exports_to_its_symmetry(random_net, symmetry, center, method):
    # a survey volume 8 units from the axis (an (R, z) grid), or a sphere about the origin
    region = {"center": center, "r_min": 0.02, "r_max": 1.5}
    pot = DeepPotential(random_net(symmetry=symmetry), region=region)
    exported, report = export_galpy(pot, grid=ExportGrid(n_r=121, n_z=121))
    assert report["method"] == method and report["force_err_p90"] < 1e-4
    x = np.array(center) + _ball(50, 1.0)
    a = pot.acceleration(x)
    np.testing.assert_allclose(c_accelerations(exported, x), a, atol=1e-4 * np.abs(a).max())
    # galpy's Python path on arrays, above and below the plane, also after a pickle round trip
    exported = pickle.loads(pickle.dumps(exported))
    R, z = np.hypot(x[:, 0], x[:, 1]), x[:, 2]
    for name in ("Rforce", "zforce"):
        want = getattr(pot, name)(R, z, phi=np.arctan2(x[:, 1], x[:, 0]))
        np.testing.assert_allclose(getattr(exported, name)(R, z), want, atol=1e-4 * np.abs(a).max())


def test_interp_rz_needs_an_axisymmetric_network(random_net):
    region = {"center": [8.0, 0.0, 0.0], "r_min": 0.02, "r_max": 1.5}
    with pytest.raises(ValueError, match="axisymmetric"):
        export_galpy(DeepPotential(random_net(), region=region), method="interp_rz")
    with pytest.raises(ValueError, match="symmetry axisymmetric"):
        export_galpy(DeepPotential(random_net(), region=region))
