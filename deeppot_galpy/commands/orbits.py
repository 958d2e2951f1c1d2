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
defaults to RUN_DIR) and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np

from ..mocks import available_mocks, get_mock

METHODS = ("batched", "direct", "exported")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..orbits import BATCHED_METHODS

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
        choices=("auto", "interp_spherical", "multipole", "scf"),
        default="auto",
        help="expansion for --method exported (default auto: the most faithful)",
    )
    p.add_argument("--reference", choices=available_mocks(), help="true potential to compare to")
    p.add_argument("--out", help="output directory (default: RUN_DIR)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial conditions")
    p.add_argument("--device", default="cpu", help="torch device for the network")


def _radial_range(pot, mock) -> tuple[float, float]:
    """Radii to start orbits at: the mock's well-sampled body, else the inner data region."""
    if mock is not None:
        return mock.r_range
    reg = pot.natural_region()
    return max(reg["r_min"], 0.02 * reg["r_max"]), 0.5 * reg["r_max"]


def run(args: argparse.Namespace) -> int:
    from ..galpy_potential import DeepPotential
    from ..orbits import (
        compare_orbits,
        initial_conditions,
        integrate_batched,
        integrate_galpy,
        plot_orbit_comparison,
    )
    from ..rundir import RunDir

    if args.n_orbits < 1 or args.steps < 1:
        raise ValueError("--n-orbits and --steps must be positive")
    pot = DeepPotential.load(args.run_dir, device=args.device)
    mock = get_mock(args.reference) if args.reference else None
    if mock is not None and pot.model_units != mock.units:
        raise ValueError(
            f"the reference mock {args.reference!r} is in {mock.units}, the model in "
            f"{pot.model_units}: they do not share natural units"
        )
    x0, v0 = initial_conditions(pot, args.n_orbits, args.seed, _radial_range(pot, mock), mock)
    if args.time is None:
        r = np.median(np.linalg.norm(x0, axis=1))
        v_c = math.sqrt(max(float(pot.vcirc(r, use_physical=False)), 1e-12))
        args.time = 10 * 2 * math.pi * r / v_c
    t = np.linspace(0.0, args.time, args.steps + 1)

    record: dict = {
        "method": args.method,
        "n_orbits": args.n_orbits,
        "time": args.time,
        "steps": args.steps,
    }
    t0 = time.perf_counter()
    if args.method == "batched":
        learned = integrate_batched(pot, x0, v0, t, method=args.integrator)
        record["integrator"] = args.integrator
        integrated_in = pot
    elif args.method == "direct":
        learned = integrate_galpy(pot, x0, v0, t, method="dop853")
        record["integrator"] = "galpy dop853 (Python)"
        integrated_in = pot
    else:
        from ..export import export_galpy

        integrated_in, record["export"] = export_galpy(pot, args.export_method)
        t0 = time.perf_counter()  # the export's build time is in its report
        learned = integrate_galpy(integrated_in, x0, v0, t, method="dop853_c")
        record["integrator"] = f"galpy dop853_c in the {record['export']['method']} export"
    record["seconds"] = time.perf_counter() - t0

    results = {}
    reference = ref_pot = None
    if mock is not None:
        ref_pot = mock.galpy_potential()
        t0 = time.perf_counter()
        reference = integrate_galpy(ref_pot, x0, v0, t, method="dop853_c")
        record["reference_seconds"] = time.perf_counter() - t0
        results["reference"] = compare_orbits(reference, ref_pot)
    results[args.method] = compare_orbits(learned, integrated_in, reference, ref_pot)
    record["results"] = results

    out = RunDir(args.out or args.run_dir, create=True)
    out.write_json("orbits", record)
    figure = plot_orbit_comparison(results, out.path / "figures" / "orbits.png")
    keys = ("energy_drift_max", "divergence_final_median", "divergence_final_p90")
    summary = {k: results[args.method][k] for k in keys if k in results[args.method]}
    summary.update(method=args.method, seconds=round(record["seconds"], 3), figure=str(figure))
    print(json.dumps(summary, indent=2))
    return 0
