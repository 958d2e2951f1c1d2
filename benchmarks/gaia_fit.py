"""`deeppot fit` on a noiseless Gaia-like mock of a Plummer sphere in physical units (issue 4).

Writes an archive-style catalog (ICRS observables, Gaia column names) from
:func:`deeppot_galpy.data.write_gaia_mock`, runs the public CLI ``deeppot fit`` on it, loads the
run and scores the learned forces, in kpc and km/s, against the analytic Plummer sphere
(M = 1e11 Msun, b = 3 kpc) on held-out stars within the scored radii.

    python benchmarks/gaia_fit.py --n 131072 --out runs/gaia_fit
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from deeppot_galpy.cli import main as deeppot
from deeppot_galpy.compare import potential_metrics
from deeppot_galpy.data import sample_model, write_gaia_mock
from deeppot_galpy.rundir import RunDir
from deeppot_galpy.units import Units


class PhysicalPlummer:
    """Analytic Plummer sphere in kpc, km/s, Msun."""

    def __init__(self, mass: float, b: float):
        self.gm, self.b = Units.galactic().G * mass, b
        self.mass = mass

    def potential(self, x):
        return -self.gm / np.sqrt(np.sum(x**2, 1) + self.b**2)

    def acceleration(self, x):
        return -self.gm * x / (np.sum(x**2, 1, keepdims=True) + self.b**2) ** 1.5

    def density(self, x):
        return 3 * self.mass * self.b**2 / (4 * np.pi) / (np.sum(x**2, 1) + self.b**2) ** 2.5


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=2**17)
    p.add_argument("--out", default="runs/gaia_fit")
    p.add_argument("--config", help="TOML config passed to deeppot fit")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    catalog = out / "gaia_mock.fits"
    write_gaia_mock(catalog, args.n, seed=args.seed, overwrite=True)
    cmd = ["fit", str(catalog), "--out", str(out / "run"), "--quiet", "--no-figures"]
    cmd += ["--config", args.config] if args.config else []
    cmd += ["--seed", str(args.seed)]
    if deeppot(cmd) != 0:
        raise SystemExit("deeppot fit failed")
    net, meta = RunDir(out / "run").load_potential()
    truth = PhysicalPlummer(1e11, 3.0)
    x_held, _, _ = sample_model(2**14, "plummer_mw", seed=args.seed + 99)
    metrics = potential_metrics(net, truth, x_held, Units.galactic().G, r_range=(0.3, 9.0))
    row = {k: v for k, v in metrics.items() if isinstance(v, float)}
    row["force_ratio_by_radius"] = metrics["radial"]["force_ratio"]
    print(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
