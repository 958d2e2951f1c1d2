"""`deeppot fit` on the package's local-disk mock, scored on fresh stars well inside the volume
(issue 13).

The mock (:class:`deeppot_galpy.mocks.LocalDisk`: thin + thick quasi-isothermal disk stars
within 1.5 kpc of the Sun in MWPotential2014) is written as Gaia-archive tables (ICRS
observables), noiseless and with DR3-like errors (parallax 0.03 mas, proper motions 0.03
mas/yr, RV 1.5 km/s; the default cuts then drop nothing) or four times those (``dr3x4``: the
S/N cut then trims the far edge), or magnitude-limited (``maglim``:
noiseless, G <= 12.5 with a Gaussian luminosity function, so the catalog holds 95% of the stars
at 0.5 kpc and half at 1.5 kpc; fitted with ``--magnitude-limit 12.5``, and as
``maglim_undeclared`` without it; ``maglim_dr3`` with DR3-like errors too), each fitted by
the public CLI ``deeppot fit CATALOG --preset P``; ``deeppot local RUN`` then writes the local
figures and table. Scores, on ``--n-eval`` fresh stars within the mock's scoring region (1 kpc
of the Sun):

* force error |a - a_true| / |a_true| (median, p90), F_R error |dF_R| / |F_R| (median), F_z
  error |dF_z| / |F_z| at |z| > 0.3 kpc (median), density error (median) and bias (median
  rho / rho_true - 1),
* the local quantities (:func:`deeppot_galpy.local.local_quantities`) against the truth with
  their bootstrap 1-sigma errors: value, truth, relative error, pull (fit - truth) / sigma;
  K_z's largest relative error and pull over 0.3 < |z| < 1.1 kpc, and over the part of that
  band inside the volume the potential was fitted in (a flat cylinder's faces end it lower;
  the table then shows that part, with its top).

Prints one JSON record per catalog and a Markdown table; writes OUT/results.json.

    python benchmarks/local_disk.py --out runs/local_disk                 # 2^17 stars, default
    python benchmarks/local_disk.py --size large --out runs/large         # 2^20 stars, ~25 min each
    python benchmarks/local_disk.py --size test --out runs/local_smoke    # a smoke run (~minutes)
    python benchmarks/local_disk.py --catalogs maglim,maglim_undeclared   # the completeness
    python benchmarks/local_disk.py --n 262144 --volume \\
        '{"kind": "cylinder", "radius_kpc": 1.0, "z_max_kpc": 1.1}'     # a user-cut volume
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from deeppot_galpy.cli import main as deeppot
from deeppot_galpy.compare import as_field, in_region, relative_error
from deeppot_galpy.data import GaiaErrorModel
from deeppot_galpy.data.cuts import Volume
from deeppot_galpy.data.gaia_mock import write_table
from deeppot_galpy.galpy_potential import DeepPotential
from deeppot_galpy.local import local_quantities, outside_fit
from deeppot_galpy.mocks import LocalDisk
from deeppot_galpy.rundir import RunDir
from deeppot_galpy.units import Units

DR3 = GaiaErrorModel(parallax_mas=0.03, pm_mas_yr=0.03, radial_velocity_kms=1.5)
#: the magnitude-limited catalogs: G <= MAG_LIMIT with M_G ~ N(ABS_MAG): S falls from 0.95 at
#: 0.5 kpc to 0.5 at the volume's 1.5 kpc edge
MAG_LIMIT, ABS_MAG = 12.5, (1.5, 1.5)
#: name -> (errors, magnitude-limited, limit declared to deeppot fit)
CATALOGS = {
    "noiseless": (None, False, False),
    "dr3": (DR3, False, False),
    "dr3x4": (
        GaiaErrorModel(parallax_mas=0.12, pm_mas_yr=0.12, radial_velocity_kms=6.0),
        False,
        False,
    ),
    "maglim": (None, True, True),
    "maglim_dr3": (DR3, True, True),
    "maglim_undeclared": (None, True, False),
}
#: --size: (stars, evaluation stars, default preset); "large" is a Gaia-sized local sample (Naik
#: et al. 2022 fit 10^6 stars within 1 kpc; Kalda & Green 2025, 5.6 million DR3 stars)
SIZES = {
    "test": (2**12, 2**11, "test"),
    "default": (2**17, 2**14, "default"),
    "large": (2**20, 2**14, "default"),
}
SCALARS = ("vc", "dvc_dR", "oort_A", "oort_B", "rho0", "rho_dm")


def field_scores(net, mock: LocalDisk, x: np.ndarray) -> dict:
    """Force, F_R, F_z and density errors of the network at x (inside the scoring region)."""
    G = Units.galactic().G
    m, t = as_field(net, G), as_field(mock, G)
    a_m, a_t = m.acceleration(x), t.acceleration(x)
    R = np.hypot(x[:, 0], x[:, 1])
    e_R = np.stack([x[:, 0] / R, x[:, 1] / R], axis=1)
    aR_m, aR_t = (np.sum(a[:, :2] * e_R, axis=1, keepdims=True) for a in (a_m, a_t))
    high = np.abs(x[:, 2]) > 0.3
    rho_ratio = m.density(x) / t.density(x)
    force = relative_error(a_m, a_t)
    return {
        "n_eval": int(len(x)),
        "force_err_median": float(np.median(force)),
        "force_err_p90": float(np.percentile(force, 90)),
        "F_R_err_median": float(np.median(relative_error(aR_m, aR_t))),
        "F_z_err_median_above_0.3kpc": float(
            np.median(relative_error(a_m[high, 2:], a_t[high, 2:]))
        ),
        "density_err_median": float(np.median(np.abs(rho_ratio - 1))),
        "density_bias_median": float(np.median(rho_ratio) - 1),
    }


def local_scores(run_dir: Path, mock: LocalDisk) -> dict:
    """The local quantities of the fit against the truth, with pulls."""
    fit = local_quantities(run_dir, baryons="MWPotential2014")
    truth = local_quantities(
        mock.galpy_potential(), fit.R0, fit.z0, fit.phi0, baryons="MWPotential2014"
    )
    out: dict = {}
    for key in SCALARS:
        value, true = getattr(fit, key), getattr(truth, key)
        row = {"value": float(value.value), "truth": float(true.to_value(value.unit))}
        row["unit"] = value.unit.to_string()
        row["rel_err"] = row["value"] / row["truth"] - 1
        if fit.sigma:
            row["sigma"] = float(fit.sigma[key].to_value(value.unit))
            row["pull"] = (row["value"] - row["truth"]) / row["sigma"]
        out[key] = row
    z = np.abs(fit.z.value)
    band = (z > 0.3) & (z < 1.1 + 1e-9)
    # a volume flatter than 1.1 kpc (a user's cylinder) has no stars above its faces: there
    # K_z is the network's extrapolation, so the scores inside it are kept apart
    inside = band & ~outside_fit(DeepPotential.load(run_dir).region, fit.R0, fit.phi0, fit.z)
    err = np.abs(fit.Kz.value / truth.Kz.to_value(fit.Kz.unit) - 1)
    out["Kz"] = {
        "max_rel_err_0.3-1.1kpc": float(err[band].max()),
        "inside_top_kpc": float(z[inside].max()) if inside.any() else None,
        "max_rel_err_inside": float(err[inside].max()) if inside.any() else None,
    }
    if fit.sigma:
        pulls = np.abs(fit.Kz - truth.Kz).value / fit.sigma["Kz"].to_value(fit.Kz.unit)
        out["Kz"]["max_abs_pull_0.3-1.1kpc"] = float(pulls[band].max())
        out["Kz"]["max_abs_pull_inside"] = float(pulls[inside].max()) if inside.any() else None
    return out


def markdown(results: dict) -> str:
    head = (
        "| catalog | force err (median / p90) | F_R err | F_z err (abs z > 0.3) | density err "
        "(bias) | K_z max err | rho_0 err (pull) | v_c err (pull) | A, B pulls |"
    )
    lines = [head, "|" + "---|" * 9]
    for name, r in results.items():
        f, q = r["field"], r["local"]

        def pull(key, q=q):
            return f"{q[key]['pull']:+.1f}" if "pull" in q[key] else "-"

        kz = q["Kz"]
        if kz["inside_top_kpc"] is None or kz["inside_top_kpc"] > 1.05:
            kz_cell = f"{kz['max_rel_err_0.3-1.1kpc']:.1%}"
        else:  # the column leaves the fitted volume below 1.1 kpc
            kz_cell = f"{kz['max_rel_err_inside']:.1%} (to {kz['inside_top_kpc']:.2f} kpc)"

        lines.append(
            f"| {name} | {f['force_err_median']:.1%} / {f['force_err_p90']:.1%} "
            f"| {f['F_R_err_median']:.1%} | {f['F_z_err_median_above_0.3kpc']:.1%} "
            f"| {f['density_err_median']:.1%} ({f['density_bias_median']:+.1%}) "
            f"| {kz_cell} "
            f"| {q['rho0']['rel_err']:+.1%} ({pull('rho0')}) "
            f"| {q['vc']['rel_err']:+.1%} ({pull('vc')}) | {pull('oort_A')}, {pull('oort_B')} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", choices=sorted(SIZES), default="default")
    p.add_argument("--n", type=int, help="stars per catalog (default: by --size)")
    p.add_argument("--preset", help="deeppot fit --preset (default: by --size)")
    p.add_argument("--config", help="TOML config passed to deeppot fit")
    p.add_argument("--catalogs", default="noiseless,dr3", help=", ".join(CATALOGS))
    p.add_argument("--out", default="runs/local_disk")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--volume",
        help="cut the stars to this heliocentric volume (a data.Volume as JSON, true positions) "
        "before the tables are written, as a catalog cut by its user arrives; not declared to "
        'deeppot fit, scored inside it, e.g. \'{"kind": "cylinder", "radius_kpc": 1.0, '
        '"z_max_kpc": 1.1}\'',
    )
    p.add_argument(
        "--mock",
        default="{}",
        help="LocalDisk keywords as JSON, for a disk the defaults were not tuned on, e.g. "
        '\'{"potential": "McMillan17", "thin": {"h_R": 3.0, "sigma_R": 30, "sigma_z": 18}}\'',
    )
    args = p.parse_args()
    n, n_eval, preset = SIZES[args.size]
    n, preset = args.n or n, args.preset or preset
    names = args.catalogs.split(",")
    unknown = set(names) - set(CATALOGS)
    if unknown:
        raise SystemExit(f"unknown catalogs {sorted(unknown)}; use some of {list(CATALOGS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    mock = LocalDisk(**json.loads(args.mock))
    t0 = time.perf_counter()
    stars = mock.sample(n, args.seed)
    sample_s = time.perf_counter() - t0
    held = mock.sample(n_eval, args.seed + 99)
    x_eval = held.x[in_region(held.x, mock.region)]
    volume = Volume.from_dict(json.loads(args.volume)) if args.volume else None
    if volume is not None:
        stars = stars.subset(volume.contains(stars.x, mock.sun))
        x_eval = x_eval[volume.contains(x_eval, mock.sun)]
    results = {}
    for name in names:
        errors, limited, declared = CATALOGS[name]
        catalog = out / f"{name}.fits"
        if limited:
            # about n stars after the cut: 1.6 n drawn, a fraction ~0.64 of them kept
            deep = mock.sample(int(1.6 * n), args.seed + 1)
            if volume is not None:
                deep = deep.subset(volume.contains(deep.x, mock.sun))
            table = mock.gaia_table(deep, args.seed, errors, ABS_MAG)
            table = table[table["phot_g_mean_mag"].value <= MAG_LIMIT]
        else:
            table = mock.gaia_table(stars, args.seed, errors)
        write_table(table, catalog, overwrite=True)
        run = out / f"run_{name}"
        cmd = ["fit", str(catalog), "--out", str(run), "--overwrite", "--quiet", "--no-figures"]
        cmd += ["--preset", preset, "--seed", str(args.seed)]
        cmd += ["--magnitude-limit", str(MAG_LIMIT)] if declared else []
        cmd += ["--config", args.config] if args.config else []
        t0 = time.perf_counter()
        if deeppot(cmd) != 0:
            raise SystemExit(f"deeppot fit failed on {catalog}")
        fit_s = time.perf_counter() - t0
        if deeppot(["local", str(run), "--baryons", "MWPotential2014"]) != 0:
            raise SystemExit(f"deeppot local failed on {run}")
        net, _ = RunDir(run).load_potential()
        results[name] = {
            "n_stars": len(table),
            "preset": preset,
            "sample_seconds": sample_s,
            "fit_seconds": fit_s,
            "field": field_scores(net, mock, x_eval),
            "local": local_scores(run, mock),
        }
        print(json.dumps({name: results[name]}, indent=1))
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print(markdown(results))


if __name__ == "__main__":
    main()
