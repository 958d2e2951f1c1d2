"""All mock systems through the whole pipeline, side by side with a classical baseline (issue 5).

For each mock: sample stars, run :func:`deeppot_galpy.pipeline.fit` (flows -> potential) at a
chosen preset, score the learned potential against the truth on held-out stars, and fit the
best parametric galpy potential of the right family to the SAME CBE points by the ln f CBE loss
(:func:`deeppot_galpy.baseline.fit_parametric`). Disks also get v_c(R) and K_z at the solar
radius (:func:`deeppot_galpy.compare.disk_metrics`).

    python benchmarks/run.py --size bench --out runs/bench --markdown benchmarks/results_mocks.md

Prints one JSON record per system and a Markdown table with the versions and settings used.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch
from report import report

from deeppot_galpy.baseline import fit_parametric
from deeppot_galpy.cbe_points import draw_cbe_points
from deeppot_galpy.compare import disk_metrics, potential_metrics
from deeppot_galpy.config import PRESETS, FitOptions
from deeppot_galpy.df import FlowTraining
from deeppot_galpy.mocks import available_mocks, get_mock
from deeppot_galpy.pipeline import fit
from deeppot_galpy.rundir import RunDir, software_versions

# the parametric family a classical analysis would fit to each system
FAMILY = {
    "plummer": "plummer",
    "hernquist_om": "hernquist",
    "nfw": "nfw",
    "mn_disk": "miyamoto_nagai",
    "agama_qi_disk": "miyamoto_nagai",
}

SIZES = {
    "test": PRESETS["test"],
    "bench": replace(
        PRESETS["default"],
        n_stars=2**16,
        flow_training=FlowTraining(epochs=30, batch_size=4096),
        potential=replace(PRESETS["default"].potential, steps=2000, time_budget_s=None),
    ),
    "default": PRESETS["default"],
}


def run_system(name: str, size: str, out: Path, seed: int) -> dict:
    truth = get_mock(name)
    config = SIZES[size]
    t0 = time.perf_counter()
    data = truth.sample(config.n_stars, seed)
    t_sample = time.perf_counter() - t0
    options = FitOptions(seed=seed, progress=False)
    metrics = fit(data, out / name, config, options=options, truth=truth)
    run = RunDir(out / name)
    net, meta = run.load_potential()
    ens, _ = run.load_flows()
    held = truth.sample(2**13, seed + 10_000)
    row = {
        "system": name,
        "n_stars": len(data),
        "deep": metrics["potential"],
        "timing": metrics["timing"],
        "coverage": metrics.get("coverage", {}),
        "sample_seconds": round(t_sample, 1),
    }
    if hasattr(truth, "solar_radius"):
        row["deep_disk"] = score(net, truth, held.x)["disk"]
    points, _ = draw_cbe_points([ens], 2**14, meta["region"], seed + 3)
    t0 = time.perf_counter()
    base, params = fit_parametric(points, FAMILY[name], units=truth.units)
    scores = score(base, truth, held.x)
    row["baseline"] = scores["metrics"]
    row["baseline"]["params"] = {k: v for k, v in params.items() if isinstance(v, float | int)}
    row["baseline"]["seconds"] = round(time.perf_counter() - t0, 1)
    if "disk" in scores:
        row["baseline_disk"] = scores["disk"]
    return row


def score(model, truth, x) -> dict:
    """Errors of ``model`` (a network in ``truth``'s units, or a galpy potential in natural
    units, which the scoring converts into them) against ``truth`` at positions x in its
    units: ``metrics`` within its r_range and, for a disk, ``disk`` (v_c, K_z at R_sun)."""
    out = {"metrics": potential_metrics(model, truth, x, r_range=truth.r_range, units=truth.units)}
    if hasattr(truth, "solar_radius"):
        disk = disk_metrics(model, truth, x, truth.solar_radius, units=truth.units)
        out["disk"] = {k: v for k, v in disk.items() if isinstance(v, float)}
    return out


def _pct(d: dict, key: str, fmt: str = "{:.2%}") -> str:
    return fmt.format(d[key]) if key in d else "-"


def markdown(rows: list[dict], size: str) -> str:
    head = (
        "| system | method | force err (med / p90) | density err (med) | Phi err (med) "
        "| force bias | v_c err (med) | K_z err (med) | force within 1 sigma | fit [s] "
        "| peak RSS [MB] |"
    )
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        name = r["system"]
        seconds = r["timing"]["seconds"]
        methods = (
            (
                "Deep Potential",
                r["deep"],
                r.get("deep_disk", {}),
                seconds["flows"] + seconds["potential"],
            ),
            (
                f"parametric ({FAMILY[name]})",
                r["baseline"],
                r.get("baseline_disk", {}),
                r["baseline"]["seconds"],
            ),
        )
        for label, m, d, secs in methods:
            c = r["coverage"].get("force", {}) if label == "Deep Potential" else {}
            lines.append(
                f"| {name} | {label} | {m['force_err_median']:.2%} / {m['force_err_p90']:.2%} "
                f"| {_pct(m, 'density_err_median')} | {_pct(m, 'phi_err_median', '{:.3%}')} "
                f"| {_pct(m, 'force_bias_median', '{:+.2%}')} | {_pct(d, 'vc_err_median')} "
                f"| {_pct(d, 'kz_err_median')} | {_pct(c, 'within_1sigma', '{:.0%}')} "
                f"| {secs:.0f} "
                f"| {r['timing']['peak_rss_mb'] if label == 'Deep Potential' else '-'} |"
            )
    cfg = SIZES[size]
    versions = ", ".join(f"{k} {v}" for k, v in software_versions().items())
    lines += [
        "",
        f"Settings: size `{size}`: {cfg.n_stars} stars, {cfg.n_flows} flows x "
        f"{cfg.flow_training.epochs} epochs, {cfg.n_points} CBE points, {cfg.potential.steps} "
        f"potential steps ({cfg.potential.loss} loss); the baseline is fitted to 2^14 of the same "
        "kind of CBE points by the ln f CBE loss (no Jeans term). Errors on held-out true stars "
        "inside each "
        f"system's r_range. Versions: {versions}.",
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--systems", default=",".join(m for m in available_mocks() if m in FAMILY))
    p.add_argument("--size", default="bench", choices=sorted(SIZES))
    p.add_argument("--out", default="runs/bench")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--markdown", help="write the Markdown table here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    report(
        args.systems.split(","),
        lambda name: run_system(name, args.size, Path(args.out), args.seed),
        lambda rows: markdown(rows, args.size),
        args.markdown,
    )


if __name__ == "__main__":
    main()
