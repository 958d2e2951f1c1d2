"""Batched orbit integration, galpy integration, comparisons and the ``orbits`` command."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from galpy.potential import PlummerPotential

from deeppot_galpy.galpy_potential import DeepPotential
from deeppot_galpy.mocks import Plummer
from deeppot_galpy.orbits import (
    compare_orbits,
    initial_conditions,
    integrate_batched,
    integrate_galpy,
    plot_orbit_comparison,
)

TRUE = PlummerPotential(amp=1.0, b=1.0)

# galpy's notes that it integrates in C, and a numpy notice from inside galpy's SCF code
pytestmark = [
    pytest.mark.filterwarnings("ignore:Using C implementation"),
    pytest.mark.filterwarnings("ignore:'where' used without 'out':UserWarning"),
]


@pytest.fixture(scope="module")
def ics():
    return initial_conditions(TRUE, 5, seed=1, r_range=(0.3, 3.0), mock=Plummer())


def _max_rel_error(a, b):
    return np.max(np.linalg.norm(a.x - b.x, axis=-1) / np.linalg.norm(b.x[:, :1], axis=-1))


@pytest.mark.parametrize(
    "method, substeps, tol",
    [("dop853", 1, 1e-6), ("yoshida4", 10, 1e-5), ("leapfrog", 40, 1e-3)],
)
def test_batched_integrators_agree_with_galpy_c(ics, method, substeps, tol):
    t = np.linspace(0.0, 20.0, 101)  # ~3 core periods
    ref = integrate_galpy(TRUE, *ics, t, method="dop853_c")
    orbits = integrate_batched(TRUE, *ics, t, method=method, substeps=substeps, rtol=1e-11)
    assert orbits.x.shape == (5, 101, 3) and orbits.v.shape == (5, 101, 3)
    assert _max_rel_error(orbits, ref) < tol


@pytest.mark.parametrize("method, order", [("leapfrog", 2), ("yoshida4", 4)])
def test_symplectic_orders_and_bounded_energy_error(ics, method, order):
    t = np.linspace(0.0, 10.0, 11)
    ref = integrate_batched(TRUE, *ics, t, method="dop853", rtol=1e-12, atol=1e-14)
    errs = [
        _max_rel_error(integrate_batched(TRUE, *ics, t, method=method, substeps=s), ref)
        for s in (8, 16)
    ]
    assert errs[0] / errs[1] == pytest.approx(2**order, rel=0.3)
    # ~50 core periods at dt = 0.1: symplectic, so the energy error oscillates, never grows
    long = integrate_batched(TRUE, *ics, np.linspace(0.0, 300.0, 301), method=method, substeps=10)
    drift = np.asarray(compare_orbits(long, TRUE)["energy_drift_max_t"])
    assert drift.max() < 2 * drift[:60].max()
    assert drift.max() < (1e-2 if order == 2 else 1e-4)


def test_batched_in_the_network_matches_galpys_own_integration(plummer_fit, ics):
    pot = DeepPotential(plummer_fit.net, plummer_fit.units, plummer_fit.region)
    x0, v0 = ics[0][:2], ics[1][:2]
    t = np.linspace(0.0, 2 * np.pi, 41)
    direct = integrate_galpy(pot, x0, v0, t, method="dop853")
    batched = integrate_batched(pot, x0, v0, t, method="dop853", rtol=1e-11, atol=1e-13)
    assert _max_rel_error(batched, direct) < 1e-6


def test_initial_conditions_without_a_mock_are_bound_and_in_range():
    x, v = initial_conditions(TRUE, 50, seed=2, r_range=(0.5, 2.0))
    r = np.linalg.norm(x, axis=1)
    assert np.all((r >= 0.5) & (r <= 2.0))
    assert np.allclose(np.sum(x * v, axis=1), 0.0, atol=1e-12)  # tangential launch
    e = 0.5 * np.sum(v**2, axis=1) - 1.0 / np.sqrt(1.0 + r**2)
    assert np.all(e < 0)


def test_initial_conditions_in_a_volume_off_the_origin_rotate_like_a_disk():
    # a volume 8 units from the axis of a flat rotation curve (v_c = 1): the Sun's
    from galpy.potential import LogarithmicHaloPotential

    halo = LogarithmicHaloPotential(amp=1.0)
    center = np.array([-8.0, 0.0, 0.0])
    x, v = initial_conditions(halo, 50, seed=2, r_range=(0.1, 1.0), center=center)
    d = np.linalg.norm(x - center, axis=1)
    assert np.all((d >= 0.1) & (d <= 1.0))
    R = np.hypot(x[:, 0], x[:, 1])
    assert np.allclose(v[:, 0] * x[:, 0] + v[:, 1] * x[:, 1], 0.0, atol=1e-12) and not v[:, 2].any()
    vc = np.sqrt(R * -halo.Rforce(R, x[:, 2]))  # the circular speed where each orbit starts
    speed = np.linalg.norm(v, axis=1)
    assert np.all((speed >= 0.9 * vc - 1e-12) & (speed <= vc))


def test_compare_and_plot(ics, tmp_path):
    t = np.linspace(0.0, 5.0, 26)
    a = integrate_batched(TRUE, *ics, t, method="yoshida4", substeps=4)
    b = integrate_galpy(TRUE, *ics, t)
    res = compare_orbits(a, TRUE, b, TRUE)
    assert res["n_orbits"] == 5 and len(res["divergence_median"]) == 26
    assert res["divergence_final_p90"] < 1e-4 and res["energy_drift_max"] < 1e-5
    assert res["reference_energy_drift_max"] < 1e-8
    path = plot_orbit_comparison({"yoshida4": res}, tmp_path / "figs" / "o.png")
    assert path.exists() and path.stat().st_size > 1000


def _cli_args(*argv):
    from deeppot_galpy.commands import orbits as command

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return command, parser.parse_args(list(argv))


@pytest.mark.parametrize("method", ["batched", "direct", "exported"])
def test_orbits_command(plummer_run_dir, tmp_path, method, capsys):
    n = "2" if method == "direct" else "6"
    command, args = _cli_args(
        str(plummer_run_dir), "--n-orbits", n, "--time", "3", "--steps", "30",
        "--method", method, "--reference", "plummer", "--out", str(tmp_path),
        "--export-method", "multipole",
    )  # fmt: skip
    assert command.run(args) == 0
    record = json.loads((tmp_path / "orbits.json").read_text())
    assert record["method"] == method and record["n_orbits"] == int(n)
    res = record["results"][method]
    assert res["energy_drift_max"] < 1e-5
    assert res["divergence_final_p90"] < 0.2  # a few % force error, a fraction of an orbit
    assert "reference" in record["results"]
    assert (method == "exported") == ("export" in record)
    assert (tmp_path / "figures" / "orbits.png").exists()
    assert json.loads(capsys.readouterr().out)["method"] == method


def test_orbits_command_is_registered():
    from deeppot_galpy.cli import COMMANDS

    assert COMMANDS["orbits"][0] == "deeppot_galpy.commands.orbits"
