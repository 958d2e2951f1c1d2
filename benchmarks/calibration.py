"""The calibration of the replicates' error bars (``SIGMA_CALIBRATION`` and the others, issue 12).

For each finished run (``NAME=RUN_DIR``, fitted with replicates at the default preset:
``benchmarks/coverage.py --size default``, ``benchmarks/local_disk.py``, ``deeppot fit``), the
normalised errors z = |fit - truth| / raw spread of the replicates (Phi after its median
offset; each force component counts once). NAME is a mock, scored at its held-out true stars
in its scoring range, or a key of ``--truths FILE.json`` for a run of a catalog (``deeppot
fit``) whose truth is a galpy potential, scored at the catalog's stars (the last ``--n``) in
the given radius range::

    {"tracers": {"potential": "NFWPotential",
                 "args": {"conc": 12.0, "mvir": 1.0, "H": 70.0, "wrtcrit": true},
                 "r_range_kpc": [0.4, 20.0]},
     "sphere": {"potential": "HernquistPotential",
                "args": {"amp": "6e11 solMass", "a": "15 kpc"}, "r_range_kpc": [1.5, 45.0]}}

(``args`` go to the galpy class; strings are astropy Quantities; ro = 8 kpc, vo = 220 km/s.)
The factor for a kind of quantity is the 68.3rd percentile of z pooled over the runs (each
run weighted equally): the factor that makes the pooled 1 sigma cover as often as a
Gaussian's. Prints, per run, the coverage at 1 and 2 sigma raw, with the factors refitted on
these runs, with the factors refitted on the other runs (what a run the factors were not
measured on would see) and with the factors each run recorded (``fit_calibration``, what the package
quotes; for runs made before they were recorded, ``calibration(region)``), the factor each
run alone would need, the pooled factors, and per kind the most runs covered within 10
points of 68.3% at one factor (#12's test) with the range of factors that reach it.

    python benchmarks/calibration.py plummer=runs/coverage/plummer nfw=runs/coverage/nfw \\
        local_disk=runs/local_disk/run_noiseless
    python benchmarks/calibration.py --truths truths.json tracers=runs/tracers sphere=runs/sphere

Writes the table (Markdown) to ``--markdown FILE`` if given.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import astropy.units as u
import numpy as np
from held_out import SYSTEMS as HELD_OUT

from deeppot_galpy.compare import as_field, in_region
from deeppot_galpy.data import catalog_to_phasespace
from deeppot_galpy.mocks import get_mock, mock_from_record
from deeppot_galpy.potential.replicates import fit_calibration, replicate_spread
from deeppot_galpy.rundir import RunDir

KINDS = ("phi", "force", "density")
NOMINAL = (0.683, 0.954)


def run_mock(run: RunDir, name: str):
    """The mock a run was fitted on: its catalog's truth record where it has one (a disk the
    defaults were not tuned on), else ``name`` with its defaults."""
    meta = (run.read_json("run").get("data") or {}).get("meta") or {}
    record = meta.get("mock") or meta.get("truth") or {}
    if record.get("name") != name:
        return get_mock(name)
    return mock_from_record(record)


def mock_truth(run: RunDir, name: str, n: int, seed: int):
    """The run's mock as a field, ``n`` held-out true stars in its scoring range, and G."""
    mock = run_mock(run, name)
    held = mock.sample(n, seed)
    if mock.region is not None:
        keep = in_region(held.x, mock.region)
    else:
        r = np.linalg.norm(held.x, axis=1)
        keep = (r >= mock.r_range[0]) & (r <= mock.r_range[1])
    return as_field(mock, mock.units.G), held.x[keep], mock.units.G


def spec_potential(spec: dict) -> tuple[object, tuple[float, float]]:
    """The galpy potential of a ``--truths`` entry (module docstring) and its radius range."""
    import galpy.potential

    args = {k: u.Quantity(v) if isinstance(v, str) else v for k, v in spec["args"].items()}
    pot = getattr(galpy.potential, spec["potential"])(**args, ro=8.0, vo=220.0)
    return pot, tuple(spec["r_range_kpc"])


def galpy_truth(run: RunDir, pot, r_range: tuple[float, float], n: int):
    """The galpy potential ``pot`` as a field in the run's units, the last ``n`` of the run's
    catalog stars within ``r_range`` kpc of the origin, and G."""
    # the run was fitted on this catalog, so its stars come in the run's units
    data, _ = catalog_to_phasespace(run.read_json("run")["invocation"]["inputs"]["catalog"])
    r = np.linalg.norm(data.x, axis=1) * (1.0 * data.units.quantity("length")).to_value(u.kpc)
    lo, hi = r_range
    return as_field(pot, units=data.units), data.x[(r >= lo) & (r <= hi)][-n:], data.units.G


def normalised_errors(
    run_dir: str, name: str, n: int, seed: int, truths: dict
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """|error| / raw spread per kind at the truth's points (:func:`mock_truth` or, for a key of
    ``truths``, :func:`galpy_truth`), and the factors the package quotes for this run
    (:func:`~deeppot_galpy.potential.replicates.fit_calibration`)."""
    run = RunDir(run_dir)
    net, meta = run.load_potential()
    reps = run.load_replicates()
    if name in truths:
        truth, x, G = galpy_truth(run, *spec_potential(truths[name]), n)
    elif name in HELD_OUT:
        pot, _, _, r_range = HELD_OUT[name]()
        truth, x, G = galpy_truth(run, pot, r_range, n)
    else:
        truth, x, G = mock_truth(run, name, n, seed)
    sigma = replicate_spread(reps, x, G, factors=None)
    fit = as_field(net, G)
    rho_fit, rho_true = fit.density(x), truth.density(x)
    phi_fit, phi_true = fit.potential(x), truth.potential(x)
    errors = {
        "phi": np.abs(phi_fit - np.median(phi_fit - phi_true) - phi_true) / sigma["phi"],
        "force": (np.abs(fit.acceleration(x) - truth.acceleration(x)) / sigma["acc"]).ravel(),
        "density": np.abs(rho_fit - rho_true) / sigma["density"],
    }
    return errors, fit_calibration(meta)


def within(z: np.ndarray, factor: float) -> str:
    """How often z / factor is below 1 and 2, as "a% / b%" ("-" without a factor)."""
    if not np.isfinite(factor):
        return "-"
    return " / ".join(f"{np.mean(z / factor < s):.1%}" for s in (1, 2))


def pooled_factor(zs: list[np.ndarray]) -> float:
    """The 68.3rd percentile of z over runs weighted equally."""
    z = np.concatenate(zs)
    w = np.concatenate([np.full(len(a), 1.0 / len(a)) for a in zs])
    order = np.argsort(z)
    cdf = np.cumsum(w[order]) / w.sum()
    return float(z[order][np.searchsorted(cdf, NOMINAL[0])])


def within_ten_points(zs: list[np.ndarray], grid: np.ndarray) -> tuple[int, float, float]:
    """The most runs whose 1 sigma covers within 10 points of 68.3% at one factor of
    ``grid`` (#12's test), and the range of factors that reach it."""
    counts = np.array([sum(abs(np.mean(z / f < 1) - NOMINAL[0]) <= 0.10 for z in zs) for f in grid])
    best = grid[counts == counts.max()]
    return int(counts.max()), float(best.min()), float(best.max())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("runs", nargs="+", help="NAME=RUN_DIR (NAME: a mock or a key of --truths)")
    p.add_argument("--truths", help="JSON of galpy truths for catalog runs (module docstring)")
    p.add_argument("--n", type=int, default=8192, help="held-out stars drawn per run")
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--markdown")
    args = p.parse_args()
    truths = json.loads(Path(args.truths).read_text()) if args.truths else {}
    z, in_code = {}, {}
    for item in args.runs:
        label, run_dir = item.split("=", 1)
        z[label], in_code[label] = normalised_errors(
            run_dir, label.split(":")[0], args.n, args.seed, truths
        )
    factors = {k: pooled_factor([z[r][k] for r in z]) for k in KINDS}
    lines = [
        "| run | quantity | factor it needs | raw: within 1 / 2 sigma | refitted: within 1 / 2 "
        "sigma | refitted without this run | in code: within 1 / 2 sigma |",
        "|---|---|---|---|---|---|---|",
    ]
    for run, errs in z.items():
        for k in KINDS:
            others = [z[r][k] for r in z if r != run]
            without = pooled_factor(others) if others else float("nan")
            cells = [within(errs[k], f) for f in (1.0, factors[k], without, in_code[run][k])]
            needs = f"{pooled_factor([errs[k]]):.2f}"
            lines.append(f"| {run} | {k} | {needs} | " + " | ".join(cells) + " |")
    lines.append("| (nominal) | | 1 | " + " | ".join(["68.3% / 95.4%"] * 4) + " |")
    grid = np.round(np.arange(0.3, 3.0, 0.05), 2)
    for k in KINDS:
        n, lo, hi = within_ten_points([z[r][k] for r in z], grid)
        lines.append(f"\n{k}: {n} of {len(z)} runs within 10 points of 68.3% at {lo:.2f}-{hi:.2f}")
    table = "\n".join(lines)
    print(json.dumps({"factors": factors, "in_code": in_code}, indent=1))
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
