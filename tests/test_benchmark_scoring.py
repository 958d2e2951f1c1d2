"""benchmarks/run.py scores in the truth's units: a galpy baseline (natural units) against a
system in kpc, km/s is converted, so a system's own potential scores ~0 (issue 15, item 1)."""

import importlib.util
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from galpy.potential import (
    MiyamotoNagaiPotential,
    NFWPotential,
    evaluateDensities,
    evaluatePotentials,
    evaluateRforces,
    evaluatezforces,
)

from deeppot_galpy.units import Units

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
RO, VO = 8.0, 220.0


@pytest.fixture(scope="module")
def bench_run():
    import sys

    sys.path.insert(0, str(BENCHMARKS))  # run.py imports its sibling report.py
    try:
        spec = importlib.util.spec_from_file_location("bench_run", BENCHMARKS / "run.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


class KpcDisk:
    """A Miyamoto-Nagai disk in an NFW halo in kpc, km/s, Msun, evaluated through galpy's own
    physical-unit output (astropy Quantities), independently of deeppot_galpy's conversion."""

    name = "kpc_disk"
    units = Units.galactic()
    r_range = (1.0, 16.0)
    solar_radius = 8.0

    def __init__(self):
        kw = {"ro": RO, "vo": VO}
        self.galpy = [
            MiyamotoNagaiPotential(amp=1.0, a=3.0 / RO, b=0.28 / RO, **kw),
            NFWPotential(amp=2.0, a=16.0 / RO, **kw),
        ]

    def _eval(self, fn, x, unit):
        R = np.hypot(x[:, 0], x[:, 1]) * u.kpc
        out = fn(self.galpy, R, x[:, 2] * u.kpc, quantity=True, ro=RO, vo=VO)
        return out.to_value(unit)

    def potential(self, x):
        return self._eval(evaluatePotentials, x, u.km**2 / u.s**2)

    def acceleration(self, x):
        acc = u.km**2 / u.s**2 / u.kpc
        fR, fz = self._eval(evaluateRforces, x, acc), self._eval(evaluatezforces, x, acc)
        R = np.hypot(x[:, 0], x[:, 1])
        return np.stack([fR * x[:, 0] / R, fR * x[:, 1] / R, fz], axis=1)

    def density(self, x):
        return self._eval(evaluateDensities, x, u.Msun / u.kpc**3)


def test_a_systems_own_galpy_potential_scores_zero_in_kpc(bench_run):
    truth = KpcDisk()
    rng = np.random.default_rng(0)
    R, phi = rng.uniform(1.0, 15.0, 3000), rng.uniform(0.0, 2 * np.pi, 3000)
    x = np.stack([R * np.cos(phi), R * np.sin(phi), rng.normal(0.0, 0.5, 3000)], axis=1)
    scores = bench_run.score(truth.galpy, truth, x)
    m = scores["metrics"]
    assert m["n_points"] > 2000
    assert m["force_err_p90"] < 1e-6 and m["phi_err_p90"] < 1e-6
    assert abs(m["force_bias_median"]) < 1e-6
    assert m["density_err_p90"] < 1e-6
    disk = scores["disk"]
    assert disk["vc_err_max"] < 1e-6 and disk["kz_err_max"] < 1e-6
