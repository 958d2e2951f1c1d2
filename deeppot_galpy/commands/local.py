"""The solar neighbourhood of a fit: v_c and its slope, Oort's A and B, K_z(z), the local
total and dark-matter densities, with their bootstrap error bars.

Prints a table with units next to the published Milky Way models MWPotential2014 and
McMillan17 (each model's dark-matter density is its own halo's), and, for a run on a mock,
the truth. Writes OUT/local.json and the figures OUT/local_kz.png, local_rotation.png and
local_density.png (OUT defaults to RUN_DIR/figures), drawn inside the data region. The Sun is
where the run's frame puts it unless --R0/--z0 say otherwise.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import astropy.units as u

from ..local.quantities import BARYONIC_MODELS

#: published models shown beside the fit
PUBLISHED = ("MWPotential2014", "McMillan17")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="run directory of a fit in kpc, km/s")
    p.add_argument("--R0", type=float, help="the Sun's Galactocentric radius [kpc]")
    p.add_argument("--z0", type=float, help="the Sun's height above the mid-plane [kpc]")
    p.add_argument(
        "--baryons",
        choices=BARYONIC_MODELS,
        help="baryonic model subtracted for the local dark-matter density",
    )
    p.add_argument(
        "--reference",
        metavar="NAME",
        help="a galpy Milky Way model (galpy.potential.mwpotentials) drawn as the reference",
    )
    p.add_argument("--out", help="folder for local.json and the figures (RUN_DIR/figures)")
    p.add_argument("--no-figures", action="store_true", help="only the table and local.json")


def run(args: argparse.Namespace) -> int:
    from galpy.potential import mwpotentials

    from ..local import baryonic_model, load_run, local_quantities, plot_local, run_truth

    pot, replicates, sun = load_run(args.run_dir)
    if not pot.model_units.is_physical:
        raise ValueError(
            f"{args.run_dir} is a fit in N-body units: local quantities need kpc and km/s"
        )
    R0 = sun[0] if args.R0 is None else args.R0 * u.kpc
    z0 = sun[1] if args.z0 is None else args.z0 * u.kpc
    where = {"R0": R0, "z0": z0, "phi0": sun[2]}
    reps = replicates if len(replicates) >= 2 else None
    fit = local_quantities(pot, replicates=reps, baryons=args.baryons, **where)
    models = {}
    names = list(PUBLISHED) + ([args.reference] if args.reference not in (None, *PUBLISHED) else [])
    for name in names:
        if not hasattr(mwpotentials, name):
            raise ValueError(f"unknown galpy Milky Way model {name!r}")
        model = getattr(mwpotentials, name)
        baryons = baryonic_model(name) if name in BARYONIC_MODELS else None
        models[name] = (model, local_quantities(model, baryons=baryons, **where))
    truth = run_truth(args.run_dir)
    columns = {name: q for name, (_, q) in models.items()}
    if truth is not None:
        columns = {"truth": local_quantities(truth, baryons=args.baryons, **where), **columns}
    print(fit.table(columns))
    if reps is None:
        print("(no error bars: the run has no bootstrap replicates; fit with --replicates N)")

    out = Path(args.out) if args.out else Path(args.run_dir) / "figures"
    out.mkdir(parents=True, exist_ok=True)
    record = {"fit": fit.to_dict(), **{k: q.to_dict() for k, q in columns.items()}}
    (out / "local.json").write_text(json.dumps(record, indent=1))
    written = [out / "local.json"]
    if not args.no_figures:
        references = {name: model for name, (model, _) in models.items()}
        if args.reference:  # the user's reference first: the density map's ratio is to it
            references = {args.reference: references.pop(args.reference), **references}
        written += plot_local(
            out, pot, replicates=reps, truth=truth, references=references, **where
        )
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
