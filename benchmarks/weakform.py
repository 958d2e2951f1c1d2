"""Weak-form test functions with velocity structure, with no flows and with noisy CBE points (#12).

For each mock the same stars (one sample per mock and seed) give the weak-form moments of each
family of velocity factors (:mod:`deeppot_galpy.potential.weakform`; ``linear`` is today's
Jeans term), and the potential is fitted in two modes:

* ``alone``: no flows and no DF gradients at all. The CBE points are the stars themselves with
  zero gradients, so the CBE term vanishes identically and only the weak-form moments (and
  the negative-density penalty) shape the potential.
* ``combined``: CBE points on an independent sample with the mock's exact grad ln f damaged as
  the flows damage it: grad_x ln f 10% too shallow (the flows' smoothing) and both gradients
  with 30% independent multiplicative noise, ln f loss; plus the weak-form moments.
  ``cbe_only`` is that without moments. Mocks without a closed-form DF (the disk) have no
  combined rows.

Scores: :func:`deeppot_galpy.compare.potential_metrics` on held-out stars in the mock's
``r_range`` (the disk also K_z at the solar radius). ``--pointwise`` adds the per-position
least-squares force (:func:`deeppot_galpy.potential.pointwise.least_squares_force`) from the
exact grad ln f with 0, 10% and 30% multiplicative noise, at held-out stars' positions.

    python benchmarks/weakform.py --mocks plummer,hernquist_om --steps 800
    python benchmarks/weakform.py --pointwise --mocks plummer,hernquist_om,nfw

Prints one JSON record per case and a Markdown table; ``--markdown FILE`` writes the table.
"""

from __future__ import annotations

import argparse
import time
from functools import cache

import numpy as np
import torch
from report import report

from deeppot_galpy.compare import disk_metrics, potential_metrics
from deeppot_galpy.mocks import MockSystem, get_mock
from deeppot_galpy.potential import CBEPoints, JeansMoments, PotentialTraining, fit_potential
from deeppot_galpy.potential.pointwise import least_squares_force

FAMILIES = ("linear", "cubic", "windows", "linear+cubic", "linear+windows")
MODES = ("alone", "combined")


@cache
def stars(mock: str, n: int, seed: int):
    """The mock, its stars, held-out stars and (where it has a DF) CBE points' stars."""
    truth = get_mock(mock)
    return truth, truth.sample(n, seed), truth.sample(2**13, seed + 10_000)


def damaged_points(truth, n: int, seed: int) -> CBEPoints:
    """Exact grad ln f at fresh stars, damaged as the flows damage it (see module doc)."""
    ps = truth.sample(n, seed + 3)
    gx, gv = truth.grad_log_df(ps.x, ps.v)
    rng = np.random.default_rng(seed + 4)
    gx = 0.9 * gx * (1 + 0.3 * rng.normal(size=gx.shape))
    gv = gv * (1 + 0.3 * rng.normal(size=gv.shape))
    return CBEPoints(ps.x, ps.v, gx, gv, truth.log_df(ps.x, ps.v))


def run_case(case: str, n_stars: int, n_points: int, steps: int, seed: int, weight: float) -> dict:
    mock, mode, family = case.split(":")
    truth, data, held = stars(mock, n_stars, seed)
    cfg = PotentialTraining(
        steps=steps, batch_size=1024, loss="lnf", jeans_weight=0.0 if family == "none" else weight
    )
    t0 = time.perf_counter()
    if mode == "alone":
        zeros = np.zeros_like(data.x)
        points = CBEPoints(data.x, data.v, zeros, zeros, np.zeros(len(data)))
    else:
        points = damaged_points(truth, n_points, seed)
    jeans, violation = None, None
    if family != "none":
        jeans = JeansMoments(
            data.x,
            data.v,
            data.region(),
            cfg.jeans_functions,
            neighbours=cfg.jeans_neighbours,
            seed=seed + 11,
            velocity=family,
        )
        violation = jeans.violation(-truth.acceleration(jeans.x.double().numpy()))
    t_setup = time.perf_counter() - t0
    net, hist = fit_potential(points, cfg, seed + 5, progress=False, jeans=jeans)
    pot = potential_metrics(net, truth, held.x, truth.units.G, r_range=truth.r_range)
    row = {
        "case": case,
        "mock": mock,
        "mode": mode,
        "functions": family,
        "n_stars": n_stars,
        "steps": steps,
        "jeans_weight": cfg.jeans_weight,
        "truth_violation": violation,
        "force_err_median": pot["force_err_median"],
        "force_err_p90": pot["force_err_p90"],
        "density_err_median": pot["density_err_median"],
        "force_bias_median": pot["force_bias_median"],
        "force_bias_max_bin": pot["force_bias_max_bin"],
        "force_ratio_bins": pot["radial"]["force_ratio"],
        "kz_err_median": None,
        "seconds_setup": round(t_setup, 1),
        "seconds_potential": round(hist["seconds"], 1),
    }
    if hasattr(truth, "solar_radius"):
        row["kz_err_median"] = disk_metrics(net, truth, held.x, truth.solar_radius)["kz_err_median"]
    return row


def velocities_at(truth, x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k velocities drawn from f(v | x) at each position, (P, k, 3): candidates uniform in the
    true escape-speed ball, accepted with probability f / max f over the candidates there."""
    out = np.empty((len(x), k, 3))
    v_esc = np.sqrt(-2.0 * truth.potential(x))
    for p, (xp, ve) in enumerate(zip(x, v_esc, strict=True)):
        got = []
        while sum(len(g) for g in got) < k:
            u = rng.normal(size=(64 * k, 3))
            u *= ve * rng.uniform(size=(len(u), 1)) ** (1 / 3) / np.linalg.norm(u, axis=1)[:, None]
            lf = truth.log_df(np.broadcast_to(xp, u.shape), u)
            ok = np.isfinite(lf)
            keep = ok & (np.log(rng.uniform(size=len(u))) < lf - lf[ok].max(initial=-np.inf))
            got.append(u[keep])
        out[p] = np.concatenate(got)[:k]
    return out


def run_pointwise(mock: str, seed: int, n_positions: int = 200, k: int = 128) -> dict:
    truth, _, held = stars(mock, 2**13, seed)
    rng = np.random.default_rng(seed + 20)
    r = np.linalg.norm(held.x, axis=1)
    x = held.x[(r >= truth.r_range[0]) & (r <= truth.r_range[1])][:n_positions]
    v = velocities_at(truth, x, k, rng)
    a_true = truth.acceleration(x)
    row: dict = {"case": f"{mock}:pointwise", "mock": mock, "positions": len(x), "velocities": k}
    for noise in (0.0, 0.1, 0.3):

        def noisy(xs: np.ndarray, vs: np.ndarray, noise: float = noise) -> tuple:
            gx, gv = truth.grad_log_df(xs, vs)
            return tuple(g * (1 + noise * rng.normal(size=g.shape)) for g in (gx, gv))

        a = least_squares_force(noisy, x, v)
        err = np.linalg.norm(a - a_true, axis=1) / np.linalg.norm(a_true, axis=1)
        ratio = np.sum(a * a_true, axis=1) / np.sum(a_true**2, axis=1)
        row[f"noise{noise:g}"] = {
            "force_err_median": float(np.median(err)),
            "force_bias_median": float(np.median(ratio) - 1),
        }
    return row


def _fmt(value, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def markdown(rows: list[dict]) -> str:
    fits = [r for r in rows if "mode" in r]
    lines = []
    if fits:
        lines += [
            "| mock | mode | test functions (weight) | truth violation | force err (med / p90) "
            "| density err | bias (med) | max bin bias | K_z err | potential [s] |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in fits:
            lines.append(
                f"| {r['mock']} | {r['mode']} | {r['functions']} ({r['jeans_weight']:g}) "
                f"| {_fmt(r['truth_violation'], '{:.3f}')} "
                f"| {r['force_err_median']:.2%} / {r['force_err_p90']:.2%} "
                f"| {r['density_err_median']:.1%} | {r['force_bias_median']:+.2%} "
                f"| {r['force_bias_max_bin']:.2%} | {_fmt(r['kz_err_median'], '{:.2%}')} "
                f"| {r['seconds_potential']} |"
            )
    points = [r for r in rows if "positions" in r]
    if points:
        lines += [
            "",
            "| mock | least-squares force err (bias), exact grad ln f | 10% noise | 30% noise |",
            "|---|---|---|---|",
        ]
        for r in points:
            cells = [
                f"{r[k]['force_err_median']:.2%} ({r[k]['force_bias_median']:+.2%})"
                for k in ("noise0", "noise0.1", "noise0.3")
            ]
            lines.append(f"| {r['mock']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--mocks", default="plummer,hernquist_om,nfw,mn_disk")
    p.add_argument("--functions", default=",".join(FAMILIES), help="families; 'none' = no term")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--cbe-only", action="store_true", help="add the combined fit without moments")
    p.add_argument("--pointwise", action="store_true", help="only the least-squares diagnostic")
    p.add_argument("--n-stars", type=int, default=2**15)
    p.add_argument("--n-points", type=int, default=2**14)
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jeans-weight", type=float, default=10.0, help="of the weak-form term")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--markdown", help="write the Markdown table here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    mocks = args.mocks.split(",")
    if args.pointwise:
        cases = [f"{m}:pointwise" for m in mocks]
        report(cases, lambda c: run_pointwise(c.split(":")[0], args.seed), markdown, args.markdown)
        return
    families = args.functions.split(",")
    cases = []
    for m in mocks:
        has_df = type(get_mock(m)).grad_log_df is not MockSystem.grad_log_df
        for mode in args.modes.split(","):
            if mode == "combined" and not has_df:
                continue
            extra = ["none"] if mode == "combined" and args.cbe_only else []
            cases += [f"{m}:{mode}:{f}" for f in extra + families]
    report(
        cases,
        lambda c: run_case(
            c, args.n_stars, args.n_points, args.steps, args.seed, args.jeans_weight
        ),
        markdown,
        args.markdown,
    )


if __name__ == "__main__":
    main()
