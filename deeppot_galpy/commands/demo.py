"""Run the paper's demonstration: a Plummer sphere (or another mock) through the whole pipeline.

Writes RUN_DIR/metrics.json, the flows and potential (safetensors + JSON) and figures; prints
the headline errors against the true potential.
"""

from __future__ import annotations

import argparse
import json

from ..mocks import available_mocks
from ..pipeline import PRESETS, run_demo


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--size", default="default", choices=sorted(PRESETS), help="preset sizes")
    p.add_argument("--mock", default="plummer", choices=available_mocks(), help="system")
    p.add_argument("--seed", type=int, default=0, help="random seed (data, flows, potential)")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:N")
    p.add_argument("--n-flows", type=int, help="ensemble size (overrides the preset)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    overrides = {"n_flows": args.n_flows} if args.n_flows else {}
    metrics = run_demo(
        args.out, args.size, args.seed, args.device, not args.quiet, args.mock, **overrides
    )
    pot = metrics["potential"]
    print(
        json.dumps(
            {
                "force_err_median": pot["force_err_median"],
                "density_err_median": pot["density_err_median"],
                "phi_err_median": pot["phi_err_median"],
                "force_bias_median": pot["force_bias_median"],
                "seconds": metrics["timing"]["seconds"],
            },
            indent=2,
        )
    )
    print(f"run directory: {args.out} (metrics.json, figures/)")
    return 0
