"""Integrate orbits in a learned potential and compare them with a reference potential.

Loads ``DeepPotential.load(RUN_DIR)`` and integrates ``--n-orbits`` orbits for ``--time``
(natural units; default ten circular periods at the orbits' median radius) with ``--steps``
outputs, by ``--method``:

* ``batched``: all orbits at once in the network (deeppot_galpy.orbits.integrate_batched;
  ``--integrator`` dop853, yoshida4 or leapfrog),
* ``direct``: galpy's Python dop853, one orbit and one network call per force evaluation (slow:
  the baseline the other two are measured against),
* ``exported``: the network exported to a C-backed galpy expansion (deeppot_galpy.export), then
  galpy's dop853_c; the export's accuracy report is saved with the results.

With ``--reference MOCK`` the same initial conditions, drawn from the mock's distribution
function inside its well-sampled radii, are integrated in the mock's true galpy potential and
the orbits' divergence is measured. Writes OUT/orbits.json and OUT/figures/orbits.png (OUT
defaults to RUN_DIR) and prints a summary. The workflow is
:func:`deeppot_galpy.orbits.orbit_study`; this module only parses its arguments.
"""

from __future__ import annotations

import argparse
import json

from ..mocks import available_mocks, get_mock


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..orbits import BATCHED_METHODS, METHODS

    p.add_argument("run_dir", help="run directory with potential.safetensors/json")
    p.add_argument("--n-orbits", type=int, default=100, help="number of orbits (default 100)")
    p.add_argument("--time", type=float, help="integration time, natural units")
    p.add_argument("--steps", type=int, default=1000, help="output steps (default 1000)")
    p.add_argument("--method", choices=METHODS, default="batched", help="default: batched")
    p.add_argument(
        "--integrator",
        choices=BATCHED_METHODS,
        default="dop853",
        help="batched integrator (default dop853)",
    )
    p.add_argument(
        "--export-method",
        # export.EXPORT_METHODS, not imported: every command's parser is built at start-up
        choices=("auto", "interp_spherical", "multipole", "scf", "interp_rz"),
        default="auto",
        help="expansion for --method exported (default auto: the most faithful)",
    )
    p.add_argument("--reference", choices=available_mocks(), help="true potential to compare to")
    p.add_argument("--out", help="output directory (default: RUN_DIR)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial conditions")
    p.add_argument("--device", default="cpu", help="torch device for the network")


def run(args: argparse.Namespace) -> int:
    from ..galpy_potential import DeepPotential
    from ..orbits import orbit_study

    if args.n_orbits < 1 or args.steps < 1:
        raise ValueError("--n-orbits and --steps must be positive")
    record = orbit_study(
        DeepPotential.load(args.run_dir, device=args.device),
        args.out or args.run_dir,
        n_orbits=args.n_orbits,
        time_span=args.time,
        steps=args.steps,
        method=args.method,
        integrator=args.integrator,
        export_method=args.export_method,
        mock=get_mock(args.reference) if args.reference else None,
        seed=args.seed,
    )
    keys = ("energy_drift_max", "divergence_final_median", "divergence_final_p90")
    result = record["results"][args.method]
    summary = {k: result[k] for k in keys if k in result}
    summary.update(method=args.method, seconds=round(record["seconds"], 3), figure=record["figure"])
    print(json.dumps(summary, indent=2))
    return 0
