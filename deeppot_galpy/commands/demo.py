"""Run the paper's demonstration: a Plummer sphere (or another mock) through the whole pipeline.

Writes RUN_DIR/metrics.json, the flows and potential (safetensors + JSON) and figures; prints
the headline errors against the true potential. ``--nproc N`` shares the fit among N
processes; an interrupted demo continues with ``deeppot demo --resume RUN_DIR``. An ``--out``
holding a run is refused unless ``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

from .. import distributed
from ..config import PRESETS, RunConfig
from ..mocks import available_mocks
from ..pipeline import run_demo
from .options import add_run_options, bad_files_reported, model_choices, run_config


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_run_options(p)
    p.add_argument("--size", choices=sorted(PRESETS), help="preset sizes (default: default)")
    p.add_argument("--mock", choices=available_mocks(), help="system (default: plummer)")
    p.add_argument("--n-flows", type=int, help="ensemble size (overrides the preset)")


def run(args: argparse.Namespace) -> int:
    cfg, out, recorded = run_config(args, "demo", preset=args.size, fit={"n_flows": args.n_flows})
    inputs = {"mock": args.mock or recorded.get("mock", "plummer")}
    invocation = {"command": "demo", "inputs": inputs, "config": cfg.raw}
    cfg = replace(cfg, options=replace(cfg.options, invocation=invocation))
    distributed.launch(cfg.nproc, _demo, cfg, str(out), inputs)
    return 0


def _demo(cfg: RunConfig, out: str, inputs: dict) -> None:
    with bad_files_reported():
        metrics = run_demo(out, cfg.fit, options=cfg.options, mock=inputs["mock"])
    if not distributed.is_main_process():
        return
    pot = metrics["potential"]
    print(
        json.dumps(
            {
                "force_err_median": pot["force_err_median"],
                "density_err_median": pot["density_err_median"],
                "phi_err_median": pot["phi_err_median"],
                "force_bias_median": pot["force_bias_median"],
                **(
                    {"force_within_1sigma": metrics["coverage"]["force"]["within_1sigma"]}
                    if "coverage" in metrics
                    else {}
                ),
                "seconds": metrics["timing"]["seconds"],
            },
            indent=2,
        )
    )
    # a mock's nature is known, so no hint about what its stars might be
    print(model_choices(out, hints=False))
    print(f"run directory: {out} (metrics.json, figures/)")
