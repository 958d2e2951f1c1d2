"""Spheres the defaults were not tuned on, made as a user would, end to end (issue 12).

Each system is a galpy DF in a galpy potential, drawn to an ECSV catalog of Galactocentric
x, y, z [kpc] and v_x, v_y, v_z [km/s], fitted by the public CLI (``deeppot fit CATALOG
--out RUN``, no flags but those given here) and scored through the public API
(``DeepPotential.load``, galpy's ``evaluateRforces`` / ``evaluatezforces`` /
``evaluateDensities``) against the true potential on fresh stars of the same DF within the
system's scoring range: median and 90th-percentile force error, median density error, and
the median ratio |F| / |F_true| - 1 in six log bins of radius; with the run's bootstrap
replicates, also how often the truth lies within the quoted 1 and 2 sigma
(``uncertainty.error_bars``). A finished run is scored, not refitted (``--overwrite`` to
refit).

=================== ======================================================= ===============
system              DF (galpy) and potential                                 scored at
=================== ======================================================= ===============
``tangential``      ``constantbetaHernquistdf``, beta = -0.3, M = 3e11 Msun,  0.1a - 3a
                    a = 15 kpc, stars within 30a
``isotropic``       the same with beta = 0                                   0.1a - 3a
``radial``          the same with beta = +0.3                                0.1a - 3a
``om_tracers``      ``osipkovmerrittdf``: Plummer tracers (b = 5 kpc, r_a =   0.5 - 25 kpc
                    8 kpc, within 100 kpc) in an NFW halo they do not source
                    (M_vir = 1e12 Msun, c = 12)
``cusp_tracers``    ``eddingtondf``: Hernquist tracers (a = 4 kpc, within     0.4 - 20 kpc
                    60 kpc) in the same NFW halo
``om_core``         ``osipkovmerrittdf``: a Plummer sphere (M = 1e11 Msun,   0.1b - 3b
                    b = 3 kpc, r_a = 4.5 kpc, within 60 kpc), a radially
                    anisotropic core
``dwarf``           ``eddingtondf``: Plummer stars (b = 0.3 kpc, within      0.03 - 1 kpc
                    10 kpc) in a dwarf's NFW halo they do not source
                    (4 pi rho_s r_s^3 = 5e8 Msun, r_s = 1 kpc; v_c 15-20
                    km/s): parsecs and a few km/s
``steep_cusp``      ``osipkovmerrittdf``: a Dehnen sphere with an inner slope  0.1a - 3a
                    of -1.5 (amp = 2e11 Msun, a = 8 kpc, r_a = 2a, within
                    30a), radially anisotropic outside its r_a
``cluster``         ``constantbetaHernquistdf``, beta = +0.2, M = 2e15 Msun,  0.1a - 3a
                    a = 500 kpc, stars within 30a: Mpc and 1000s of km/s
``king``            ``kingdf``: a globular cluster's King model (W0 = 7,      1 - 30 pc
                    M = 3e5 Msun, tidal radius 50 pc), whose DF ends at the
                    tidal energy: a core, and a density that falls to zero
=================== ======================================================= ===============

    python benchmarks/held_out.py --systems tangential,om_tracers --out runs/held_out
    python benchmarks/held_out.py --systems om_tracers --config alt.toml --out runs/held_out_alt

(``--n`` sets the catalogs' stars for every system given: RESULTS.md, section 38 fits the
dwarf from 16,384 stars, as a dwarf's sample might hold, and from 2^17. ``alt.toml``: any
``deeppot fit`` config, e.g. ``[flow] model = "factorised"`` to leave the
spline of the speed off; compare two ``--out`` directories fitted on the same catalogs' seed.)

Prints one JSON record per system and a Markdown table (``--markdown FILE`` writes it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.table import Table
from galpy.df import constantbetaHernquistdf, eddingtondf, kingdf, osipkovmerrittdf
from galpy.potential import (
    DehnenSphericalPotential,
    HernquistPotential,
    KingPotential,
    NFWPotential,
    PlummerPotential,
    evaluateDensities,
    evaluateRforces,
    evaluatezforces,
)
from report import report

from deeppot_galpy import DeepPotential
from deeppot_galpy.cli import main as deeppot
from deeppot_galpy.compare import radial_profile, summarize
from deeppot_galpy.mocks.hernquist import sample_galpy_df
from deeppot_galpy.uncertainty import error_bars

RO, VO = 8.0, 220.0
FORCE = u.km / u.s / u.Myr


def _halo():
    return NFWPotential(conc=12.0, mvir=1.0, H=70.0, wrtcrit=True, ro=RO, vo=VO)


def _hernquist(beta: float):
    pot = HernquistPotential(amp=6e11 * u.Msun, a=15 * u.kpc, ro=RO, vo=VO)
    return pot, constantbetaHernquistdf(pot=pot, beta=beta, ro=RO, vo=VO), 450.0, (1.5, 45.0)


def _om_tracers():
    halo, tracers = _halo(), PlummerPotential(amp=1e10 * u.Msun, b=5 * u.kpc, ro=RO, vo=VO)
    df = osipkovmerrittdf(pot=halo, denspot=tracers, ra=8 * u.kpc, rmax=100 * u.kpc, ro=RO, vo=VO)
    return halo, df, 100.0, (0.5, 25.0)


def _om_core():
    pot = PlummerPotential(amp=1e11 * u.Msun, b=3 * u.kpc, ro=RO, vo=VO)
    df = osipkovmerrittdf(pot=pot, ra=4.5 * u.kpc, rmax=60 * u.kpc, ro=RO, vo=VO)
    return pot, df, 60.0, (0.3, 9.0)


def _cusp_tracers():
    halo, tracers = _halo(), HernquistPotential(amp=2e10 * u.Msun, a=4 * u.kpc, ro=RO, vo=VO)
    df = eddingtondf(pot=halo, denspot=tracers, rmax=60 * u.kpc, ro=RO, vo=VO)
    return halo, df, 60.0, (0.4, 20.0)


def _dwarf():
    halo = NFWPotential(amp=5e8 * u.Msun, a=1 * u.kpc, ro=RO, vo=VO)
    stars = PlummerPotential(amp=1e6 * u.Msun, b=0.3 * u.kpc, ro=RO, vo=VO)
    df = eddingtondf(pot=halo, denspot=stars, rmax=10 * u.kpc, ro=RO, vo=VO)
    return halo, df, 10.0, (0.03, 1.0)


def _steep_cusp():
    pot = DehnenSphericalPotential(amp=2e11 * u.Msun, a=8 * u.kpc, alpha=1.5, ro=RO, vo=VO)
    df = osipkovmerrittdf(pot=pot, ra=16 * u.kpc, rmax=240 * u.kpc, ro=RO, vo=VO)
    return pot, df, 240.0, (0.8, 24.0)


def _cluster():
    pot = HernquistPotential(amp=4e15 * u.Msun, a=500 * u.kpc, ro=RO, vo=VO)
    return pot, constantbetaHernquistdf(pot=pot, beta=0.2, ro=RO, vo=VO), 15000.0, (50.0, 1500.0)


def _king():
    shape = dict(W0=7.0, M=3e5 * u.Msun, rt=50 * u.pc, ro=RO, vo=VO)
    return KingPotential(**shape), kingdf(**shape), 0.05, (0.001, 0.03)


#: name -> (true potential, DF, catalog radius [kpc], scoring range [kpc]), built on demand
SYSTEMS = {
    "tangential": lambda: _hernquist(-0.3),
    "isotropic": lambda: _hernquist(0.0),
    "radial": lambda: _hernquist(0.3),
    "om_tracers": _om_tracers,
    "cusp_tracers": _cusp_tracers,
    "om_core": _om_core,
    "dwarf": _dwarf,
    "steep_cusp": _steep_cusp,
    "cluster": _cluster,
    "king": _king,
}


def draw(df, n: int, r_max: float, seed: int) -> dict[str, np.ndarray]:
    """``n`` stars of ``df`` within ``r_max`` kpc: x, y, z [kpc], v_x, v_y, v_z [km/s]."""
    x, v = sample_galpy_df(df, n, seed)
    while True:
        inside = np.linalg.norm(x, axis=1) * RO < r_max
        if inside.sum() >= n:
            break
        seed += 7919  # a further draw of the same DF, for the stars the radius cut took
        more_x, more_v = sample_galpy_df(df, n, seed)
        x, v = np.concatenate([x, more_x]), np.concatenate([v, more_v])
    x, v = x[inside][:n] * RO, v[inside][:n] * VO
    return dict(zip(("x", "y", "z", "v_x", "v_y", "v_z"), [*x.T, *v.T], strict=True))


def write_catalog(stars: dict[str, np.ndarray], path: Path, meta: dict) -> None:
    units = {k: u.kpc if k in "xyz" else u.km / u.s for k in stars}
    table = Table({k: a * units[k] for k, a in stars.items()}, meta=meta)
    table.write(path, overwrite=True)


def score(
    fit, truth, stars: dict[str, np.ndarray], r_range: tuple[float, float], replicates=()
) -> dict:
    """Force, density and radial-bin errors of ``fit`` against ``truth`` (galpy potentials)
    at the stars within ``r_range`` kpc, in physical units through galpy; with the run's
    ``replicates``, how often the truth lies within the quoted 1 and 2 sigma (``error_bars``,
    each of F_R and F_z counting as one, as a user reads them)."""
    R = np.hypot(stars["x"], stars["y"])
    r = np.hypot(R, stars["z"])
    keep = (r >= r_range[0]) & (r <= r_range[1])
    R, z, r = R[keep] * u.kpc, stars["z"][keep] * u.kpc, r[keep]

    def field(p):
        a = np.stack(
            [
                evaluateRforces(p, R, z, quantity=True).to_value(FORCE),
                evaluatezforces(p, R, z, quantity=True).to_value(FORCE),
            ]
        )
        return a, evaluateDensities(p, R, z, quantity=True).to_value(u.Msun / u.pc**3)

    (a_fit, rho_fit), (a_true, rho_true) = field(fit), field(truth)
    norm = np.linalg.norm(a_true, axis=0)
    errors = {
        "force": np.linalg.norm(a_fit - a_true, axis=0) / norm,
        "density": np.abs(rho_fit / rho_true - 1.0),
        "force_ratio": np.linalg.norm(a_fit, axis=0) / norm,
    }
    bins = radial_profile(r, errors, np.geomspace(*r_range, 7))
    out = summarize(errors) | {
        "n_points": int(keep.sum()),
        "radial_edges_kpc": [float(f"{e:.3g}") for e in (*bins["r_lo"], bins["r_hi"][-1])],
        "radial_bias_pct": [round(100 * (b - 1), 1) for b in bins["force_ratio"]],
    }
    if len(replicates) >= 2:
        bars = error_bars(replicates, R, z, quantities=("Rforce", "zforce", "dens"), quantity=True)
        sigma_a = np.stack([bars[k].to_value(FORCE) for k in ("Rforce", "zforce")])
        sigma_rho = bars["dens"].to_value(u.Msun / u.pc**3)
        pulls = {
            "force": (np.abs(a_fit - a_true) / sigma_a).ravel(),
            "density": np.abs(rho_fit - rho_true) / sigma_rho,
        }
        out["coverage"] = {
            k: {"within_1sigma": float(np.mean(p < 1)), "within_2sigma": float(np.mean(p < 2))}
            for k, p in pulls.items()
        }
    return out


def run_system(name: str, args: argparse.Namespace) -> dict:
    truth, df, r_max, r_range = SYSTEMS[name]()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    catalog = out / f"{name}_seed{args.seed}.ecsv"
    if not catalog.exists():
        write_catalog(
            draw(df, args.n, r_max, args.seed), catalog, {"system": name, "seed": args.seed}
        )
    run = out / name
    if args.overwrite or not (run / "potential.json").exists():
        cmd = ["fit", str(catalog), "--out", str(run), "--seed", str(args.seed), "--quiet"]
        cmd += ["--overwrite"] * args.overwrite + (["--config", args.config] if args.config else [])
        cmd += [] if args.replicates is None else ["--replicates", str(args.replicates)]
        if deeppot(cmd) != 0:
            raise SystemExit(f"deeppot fit failed on {name}")
    fresh = draw(df, args.n_score, r_max, args.seed + 1000)
    fit, replicates = DeepPotential.load(run), DeepPotential.load_replicates(run)
    return {"system": name, "run": str(run)} | score(fit, truth, fresh, r_range, replicates)


def markdown(rows: list[dict]) -> str:
    lines = [
        "| system | force err (median / p90) | density err | radial bins of F / F_true - 1 (%) "
        "| within 1 / 2 sigma: force, density |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        bins = " ".join(f"{b:+.1f}" for b in row["radial_bias_pct"])
        cover = row.get("coverage")
        cover = (
            " / ".join(
                f"{cover[k]['within_1sigma']:.0%}, {cover[k]['within_2sigma']:.0%}"
                for k in ("force", "density")
            )
            if cover
            else "(no replicates)"
        )
        lines.append(
            f"| {row['system']} | {row['force_err_median']:.2%} / {row['force_err_p90']:.1%} "
            f"| {row['density_err_median']:.1%} | {bins} | {cover} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--systems", default=",".join(SYSTEMS), help=f"comma-separated of {list(SYSTEMS)}"
    )
    p.add_argument("--n", type=int, default=2**17, help="catalog stars")
    p.add_argument("--n-score", type=int, default=20000, help="fresh stars drawn for scoring")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--config", help="TOML config passed to deeppot fit")
    p.add_argument("--replicates", type=int, help="bootstrap refits (default: the config's)")
    p.add_argument("--out", default="runs/held_out")
    p.add_argument("--overwrite", action="store_true", help="refit runs already in --out")
    p.add_argument("--markdown")
    args = p.parse_args()
    unknown = set(args.systems.split(",")) - set(SYSTEMS)
    if unknown:
        p.error(f"unknown systems {sorted(unknown)}; choose from {list(SYSTEMS)}")
    report(args.systems.split(","), lambda name: run_system(name, args), markdown, args.markdown)


if __name__ == "__main__":
    main()
