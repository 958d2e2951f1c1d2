"""Fit a potential to a star catalog: quality cuts, flows, potential; writes a run directory.

CATALOG is a file astropy can read (ECSV, FITS, CSV, Parquet, HDF5) with Gaia archive columns
(ra, dec, parallax, pmra, pmdec, radial_velocity), or ra/dec/distance, or Galactocentric
x, y, z, v_x, v_y, v_z. The cut report is printed and saved in RUN_DIR/cuts.json. Load the
result with ``DeepPotential.load(RUN_DIR)``.

For catalogs too large to hold in memory (10^7 stars and up), CATALOG may be an (N, 6) ``.npy``
array of Galactocentric x, y, z [kpc], v_x, v_y, v_z [km/s]: it is memory-mapped and used as
is (no cuts). ``--nproc N`` (or torchrun) shares the fit among N processes; an interrupted fit
continues with ``deeppot fit --resume RUN_DIR``. An ``--out`` holding a run is refused unless
``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace
from pathlib import Path

from .. import distributed
from ..config import PRESETS, RunConfig
from ..pipeline import fit_catalog
from ..rundir import RunDir
from .options import add_run_options, bad_files_reported, model_choices, run_config


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("catalog", nargs="?", help="catalog file (with --resume: the run's own)")
    add_run_options(p)
    p.add_argument("--preset", choices=sorted(PRESETS), help="override the config's preset")
    p.add_argument(
        "--magnitude-limit",
        type=float,
        metavar="MAG",
        help="the catalog's limiting apparent magnitude (overrides [cuts] magnitude_limit): "
        "fainter rows are dropped and the fit corrects for the completeness the limit implies "
        "at each distance, estimated from the stars (column [cuts] magnitude_column, default "
        "phot_g_mean_mag)",
    )
    p.add_argument(
        "--assume-gaia-units",
        action="store_true",
        default=None,
        help="take Gaia archive units for Gaia-named columns without units (e.g. CSV)",
    )


def run(args: argparse.Namespace) -> int:
    cuts = {"magnitude_limit": args.magnitude_limit}
    cfg, out, recorded = run_config(args, "fit", preset=args.preset, cuts=cuts)
    catalog = args.catalog or recorded.get("catalog")
    if catalog is None:
        raise ValueError("give the CATALOG to fit")
    inputs = {
        "catalog": os.path.abspath(catalog),
        "assume_gaia_units": bool(
            args.assume_gaia_units
            if args.assume_gaia_units is not None
            else recorded.get("assume_gaia_units")
        ),
    }
    invocation = {"command": "fit", "inputs": inputs, "config": cfg.raw}
    cfg = replace(cfg, options=replace(cfg.options, invocation=invocation))
    distributed.launch(cfg.nproc, _fit, cfg, str(out), inputs)
    return 0


def _fit(cfg: RunConfig, out: str, inputs: dict) -> None:
    with bad_files_reported():
        metrics, report = fit_catalog(
            inputs["catalog"],
            out,
            cfg.fit,
            options=cfg.options,
            frame=cfg.frame,
            cuts=cfg.cuts,
            assume_gaia_units=inputs["assume_gaia_units"],
        )
    if distributed.is_main_process():
        print(report if report is not None else "no cuts: a .npy array is used as it is")
        print(json.dumps({"n_stars": metrics["n_stars"], "timing": metrics["timing"]}, indent=2))
        print(model_choices(out))
        print(f"run directory: {out}  (load with DeepPotential.load({str(Path(out))!r}))")
        run = RunDir(out).read_json("run")
        if run["region"].get("survey_volume"):
            print(
                "the stars fill a survey volume: `deeppot local RUN_DIR` gives v_c, Oort's A and "
                "B, K_z(z), rho_0 and the local dark-matter density with their figures"
            )
            if run["config"]["potential"]["config"]["symmetry"] == "none":
                print(
                    "a Galactic disk volume is best fitted with --symmetry mirror (axisymmetric "
                    "about the Galactocentric z axis and even in z) or axisymmetric: on the "
                    "package's local-disk mock they cut the median force error from 10% to "
                    "2-3% and K_z's from 20-28% to 4-11% (benchmarks/RESULTS.md, section 7)"
                )
