"""Fit a potential to a star catalog: quality cuts, flows, potential; writes a run directory.

CATALOG is a file astropy can read (ECSV, FITS, CSV, Parquet, HDF5) with Gaia archive columns
(ra, dec, parallax, pmra, pmdec, radial_velocity), or ra/dec/distance, or Galactocentric
x, y, z, v_x, v_y, v_z. The cut report is printed and saved in RUN_DIR/cuts.json. Load the
result with ``DeepPotential.load(RUN_DIR)``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

from ..config import load_config
from ..pipeline import fit_catalog


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("catalog", help="catalog file")
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--config", help="TOML config (see deeppot_galpy.config)")
    p.add_argument("--seed", type=int, help="random seed (overrides the config)")
    p.add_argument("--device", help="torch device: cpu, cuda, cuda:N (overrides the config)")
    p.add_argument("--preset", choices=["test", "default", "paper"], help="override the preset")
    p.add_argument(
        "--assume-gaia-units",
        action="store_true",
        help="take Gaia archive units for Gaia-named columns without units (e.g. CSV)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    if args.preset:
        from ..pipeline import PRESETS

        cfg = replace(cfg, fit=PRESETS[args.preset])
    seed = cfg.seed if args.seed is None else args.seed
    device = args.device or cfg.device
    metrics, report = fit_catalog(
        args.catalog,
        args.out,
        cfg.fit,
        seed,
        device,
        not args.quiet,
        frame=cfg.frame,
        cuts=cfg.cuts,
        assume_gaia_units=args.assume_gaia_units,
    )
    print(report)
    print(json.dumps({"n_stars": metrics["n_stars"], "timing": metrics["timing"]}, indent=2))
    print(f"run directory: {args.out}  (load with DeepPotential.load({args.out!r}))")
    return 0
