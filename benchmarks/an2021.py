"""An, Naik et al. (2021)'s beta = 1/2 Hernquist sphere end to end, scored with their metric
(issue 12).

Their system (galpy's ``constantbetaHernquistdf``, beta = 1/2, stars within 200a; here in
G = M = a = 1, :class:`deeppot_galpy.mocks.HernquistBeta`) is fitted by the public CLI,
``deeppot demo --mock hernquist_beta`` with ``[fit] n_stars = N`` (they used 10^6 particles),
and scored with their metric: the median |a_r / a_r,true - 1| at 50 log-spaced points along an
axis from 0.4a to 20a (they report 0.8%), beside the demo's own metrics (force and density
errors on fresh stars, radial bins, coverage of the quoted errors) and the wall time.

    python benchmarks/an2021.py --out runs/an2021                 # 10^6 stars, ~30 min on 2 cores
    python benchmarks/an2021.py --n 131072 --out runs/an2021_2e17

Prints one JSON record and a Markdown row; writes OUT/results.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from deeppot_galpy.cli import main as deeppot
from deeppot_galpy.compare import as_field
from deeppot_galpy.mocks import HernquistBeta
from deeppot_galpy.rundir import RunDir


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=10**6, help="stars (An et al.: 10^6)")
    p.add_argument("--preset", default="default")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/an2021")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = out / "config.toml"
    config.write_text(f'preset = "{args.preset}"\n\n[fit]\nn_stars = {args.n}\n')
    run = out / "run"
    cmd = ["demo", "--mock", "hernquist_beta", "--out", str(run), "--overwrite", "--quiet"]
    cmd += ["--config", str(config), "--seed", str(args.seed)]
    t0 = time.perf_counter()
    if deeppot(cmd) != 0:
        raise SystemExit("deeppot demo failed")
    wall = time.perf_counter() - t0
    net, _ = RunDir(run).load_potential()
    mock = HernquistBeta()
    metrics = json.loads((run / "metrics.json").read_text())
    result = {
        "n_stars": args.n,
        "preset": args.preset,
        "seed": args.seed,
        "wall_seconds": wall,
        "an2021_radial_force_err": mock.radial_force_error(as_field(net, mock.units.G)),
        "metrics": metrics,
    }
    (out / "results.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    print("| stars | their metric (theirs 0.8%) | wall s |\n|---|---|---|")
    print(f"| {args.n:,} | {result['an2021_radial_force_err']:.2%} | {wall:.0f} |")


if __name__ == "__main__":
    main()
