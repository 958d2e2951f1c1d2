"""Accuracy and speed of Deep Potential on the Plummer demo, per setting (issues 2 and 6).

Each variant trains flow ensembles (cached by their settings, so variants that differ only in
the potential stage share them), draws the CBE points, fits the potential and scores it on
held-out true stars with 0.1 <= r <= 3. ``truth`` fits the potential on the exact analytic
grad ln f: the floor set by the potential network alone.

    python benchmarks/plummer.py                       # all variants, 2^17 stars
    python benchmarks/plummer.py --variants truth,default --n-stars 16384

Prints one JSON record per variant and a Markdown table; ``--markdown FILE`` writes the table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import time
from itertools import pairwise
from pathlib import Path

import numpy as np
import torch
from report import report

from deeppot_galpy.cbe_points import draw_cbe_points, jeans_moments
from deeppot_galpy.compare import potential_metrics
from deeppot_galpy.df import FlowConfig, FlowEnsemble, FlowTraining
from deeppot_galpy.mocks import Plummer
from deeppot_galpy.potential import CBEPoints, PotentialTraining, fit_potential
from deeppot_galpy.rundir import RunDir
from deeppot_galpy.scoring import score_against_truth

# name -> (flows: n_flows, split, FlowConfig kw, FlowTraining kw | None for truth; potential kw)
_FLOWS4 = {"n_flows": 2, "split": "same", "flow": {"steps": 4}, "train": {"epochs": 40}}
_FLOWS6 = {"n_flows": 2, "split": "same", "flow": {"steps": 6}, "train": {"epochs": 40}}
_JEANS_OFF = {"jeans_weight": 0.0}
_JEANS_PREVIOUS = {"jeans_functions": 192, "jeans_neighbours": 0.02}
VARIANTS: dict[str, tuple[dict | None, dict]] = {
    "truth": (None, _JEANS_OFF),
    # the paper's method at demo size: flows of 4 steps, ln f loss, no Jeans term
    "paper": (_FLOWS4, _JEANS_OFF),
    "paper_f_space_loss": (_FLOWS4, {**_JEANS_OFF, "loss": "f"}),
    "crossfit_same": (_FLOWS4, {**_JEANS_OFF, "loss": "crossfit"}),
    "crossfit_halves": ({**_FLOWS4, "split": "halves"}, {**_JEANS_OFF, "loss": "crossfit"}),
    "ens4_e20": ({**_FLOWS4, "n_flows": 4, "train": {"epochs": 20}}, _JEANS_OFF),
    "ens2_bins16": ({**_FLOWS4, "flow": {"steps": 4, "bins": 16}}, _JEANS_OFF),
    # the stars' Jeans moments: 192 functions of one scale, then 384 over a range of scales
    "jeans192": (_FLOWS4, _JEANS_PREVIOUS),
    "jeans384_range": (_FLOWS4, {}),
    "jeans384_range_crossfit": (_FLOWS4, {"loss": "crossfit"}),
    # deeper flows (6 coupling steps)
    "flows6_jeans384": (_FLOWS6, {}),
    "default": (_FLOWS6, {"loss": "crossfit"}),
}


def _key(spec: dict, n_stars: int, seed: int) -> str:
    blob = json.dumps({"spec": spec, "n": n_stars, "seed": seed}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def train_flows(spec: dict, data, seed: int, cache: Path) -> tuple[list[FlowEnsemble], float]:
    """One ensemble (split='same') or two on disjoint halves of the stars (split='halves')."""
    folder = cache / _key(spec, len(data), seed)
    if (folder / "timing.json").exists():
        run = RunDir(folder)
        meta = run.read_json("timing")
        return [run.load_flows(n)[0] for n in meta["names"]], meta["seconds"]
    cfg = FlowConfig(**spec.get("flow", {}))
    train = FlowTraining(**spec.get("train", {}))
    t0 = time.perf_counter()
    if spec["split"] == "halves":
        parts = data.split(0.5, seed + 7)
        ensembles = [FlowEnsemble(data.standardization(), spec["n_flows"] // 2, cfg) for _ in parts]
        for i, (e, part) in enumerate(zip(ensembles, parts, strict=True)):
            e.fit(part, train, seed + 1000 * i, progress=False)
    else:  # every member on all stars; members kept as single-flow ensembles for crossfit use
        ensembles = [FlowEnsemble(data.standardization(), 1, cfg) for _ in range(spec["n_flows"])]
        for i, e in enumerate(ensembles):
            e.fit(data, train, seed + i, progress=False)
    seconds = time.perf_counter() - t0
    run = RunDir(folder, create=True)
    names = [f"flows_{i}" for i in range(len(ensembles))]
    for n, e in zip(names, ensembles, strict=True):
        run.save_flows(e, n)
    run.write_json("timing", {"seconds": seconds, "names": names})
    return ensembles, seconds


def merged(ensembles: list[FlowEnsemble]) -> FlowEnsemble:
    """All members in one ensemble (mean density)."""
    out = FlowEnsemble(
        ensembles[0].standardization, sum(e.k for e in ensembles), ensembles[0].config
    )
    for dst, src in zip(out.members, [m for e in ensembles for m in e.members], strict=True):
        dst.load_state_dict(src.state_dict())
    return out.eval()


def implied_force_ratio(ens: FlowEnsemble, truth: Plummer, seed: int) -> list[float]:
    """The flows' own radial force over the true one, median per radial bin (8 in 0.1-3).

    For an isotropic f(E), grad_x ln f = (d ln f/dE) grad Phi and grad_v ln f = (d ln f/dE) v,
    so a_r = -(r_hat . grad_x ln f) |v|^2 / (v . grad_v ln f): what the flows' gradients say
    the force is, before any potential is fitted.
    """
    ps = truth.sample(2**14, seed + 123)
    gx, gv = truth.grad_log_df(ps.x, ps.v)
    _, g = ens.log_prob_and_grad(ps.eta)
    rhat = ps.x / ps.r[:, None]

    def a_r(grad_x, grad_v):
        return -np.sum(grad_x * rhat, 1) * np.sum(ps.v**2, 1) / np.sum(grad_v * ps.v, 1)

    ratio = a_r(g[:, :3], g[:, 3:]) / a_r(gx, gv)
    edges = np.geomspace(0.1, 3.0, 9)
    return [float(np.median(ratio[(ps.r >= lo) & (ps.r < hi)])) for lo, hi in pairwise(edges)]


def run_variant(name: str, n_stars: int, n_points: int, steps: int, seed: int, cache: Path) -> dict:
    flows_spec, pot_kw = VARIANTS[name]
    truth = Plummer()
    data = truth.sample(n_stars, seed)
    pot_cfg = PotentialTraining(steps=steps, **pot_kw)
    t_flows = 0.0
    t0 = time.perf_counter()
    if flows_spec is None:
        ps = truth.sample(n_points, seed + 3)
        gx, gv = truth.grad_log_df(ps.x, ps.v)
        points = CBEPoints(ps.x, ps.v, gx, gv, truth.log_df(ps.x, ps.v))
        ens = None
    else:
        ensembles, t_flows = train_flows(flows_spec, data, seed, cache)
        ens = merged(ensembles)
        use = ensembles if pot_cfg.loss == "crossfit" else [ens]
        points, _ = draw_cbe_points(use, n_points, data.region(), seed + 3)
    t_points = time.perf_counter() - t0
    jeans = jeans_moments(data, data.region(), pot_cfg, seed, "cpu")
    net, hist = fit_potential(points, pot_cfg, seed + 5, progress=False, jeans=jeans)
    if ens is None:
        held = truth.sample(2**14, seed + 10_000).x
        scores = {"potential": potential_metrics(net, truth, held, r_range=truth.r_range)}
    else:
        scores = score_against_truth(net, ens, truth, seed)
    pot = scores["potential"]
    implied = None if ens is None else implied_force_ratio(ens, truth, seed)
    return {
        "variant": name,
        "n_stars": n_stars,
        "n_points": len(points),
        "force_err_median": pot["force_err_median"],
        "force_err_p90": pot["force_err_p90"],
        "density_err_median": pot["density_err_median"],
        "phi_err_median": pot["phi_err_median"],
        "force_bias_median": pot["force_bias_median"],
        "force_bias_max_bin": pot["force_bias_max_bin"],
        "force_ratio_bins": pot["radial"]["force_ratio"],
        "implied_force_ratio_bins": implied,
        "grad_v_lnf_err_median": scores.get("df", {}).get("grad_v_lnf_err_median"),
        "grad_x_lnf_err_median": scores.get("df", {}).get("grad_x_lnf_err_median"),
        "seconds_flows": round(t_flows, 1),
        "seconds_points": round(t_points, 1),
        "seconds_potential": round(hist["seconds"], 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def markdown(rows: list[dict]) -> str:
    cols = [
        ("variant", "variant", "{}"),
        ("force_err_median", "force err (med)", "{:.2%}"),
        ("force_err_p90", "force err (p90)", "{:.2%}"),
        ("density_err_median", "density err (med)", "{:.2%}"),
        ("phi_err_median", "Phi err (med)", "{:.3%}"),
        ("force_bias_median", "bias (median a/a_true - 1)", "{:+.2%}"),
        ("force_bias_max_bin", "max bin bias", "{:.2%}"),
        ("force_ratio_bins", "innermost bin ratio", "{0[0]:.3f}"),
        ("grad_v_lnf_err_median", "grad_v ln f err", "{:.1%}"),
        ("seconds_flows", "flows [s]", "{}"),
        ("seconds_potential", "potential [s]", "{}"),
        ("peak_rss_mb", "peak RSS [MB]", "{}"),
    ]
    lines = ["| " + " | ".join(c[1] for c in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = ["-" if r[k] is None else fmt.format(r[k]) for k, _, fmt in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--n-stars", type=int, default=2**17)
    p.add_argument("--n-points", type=int, default=2**15)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache", default="/tmp/deeppot_bench_cache")
    p.add_argument("--markdown", help="write the Markdown table here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    report(
        args.variants.split(","),
        lambda name: run_variant(
            name, args.n_stars, args.n_points, args.steps, args.seed, Path(args.cache)
        ),
        markdown,
        args.markdown,
    )


if __name__ == "__main__":
    main()
