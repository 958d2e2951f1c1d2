"""The local quantities reproduce an analytic galpy potential's, and their errors are the
replicates' spread."""

import json

import astropy.units as u
import numpy as np
import pytest
from galpy.potential import (
    LogarithmicHaloPotential,
    dvcircdR,
    evaluateDensities,
    evaluatezforces,
    mwpotentials,
    vcirc,
)
from galpy.util.conversion import dens_in_msolpc3

from deeppot_galpy.local import (
    DVC_SYSTEMATIC,
    KZ_FLOOR,
    KZ_SYSTEMATIC,
    RHO0_SYSTEMATIC,
    LocalQuantities,
    baryonic_model,
    local_quantities,
    sun_cyl,
)
from deeppot_galpy.potential.replicates import SIGMA_CALIBRATION

MW = mwpotentials.MWPotential2014  # ro = 8 kpc, vo = 220 km/s, physical output off
RO, VO = 8.0, 220.0
R0, Z0 = 8.2, 0.025  # kpc


@pytest.fixture(scope="module")
def mw() -> LocalQuantities:
    return local_quantities(MW, R0 * u.kpc, Z0 * u.kpc, baryons="MWPotential2014")


def test_sun_defaults_to_astropy_v40():
    R, z, phi = sun_cyl()
    assert R.to_value(u.kpc) == pytest.approx(np.sqrt(8.122**2 - 0.0208**2), rel=1e-6)
    assert z.to_value(u.pc) == pytest.approx(20.8, rel=1e-6)
    assert phi.to_value(u.rad) == pytest.approx(np.pi)
    R_other, _, _ = sun_cyl({"galcen_distance_kpc": 8.3})
    assert R_other.to_value(u.kpc) == pytest.approx(8.3, rel=1e-4)


def test_matches_galpy(mw):
    # galpy in natural units, converted by hand
    R, z = R0 / RO, Z0 / RO
    assert mw.vc.to_value(u.km / u.s) == pytest.approx(vcirc(MW, R) * VO, rel=1e-10)
    assert mw.dvc_dR.to_value(u.km / u.s / u.kpc) == pytest.approx(
        dvcircdR(MW, R) * VO / RO, rel=1e-10
    )
    rho = evaluateDensities(MW, R, z) * dens_in_msolpc3(VO, RO)
    assert mw.rho0.to_value(u.Msun / u.pc**3) == pytest.approx(rho, rel=1e-10)
    zg = mw.z.to_value(u.kpc)
    assert zg[0] == pytest.approx(-1.1) and zg[-1] == pytest.approx(1.1)
    kz = evaluatezforces(MW, np.full_like(zg, R), zg / RO) * VO**2 / RO
    np.testing.assert_allclose(mw.Kz.to_value(u.km**2 / u.s**2 / u.kpc), kz, rtol=1e-10)
    # the thin disk's K_z is odd in z, negative above the plane
    np.testing.assert_allclose(mw.Kz, -mw.Kz[::-1], rtol=1e-10)
    assert np.all(mw.Kz[zg > 0] < 0)


def test_oort_constants_from_their_definitions(mw):
    # A = -R/2 d(v_c/R)/dR by central differences of galpy's v_c; B = A - v_c/R
    h = 1e-4
    R = R0 / RO
    omega = [vcirc(MW, r) / r for r in (R - h, R + h)]
    A = -0.5 * R * (omega[1] - omega[0]) / (2 * h) * VO / RO
    B = A - vcirc(MW, R) / R * VO / RO
    assert mw.oort_A.to_value(u.km / u.s / u.kpc) == pytest.approx(A, rel=1e-6)
    assert mw.oort_B.to_value(u.km / u.s / u.kpc) == pytest.approx(B, rel=1e-6)
    # the Milky Way's signs and sizes (A ~ 15, B ~ -12 km/s/kpc; Bovy 2017)
    assert 12 < A < 18 and -15 < B < -9


def test_dark_matter_density_is_the_halo(mw):
    halo = evaluateDensities(MW[2], R0 / RO, Z0 / RO) * dens_in_msolpc3(VO, RO)
    assert mw.rho_dm.to_value(u.Msun / u.pc**3) == pytest.approx(halo, rel=1e-10)
    assert [type(p).__name__ for p in baryonic_model("MWPotential2014")] == [
        "PowerSphericalPotentialwCutoff",
        "MiyamotoNagaiPotential",
    ]
    with pytest.raises(ValueError, match="unknown baryonic model"):
        baryonic_model("NoSuchModel")


def test_numbers_are_galpy_natural_units(mw):
    as_floats = local_quantities(
        MW, R0 / RO, Z0 / RO, np.pi, baryons=baryonic_model("MWPotential2014")
    )
    for key in ("vc", "dvc_dR", "oort_A", "oort_B", "rho0", "rho_dm"):
        assert getattr(as_floats, key).value == pytest.approx(getattr(mw, key).value, rel=1e-12)


def test_error_is_the_calibrated_replicates_spread():
    # flat rotation curves v_c = sqrt(amp) vo, densities proportional to amp
    amps = np.array([0.9, 1.0, 1.05, 1.2])
    reps = [LogarithmicHaloPotential(amp=a, ro=RO, vo=VO) for a in amps]
    q = local_quantities(reps[1], R0 * u.kpc, Z0 * u.kpc, replicates=reps)
    k_force, k_density = SIGMA_CALIBRATION["force"], SIGMA_CALIBRATION["density"]
    assert q.vc.to_value(u.km / u.s) == pytest.approx(VO, rel=1e-10)
    assert q.sigma["vc"].to_value(u.km / u.s) == pytest.approx(
        k_force * np.std(np.sqrt(amps) * VO, ddof=1), rel=1e-10
    )
    # the densities add the flows' shared deficit at the plane, a fraction of rho_0
    rho_spread = (q.sigma["rho0"] / q.rho0).to_value("")
    expected = np.hypot(k_density * np.std(amps, ddof=1), RHO0_SYSTEMATIC)
    assert rho_spread == pytest.approx(expected, rel=1e-8)
    # a flat curve: A = -B = v_c / 2R, so each replicate's A is sqrt(amp) vo / 2 R0; the
    # slope adds a fraction of v_c / R0, A and B half of it
    omega = VO / R0
    assert q.sigma["oort_A"].to_value(u.km / u.s / u.kpc) == pytest.approx(
        np.hypot(k_force * np.std(np.sqrt(amps) * omega / 2, ddof=1), DVC_SYSTEMATIC * omega / 2),
        rel=1e-8,
    )
    assert q.sigma["dvc_dR"].to_value(u.km / u.s / u.kpc) == pytest.approx(
        DVC_SYSTEMATIC * omega, rel=1e-8
    )
    off_plane = np.abs(q.z.value) > 1e-9  # K_z(0) = 0 for every replicate
    spread = (q.sigma["Kz"][off_plane] / np.abs(q.Kz[off_plane])).to_value("")
    # plus the systematic: a floor and a part that grows with height
    height = np.abs(q.z[off_plane].to_value(u.kpc))
    expected = np.hypot(k_force * np.std(amps, ddof=1), np.hypot(KZ_FLOOR, KZ_SYSTEMATIC * height))
    np.testing.assert_allclose(spread, expected, rtol=1e-8)
    table = q.table()
    assert "1 sigma" in table and "Oort A" in table and "km/s/kpc" in table
    with pytest.raises(ValueError, match="at least two replicates"):
        local_quantities(reps[0], replicates=reps[:1])


def test_table_and_json(mw):
    other = local_quantities(LogarithmicHaloPotential(ro=RO, vo=VO), R0 * u.kpc, Z0 * u.kpc)
    lines = mw.table({"flat": other}).splitlines()
    assert lines[1].split()[-1] == "flat"
    row = next(line for line in lines if line.startswith("v_c(R0)"))
    assert float(row.split()[1]) == pytest.approx(mw.vc.value, rel=1e-3)
    assert float(row.split()[-1]) == pytest.approx(other.vc.value, rel=1e-3)
    d = mw.to_dict()
    assert d["vc_unit"] == "km / s" and len(d["Kz"]) == len(mw.z)


def test_deeppot_local_command(tmp_path, capsys, monkeypatch):
    """`deeppot local` on a run whose networks are regressed to the local disk's true
    potential prints the table next to the truth and writes local.json and the figures."""
    from conftest import regress

    from deeppot_galpy.cli import main
    from deeppot_galpy.commands import local as command
    from deeppot_galpy.mocks import LocalDisk
    from deeppot_galpy.rundir import RunDir
    from deeppot_galpy.units import Units

    mock = LocalDisk()
    rng = np.random.default_rng(0)
    d = rng.standard_normal((4000, 3))
    d *= (1.5 * rng.uniform(size=4000) ** (1 / 3) / np.linalg.norm(d, axis=1))[:, None]
    x = mock.sun + d
    run = RunDir(tmp_path / "run", create=True)
    region = {"center": mock.sun.tolist(), "r_min": 0.0, "r_max": 1.5}
    run.save_potential(regress(mock, x, steps=600), Units.galactic(), region)
    run.save_replicates([regress(mock, x, steps=300, seed=s) for s in (1, 2)])
    meta = {"frame": mock.frame.to_dict(), "mock": mock.describe()}
    run.write_json("run", {"data": {"meta": meta}})
    monkeypatch.setattr(command, "PUBLISHED", ("MWPotential2014",))  # McMillan17 loads in 20 s
    out = tmp_path / "figs"
    args = ["local", str(run.path), "--baryons", "MWPotential2014", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "1 sigma" in printed and "truth" in printed and "MWPotential2014" in printed
    record = json.loads((out / "local.json").read_text())
    assert record["fit"]["vc"] == pytest.approx(record["truth"]["vc"], rel=0.03)
    assert record["truth"]["vc"] == pytest.approx(record["MWPotential2014"]["vc"], rel=1e-10)
    assert len(record["fit"]["sigma"]["Kz"]) == len(record["fit"]["z"])
    for name in ("local_kz.png", "local_rotation.png", "local_density.png"):
        assert (out / name).stat().st_size > 10_000
    assert main(["local", str(run.path), "--reference", "NoSuchModel", "--no-figures"]) == 2


def test_run_records_place_the_sun_and_the_truth(tmp_path):
    import torch

    from deeppot_galpy.local import load_run, run_truth
    from deeppot_galpy.potential import PotentialNet
    from deeppot_galpy.rundir import RunDir
    from deeppot_galpy.units import Units

    run = RunDir(tmp_path, create=True)
    net = PotentialNet(torch.tensor([-8.3, 0.0, 0.0]), 1.0, 1e5)
    run.save_potential(net, Units.galactic(), {"center": [-8.3, 0.0, 0.0], "r_max": 1.0})
    record = {"model": "plummer_mw", "params": {"mass_msun": 2e11, "b_kpc": 3.0}}
    meta = {"frame": {"galcen_distance_kpc": 8.3}, "truth": record}
    run.write_json("run", {"data": {"meta": meta}})
    pot, replicates, (R0, z0, phi0) = load_run(tmp_path)
    assert replicates == [] and R0.to_value(u.kpc) == pytest.approx(8.3, rel=1e-4)
    truth = run_truth(tmp_path)
    assert type(truth).__name__ == "PlummerPotential"
    assert truth.mass(100.0 * u.kpc, quantity=True).to_value(u.Msun) == pytest.approx(2e11, 0.01)
    run.write_json("run", {"data": {"meta": {}}})
    assert run_truth(tmp_path) is None


def test_k_z_beyond_the_fitted_volume_is_flagged(tmp_path, recwarn):
    """A run fitted in a cylinder |z| <= 0.5 kpc about the Sun: K_z asked for up to 0.8 kpc
    warns that it is extrapolated above 0.5 kpc; up to 0.4 kpc it does not. ``outside_fit``
    (which the local-disk benchmark scores with) marks the same heights."""
    import torch

    from deeppot_galpy.local import local_quantities, outside_fit
    from deeppot_galpy.potential import PotentialNet
    from deeppot_galpy.rundir import RunDir
    from deeppot_galpy.units import Units

    run = RunDir(tmp_path, create=True)
    sun = [-8.3, 0.0, 0.0]
    net = PotentialNet(torch.tensor(sun), 1.0, 1e5)
    region = {"center": sun, "r_min": 0.0, "r_max": 1.0, "survey_volume": True}
    region |= {"fit_center": sun, "r_fit": 0.85, "z_fit": 0.5}
    run.save_potential(net, Units.galactic(), region)
    meta = {"frame": {"galcen_distance_kpc": 8.3, "z_sun_pc": 0.0}}
    run.write_json("run", {"data": {"meta": meta}, "region": region})
    with pytest.warns(UserWarning, match=r"K_z above \|z\| = 0\.[56]0 kpc is outside"):
        local_quantities(tmp_path, z_max=0.8 * u.kpc, n_z=17)
    recwarn.clear()
    local_quantities(tmp_path, z_max=0.4 * u.kpc, n_z=9)
    assert not [w for w in recwarn if "K_z above" in str(w.message)]
    z = np.linspace(-0.8, 0.8, 17) * u.kpc
    outside = outside_fit(region, 8.3 * u.kpc, np.pi * u.rad, z)
    assert outside[np.abs(z.value) > 0.55].all() and not outside[np.abs(z.value) < 0.45].any()


def test_a_demo_runs_record_rebuilds_its_mock(tmp_path):
    from deeppot_galpy.local import run_truth
    from deeppot_galpy.mocks import available_mocks, get_mock, mock_from_record
    from deeppot_galpy.rundir import RunDir

    # records carry derived values (a Hernquist sphere's M and a) beside the arguments
    for name in available_mocks():
        mock = get_mock(name)
        assert mock_from_record(mock.describe()).params == mock.params
    record = get_mock("hernquist_om", ra=2.0).describe()
    run = RunDir(tmp_path, create=True)
    run.write_json("run", {"data": {"meta": {"mock": record}}})
    truth = run_truth(tmp_path)
    # galpy's amp is 2M for its Hernquist potential: M = 1 at r -> infinity
    assert type(truth).__name__ == "HernquistPotential"
    assert truth.mass(1e6) == pytest.approx(1.0, rel=1e-4)
    record["params"]["a"] = 3.0
    run.write_json("run", {"data": {"meta": {"mock": record}}})
    with pytest.warns(UserWarning, match="no truth"):
        assert run_truth(tmp_path) is None
