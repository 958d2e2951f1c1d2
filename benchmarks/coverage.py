"""Do the error bars cover the truth? Bootstrap replicates on the mocks (issue 6).

For each mock: fit (flows -> potential -> ``--replicates`` bootstrap refits) at a chosen size,
then, on held-out true stars in the system's r_range, count how often the truth lies within
the replicates' 1 and 2 sigma of the fit (:func:`deeppot_galpy.compare.coverage`; Gaussian
errors of the right size: 68.3% and 95.4%). ``sigma scale`` is the factor the quoted sigmas
would need for nominal coverage. A finished run directory is read, not refitted.

    python benchmarks/coverage.py --systems plummer,mn_disk --size bench --out runs/coverage

Prints one JSON record per system and a Markdown table (``--markdown FILE`` writes it).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch
from report import report
from run import SIZES

from deeppot_galpy.config import FitOptions
from deeppot_galpy.mocks import get_mock
from deeppot_galpy.pipeline import fit
from deeppot_galpy.rundir import RunDir


def run_system(name: str, size: str, replicates: int, out: Path, seed: int) -> dict:
    folder = out / name
    if (folder / "metrics.json").exists():
        metrics = RunDir(folder).read_json("metrics")
    else:
        truth = get_mock(name)
        config = SIZES[size]
        config = replace(config, potential=replace(config.potential, replicates=replicates))
        data, options = truth.sample(config.n_stars, seed), FitOptions(seed=seed)
        metrics = fit(data, folder, config, options=options, truth=truth)
    if "coverage" not in metrics:
        raise SystemExit(f"{folder} has no replicates: remove it or choose another --out")
    seconds = metrics["timing"]["seconds"]
    return {
        "system": name,
        "force_err_median": metrics["potential"]["force_err_median"],
        "coverage": metrics["coverage"],
        "seconds_potential": seconds["potential"],
        "seconds_replicates": seconds.get("replicates"),
    }


def markdown(rows: list[dict]) -> str:
    head = (
        "| system | quantity | within 1 sigma | within 2 sigma | sigma scale | "
        "median sigma / true | median error / true |"
    )
    lines = [head, "|---|---|---|---|---|---|---|"]
    for row in rows:
        for q, c in row["coverage"].items():
            lines.append(
                f"| {row['system']} | {q} | {c['within_1sigma']:.1%} | {c['within_2sigma']:.1%} "
                f"| {c['sigma_scale']:.2f} | {c['sigma_rel_median']:.2%} "
                f"| {c['err_rel_median']:.2%} |"
            )
    lines.append("| (Gaussian, right sigma) | | 68.3% | 95.4% | 1.00 | | |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--systems", default="plummer,mn_disk")
    p.add_argument("--size", default="bench", choices=sorted(SIZES))
    p.add_argument("--replicates", type=int, default=4)
    p.add_argument("--out", default="runs/coverage")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--markdown", help="write the Markdown table here")
    args = p.parse_args()
    torch.set_num_threads(1)
    report(
        args.systems.split(","),
        lambda name: run_system(name, args.size, args.replicates, Path(args.out), args.seed),
        markdown,
        args.markdown,
    )


if __name__ == "__main__":
    main()
