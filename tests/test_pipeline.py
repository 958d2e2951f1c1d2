"""The pipeline end to end through the public CLI, at the `test` size."""

import json

import numpy as np
import pytest
from astropy import units as u

from deeppot_galpy import DeepPotential
from deeppot_galpy.cli import main
from deeppot_galpy.potential.replicates import calibration
from deeppot_galpy.rundir import RunDir
from deeppot_galpy.uncertainty import error_bars


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--size", "test", "--out", str(out), "--seed", "3", "--quiet"]) == 0
    return out


def test_demo_writes_a_complete_run_directory(demo_run):
    for name in ("run.json", "metrics.json", "flows.safetensors", "potential.safetensors"):
        assert (demo_run / name).exists(), name
    assert len(RunDir(demo_run).load_replicates()) == 2
    for fig in ("df_rv.png", "potential.png", "errors_vs_radius.png", "error_bars.png"):
        assert (demo_run / "figures" / fig).stat().st_size > 10_000
    metrics = json.loads((demo_run / "metrics.json").read_text())
    pot = metrics["potential"]
    assert 0 < pot["force_err_median"] < 1  # a tiny run: scored, not accurate
    assert 0 < metrics["coverage"]["force"]["within_1sigma"] < 1
    assert set(metrics["timing"]["seconds"]) >= {"flows", "points", "potential"}
    run = json.loads((demo_run / "run.json").read_text())
    assert run["seed"] == 3 and run["versions"]["torch"]
    assert run["data"]["meta"]["mock"]["name"] == "plummer"
    # the preset's symmetry "auto" sees a round sphere: the potential is a function of r
    assert run["symmetry"]["requested"] == "auto" and run["symmetry"]["symmetry"] == "spherical"
    assert run["rest_frame"] is None  # a mock at rest is fitted in its own frame
    # the error bars' factors: a sphere's, grown by the tension the fit measured and recorded
    _, meta = RunDir(demo_run).load_potential()
    assert meta["jeans_tension"] == metrics["jeans_tension"] > 0
    assert meta["calibration"] == calibration(meta["region"], "spherical", meta["jeans_tension"])
    pot = DeepPotential.load(demo_run)
    assert pot.error_calibration == meta["calibration"]
    R, z = np.array([0.3, 1.2]), np.array([0.5, -0.2])
    np.testing.assert_allclose(pot(R, z, phi=0.0), pot(np.hypot(R, z), 0.0, phi=2.0), rtol=1e-5)


def test_demo_is_reproducible(demo_run, tmp_path):
    assert main(["demo", "--size", "test", "--out", str(tmp_path), "--seed", "3", "--quiet"]) == 0
    a, _ = RunDir(demo_run).load_potential()
    b, _ = RunDir(tmp_path).load_potential()
    x = np.random.default_rng(0).normal(size=(100, 3))
    np.testing.assert_array_equal(
        a.evaluate(x, laplacian=False)["phi"], b.evaluate(x, laplacian=False)["phi"]
    )
    reps = [RunDir(d).load_replicates() for d in (demo_run, tmp_path)]
    for a, b in zip(*reps, strict=True):
        np.testing.assert_array_equal(a.evaluate(x)["acc"], b.evaluate(x)["acc"])


def test_fit_on_a_gaia_like_catalog(tmp_path, capsys):
    from deeppot_galpy.data import write_gaia_mock

    cat = tmp_path / "mock.ecsv"
    write_gaia_mock(cat, 3000, seed=1)
    out = tmp_path / "run"
    args = ["fit", str(cat), "--out", str(out), "--preset", "test", "--replicates", "3"]
    assert main([*args, "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "3,000 rows in" in printed  # the cut report is shown
    cuts = json.loads((out / "cuts.json").read_text())
    assert cuts["n_output"] == 3000
    net, meta = RunDir(out).load_potential()
    assert meta["units"]["length"] == "kpc"
    run = json.loads((out / "run.json").read_text())
    assert run["data"]["meta"]["frame"]["galcen_distance_kpc"] == pytest.approx(8.122)
    assert run["rest_frame"] is None  # a disk volume streams with its galaxy: not moved
    # error bars in physical units from the three replicates the flag asked for
    reps = DeepPotential.load_replicates(out)
    assert len(reps) == 3
    R = np.array([2.0, 5.0]) * u.kpc
    bars = error_bars(reps, R, 0.5 * u.kpc, quantity=True)
    assert bars["vcirc"].unit == u.km / u.s and bars["phi"].unit == (u.km / u.s) ** 2
    vc = DeepPotential.load(out).vcirc(R, phi=0.0, quantity=True)
    assert np.all(bars["vcirc"] > 0) and np.all(bars["vcirc"] < vc)
    plain = error_bars(reps, R, 0.5 * u.kpc, quantities=["vcirc"])["vcirc"]  # floats, km/s
    np.testing.assert_allclose(plain, bars["vcirc"].to_value(u.km / u.s))


def test_fit_reports_bad_input_clearly(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert main(["fit", str(bad), "--out", str(tmp_path / "run"), "--preset", "test"]) == 2
    err = capsys.readouterr().err
    assert "deeppot fit: error" in err
    assert not (tmp_path / "run" / "potential.safetensors").exists()


def test_fit_with_a_magnitude_limit_needs_the_magnitudes(tmp_path, capsys):
    from deeppot_galpy.data.gaia_mock import write_gaia_mock

    catalog = tmp_path / "stars.ecsv"
    write_gaia_mock(catalog, 2000, seed=0)
    cmd = ["fit", str(catalog), "--out", str(tmp_path / "run"), "--magnitude-limit", "13"]
    assert main(cmd) == 2
    assert "apparent-magnitude column 'phot_g_mean_mag'" in capsys.readouterr().err
    assert not (tmp_path / "run" / "flows.safetensors").exists()


@pytest.mark.parametrize("model", ["joint", "factorised"])
def test_crossfit_uses_two_groups_of_flow_members(tmp_path, model):
    from dataclasses import replace

    from deeppot_galpy.config import PRESETS, FitOptions
    from deeppot_galpy.df.factorised import FactorisedFlow
    from deeppot_galpy.pipeline import run_demo

    cfg = PRESETS["test"]
    cfg = replace(
        cfg,
        n_flows=2,
        flow=replace(cfg.flow, model=model),
        potential=replace(cfg.potential, loss="crossfit"),
        radial_density=True,  # applies to the factorised DF only
    )
    metrics = run_demo(tmp_path, cfg, options=FitOptions(seed=1, progress=False, figures=False))
    ens, _ = RunDir(tmp_path).load_flows()
    assert ens.k == 2 and metrics["points"]["kept"] > 0.9 * cfg.n_points
    assert metrics["points"]["star_density"] == ("RadialProfile" if model == "factorised" else None)
    assert all(isinstance(m, FactorisedFlow) == (model == "factorised") for m in ens.members)
    assert RunDir(tmp_path).read_json("run")["df_model"] == {"model": model, "reason": "given"}
    assert 0 < metrics["potential"]["force_err_median"] < 1
    assert len(RunDir(tmp_path).load_replicates()) == 2  # each on one member, ln f loss
