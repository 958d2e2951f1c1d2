"""Orbit integration in a learned Plummer potential: speed, export accuracy, energy drift (issue 3).

The network is a PotentialNet fitted to the CBE with the Plummer sphere's exact grad ln f (the
potential stage alone; ``--run-dir`` reuses or stores it). Orbits start from the Plummer DF with
0.1 <= r <= 3 and run for T = 100 (about 16 core periods) in 1,000 steps of dt = 0.1:

(a) galpy's analytic ``PlummerPotential`` with galpy's C integrators (symplec4_c at dt; dop853_c);
(b) the network: ``DeepPotential`` through galpy's Python integrators, one orbit and one point at
    a time ("direct"; 100 and 10,000 orbits extrapolated from a few, as marked), and all orbits
    at once with deeppot_galpy.orbits.integrate_batched (leapfrog: 1 network call per step,
    yoshida4: 3; its 10,000-orbit time extrapolated from 1,000 orbits, as marked);
(c) the network exported to a C-backed galpy expansion (deeppot_galpy.export, "auto"), then
    galpy's C integrators.

Then: the accuracy of (c) against (b) on 100 orbits (both dop853, tight tolerances), and the
energy drift over 100 orbital periods of orbits with 0.3 <= r <= 1 (period <= 10.6) for the
network (batched dop853 and yoshida4) and the export (galpy dop853_c and symplec4_c).

    python benchmarks/orbits.py --run-dir runs/bench_orbits_net
    python benchmarks/orbits.py --quick            # smaller network and no 10,000-orbit runs

Prints one JSON record and a Markdown table; ``--markdown FILE`` writes both to FILE. Timings are
wall-clock seconds on whatever machine runs it (1 torch thread): compare ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from deeppot_galpy.export import export_galpy
from deeppot_galpy.galpy_potential import DeepPotential
from deeppot_galpy.mocks import Plummer
from deeppot_galpy.orbits import (
    cartesian_to_galpy,
    compare_orbits,
    initial_conditions,
    integrate,
    integrate_batched,
    integrate_galpy,
)
from deeppot_galpy.potential import CBEPoints, PotentialTraining, fit_potential
from deeppot_galpy.rundir import RunDir
from deeppot_galpy.units import Units

T_END, N_STEPS = 100.0, 1000


def plummer_network(run_dir: Path | None, n_points: int, steps: int) -> DeepPotential:
    """The benchmark's network: loaded from ``run_dir`` if it holds one, else trained (and
    saved there)."""
    if run_dir is not None and (run_dir / "potential.json").exists():
        return DeepPotential.load(run_dir)
    m = Plummer()
    ps = m.sample(n_points, seed=1)
    gx, gv = m.grad_log_df(ps.x, ps.v)
    pts = CBEPoints(ps.x, ps.v, gx, gv, m.log_df(ps.x, ps.v))
    net, hist = fit_potential(pts, PotentialTraining(steps=steps), progress=False)
    print(f"trained the network: {steps} steps on {n_points} points, {hist['seconds']:.0f} s")
    if run_dir is not None:
        RunDir(run_dir, create=True).save_potential(net, Units.nbody(), ps.region())
    return DeepPotential(net, Units.nbody(), ps.region())


def timed(fn, *args, **kwargs) -> tuple[object, float]:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def galpy_seconds(pot, x, v, t, method: str, **kw) -> float:
    """Seconds galpy's Orbit.integrate takes (setting up the Orbit is not timed)."""
    from galpy.orbit import Orbit

    o = Orbit(cartesian_to_galpy(x, v))
    return timed(o.integrate, t, pot, method=method, progressbar=False, numcores=1, **kw)[1]


def batched_seconds(pot, x, v, t, method: str) -> float:
    return timed(integrate_batched, pot, x, v, t, method=method)[1]


def speed(pot, exported, x0, v0, sizes: list[int]) -> list[dict]:
    """Rows of the speed table: seconds for 1,000 steps of N orbits.

    Runs that would take minutes are timed on ``cap`` orbits and scaled linearly (each orbit
    costs the same there: galpy's Python loop, or batches large enough to be compute-bound).
    """
    true = Plummer().galpy_potential()
    t = np.linspace(0.0, T_END, N_STEPS + 1)
    dt = T_END / N_STEPS
    runs = [  # (potential, integrator, seconds(x, v), cap)
        ("(a) analytic PlummerPotential", "galpy symplec4_c",
         lambda x, v: galpy_seconds(true, x, v, t, "symplec4_c", dt=dt), None),
        ("(a) analytic PlummerPotential", "galpy dop853_c",
         lambda x, v: galpy_seconds(true, x, v, t, "dop853_c"), None),
        ("(b) DeepPotential, direct", "galpy dop853 (Python)",
         lambda x, v: galpy_seconds(pot, x, v, t, "dop853"), 3),
        ("(b) DeepPotential, batched", "leapfrog (1 call/step)",
         lambda x, v: batched_seconds(pot, x, v, t, "leapfrog"), None),
        ("(b) DeepPotential, batched", "yoshida4 (3 calls/step)",
         lambda x, v: batched_seconds(pot, x, v, t, "yoshida4"), 1000),
        ("(c) exported (C)", "galpy symplec4_c",
         lambda x, v: galpy_seconds(exported, x, v, t, "symplec4_c", dt=dt), 1000),
        ("(c) exported (C)", "galpy dop853_c",
         lambda x, v: galpy_seconds(exported, x, v, t, "dop853_c"), 1000),
    ]  # fmt: skip
    rows = []
    for n in sizes:
        for name, integrator, run, cap in runs:
            m = n if cap is None else min(n, cap)
            seconds = run(x0[:m], v0[:m])
            rows.append({
                "potential": name, "integrator": integrator, "n_orbits": n,
                "seconds": seconds * n / m,
                "note": "" if m == n else f"extrapolated from {m} orbits",
            })  # fmt: skip
    return rows


def export_accuracy(pot, exported, x0, v0) -> dict:
    """(c) against (b): 100 orbits, both with dop853 at tight tolerances."""
    t = np.linspace(0.0, T_END, N_STEPS + 1)
    x, v = x0[:100], v0[:100]
    net, _, _ = integrate(pot, x, v, t, "batched", "dop853", rtol=1e-10, atol=1e-12)
    exp, in_exp, _ = integrate(pot, x, v, t, "exported", exported=exported)
    res = compare_orbits(exp, in_exp, net, pot)
    p90 = np.asarray(res["divergence_p90"])
    return {
        "divergence_final_median": res["divergence_final_median"],
        "divergence_final_p90": res["divergence_final_p90"],
        "divergence_p90_at_t=10": float(p90[N_STEPS // 10]),
    }


def energy_drift(pot, exported, n_orbits: int) -> dict:
    """max |E(t)/E(0) - 1| over 100 periods of the slowest orbit (0.3 <= r <= 1)."""
    m = Plummer()
    x0, v0 = initial_conditions(pot, n_orbits, seed=5, r_range=(0.3, 1.0), mock=m)
    r = np.linalg.norm(x0, axis=1)
    period = float(np.max(2 * np.pi * r / np.sqrt(r**2 / (1 + r**2) ** 1.5)))
    t = np.linspace(0.0, 100 * period, 2001)
    out = {"n_orbits": n_orbits, "t_end": t[-1], "longest_period": period}
    runs = {
        "network batched dop853 (rtol 1e-10)": lambda: integrate(
            pot, x0, v0, t, "batched", "dop853", rtol=1e-10, atol=1e-12)[:2],
        "network batched yoshida4 (dt 0.025)": lambda: integrate(
            pot, x0, v0, t, "batched", "yoshida4",
            substeps=int(np.ceil((t[1] - t[0]) / 0.025)))[:2],
        "export galpy dop853_c": lambda: integrate(
            pot, x0, v0, t, "exported", exported=exported)[:2],
        "export galpy symplec4_c (dt 0.025)": lambda: (
            integrate_galpy(exported, x0, v0, t, method="symplec4_c",
                            dt=(t[1] - t[0]) / np.ceil((t[1] - t[0]) / 0.025)), exported),
    }  # fmt: skip
    for name, run in runs.items():
        (orbits, in_pot), s = timed(run)
        out[name] = {"energy_drift_max": compare_orbits(orbits, in_pot)["energy_drift_max"],
                     "seconds": s}  # fmt: skip
    return out


def markdown(record: dict) -> str:
    lines = [
        "## Orbits in the learned Plummer potential (benchmarks/orbits.py)",
        "",
        f"Network: {record['network']}. Machine load average at start: {record['load']}.",
        f"1,000 steps of dt = 0.1 (T = {T_END:g}); seconds of wall clock, 1 torch thread.",
        "",
        "| potential | integrator | N = 1 | N = 100 | N = 10,000 |",
        "|---|---|---|---|---|",
    ]
    table: dict[tuple[str, str], dict[int, str]] = {}
    for r in record["speed"]:
        cell = f"{r['seconds']:.3g}" + (" *" if r["note"] else "")
        table.setdefault((r["potential"], r["integrator"]), {})[r["n_orbits"]] = cell
    for (name, integ), cells in table.items():
        lines.append(
            f"| {name} | {integ} | " + " | ".join(cells.get(n, "-") for n in (1, 100, 10000)) + " |"
        )
    lines += ["", "\\* extrapolated linearly from fewer orbits (see JSON notes).", ""]
    ex = record["export"]
    lines += [
        f"Export: `{ex['method']}`, built in {ex['build_s']:.1f} s; force error against the "
        f"network on {ex['n_check']} points in the data region: median {ex['force_err_median']:.2e}"
        f", p90 {ex['force_err_p90']:.2e}, max {ex['force_err_max']:.2e}; median by radius "
        + ", ".join(f"r {a:.2g}-{b:.2g}: {m:.1e}" for a, b, m in ex["force_err_median_by_radius"])
        + ". Candidates (median): "
        + ", ".join(f"{k} {v['force_err_median']:.2e}" for k, v in ex["candidates"].items())
        + ".",
        "",
        "Exported vs network orbits (100 orbits, dop853, |dx|/r0): "
        + ", ".join(f"{k} {v:.2e}" for k, v in record["export_accuracy"].items())
        + ".",
        "",
        f"Energy drift max |E/E0 - 1| over 100 periods ({record['energy']['n_orbits']} orbits, "
        f"T = {record['energy']['t_end']:.0f}):",
        "",
        "| run | max drift | seconds |",
        "|---|---|---|",
    ]
    for k, v in record["energy"].items():
        if isinstance(v, dict):
            lines.append(f"| {k} | {v['energy_drift_max']:.2e} | {v['seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run-dir", type=Path, help="reuse/store the trained network here")
    p.add_argument("--quick", action="store_true", help="small network, N up to 100")
    p.add_argument("--markdown", type=Path, help="write the table and JSON here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # galpy's "using C" notes and SCF's numpy warning
    n_points, steps = (2**13, 300) if args.quick else (2**15, 1500)
    pot = plummer_network(args.run_dir, n_points, steps)
    sizes = [1, 100] if args.quick else [1, 100, 10_000]
    x0, v0 = initial_conditions(pot, max(sizes), seed=0, r_range=(0.1, 3.0), mock=Plummer())
    exported, report = export_galpy(pot)
    record = {
        "network": f"PotentialNet {pot.network.config.hidden}, CBE fit on exact grad ln f",
        "load": os.getloadavg()[0],
        "export": report,
        "speed": speed(pot, exported, x0, v0, sizes),
        "export_accuracy": export_accuracy(pot, exported, x0, v0),
        "energy": energy_drift(pot, exported, 4 if args.quick else 10),
    }
    text = markdown(record)
    print(json.dumps(record, indent=1, default=float))
    print(text)
    if args.markdown:
        args.markdown.write_text(
            text + "\n```json\n" + json.dumps(record, indent=1, default=float) + "\n```\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
