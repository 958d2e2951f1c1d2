"""The DF models side by side: grad ln f against the truth at equal wall time (issue 12).

One flow of each model (``FlowConfig.model``: the joint 6D flow, the factorised n(x) p(v | x))
is trained on the same stars of a mock with the same time budget, then scored on held-out
stars of the mock in its r_range against the exact grad ln f. Run both models in one process
so they see the same machine load.

    python benchmarks/df_models.py --mock hernquist_om --n-stars 65536 --budget 150

Prints one JSON record per model and a Markdown table; ``--markdown FILE`` writes the table.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from report import report

from deeppot_galpy.compare import gradient_errors
from deeppot_galpy.df import FlowConfig, FlowEnsemble, FlowTraining
from deeppot_galpy.mocks import get_mock


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mock", default="hernquist_om")
    ap.add_argument("--models", default="joint,factorised")
    ap.add_argument("--n-stars", type=int, default=2**16)
    ap.add_argument("--budget", type=float, default=150.0, help="seconds of training per model")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--markdown")
    args = ap.parse_args()
    torch.set_num_threads(1)
    truth = get_mock(args.mock)
    stars = truth.sample(args.n_stars, args.seed)
    held = truth.sample(2**14, args.seed + 1)
    keep = (held.r >= truth.r_range[0]) & (held.r <= truth.r_range[1])
    gx, gv = truth.grad_log_df(held.x[keep], held.v[keep])
    g_true = np.concatenate([gx, gv], axis=1)

    def measure(model: str) -> dict:
        ens = FlowEnsemble(stars.standardization(), 1, FlowConfig(model=model))
        t0 = time.perf_counter()
        (hist,) = ens.fit(
            stars, FlowTraining(epochs=200, time_budget_s=args.budget), args.seed, progress=False
        )
        seconds = time.perf_counter() - t0
        _, g = ens.log_prob_and_grad(held.eta[keep])
        return {
            "mock": args.mock,
            "model": model,
            "n_stars": args.n_stars,
            "epochs": len(hist["epoch"]),
            "seconds": round(seconds, 1),
            "val_nll": round(hist["best_val_nll"], 4),
            **{k: round(v, 4) for k, v in gradient_errors(g, g_true).items()},
            "load": round(os.getloadavg()[0], 1),
        }

    def markdown(rows: list[dict]) -> str:
        lines = [
            "| mock | model | epochs | s | val NLL | grad_x ln f (med / p90) | "
            "grad_v ln f (med / p90) | load |",
            "|---|---|---:|---:|---:|---|---|---:|",
        ]
        for r in rows:
            lines.append(
                f"| {r['mock']} | {r['model']} | {r['epochs']} | {r['seconds']} | {r['val_nll']} | "
                f"{r['grad_x_lnf_err_median']:.1%} / {r['grad_x_lnf_err_p90']:.1%} | "
                f"{r['grad_v_lnf_err_median']:.1%} / {r['grad_v_lnf_err_p90']:.1%} | {r['load']} |"
            )
        return "\n".join(lines)

    report(args.models.split(","), measure, markdown, args.markdown)


if __name__ == "__main__":
    main()
