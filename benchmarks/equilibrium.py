"""What a mock's stars themselves say about its true force, region by region (issues 12, 13).

A fit's error has two sources: what the sample supports (its Monte Carlo noise, or a mock
whose stars are not quite in equilibrium in the potential they were drawn in) and what the
method adds (the flows' smoothing, the network, the stage's draw). The stars' weak-form Jeans
moments (:class:`~deeppot_galpy.potential.JeansMoments`) need no model: for the *true* force,
:meth:`~deeppot_galpy.potential.JeansMoments.force_scale` gives the factor the stars ask it to
be multiplied by, with a jackknife error over random groups of the stars, here per bin of
the test functions' centres (radius for a sphere, height above the plane for the local disk,
whose vertical equations are reported on their own too). A bin whose factor is 1 within its
error while a fit misses there by more is the method's miss, not the sample's.

The functions are the fit's (the default preset's neighbour range; shells in a spherical
system), ``--functions`` of them (more than a fit's 384, to resolve the bins), for
``--draws`` placements. The local disk goes the way a user's catalog does
(``benchmarks/local_disk.py``'s Gaia-archive tables, ``--errors``), with the catalog's errors
taken out as a fit does (``--correction simex``: the stars observed once more), by the
velocities' covariance alone (``velocities``), or not at all (``none``).

    python benchmarks/equilibrium.py --mock hernquist_beta --n 1000000
    python benchmarks/equilibrium.py --mock local_disk --errors dr3
    python benchmarks/equilibrium.py --mock local_disk --errors dr3x4 --correction none

Prints one JSON record per draw and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import numpy as np
from local_disk import CATALOGS
from symmetry import stars_of

from deeppot_galpy.cbe_points import jeans_moments
from deeppot_galpy.config import PRESETS
from deeppot_galpy.mocks import get_mock

#: bin edges of the functions' centres: radius in the mock's units (spheres), |z| in kpc (disk)
RADIUS_EDGES = (0.0, 0.4, 1.0, 3.0, 7.5, 20.0, np.inf)
HEIGHT_EDGES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0, np.inf)


def scales(mock, data, n_functions: int, draw: int, correction: str = "simex") -> dict:
    """Per bin of the functions' centres: how many, and the true force's factor +- error."""
    disk = mock.name == "local_disk"
    training = PRESETS["default"].potential
    if correction != "simex":
        data = replace(data, reobserved=None)
        training = replace(training, jeans_deconvolve=correction == "velocities")
    # the functions and weights a fit of this kind uses (a disk volume's fit is mirror)
    network = replace(training.config, symmetry="mirror" if disk else "spherical")
    training = replace(training, jeans_functions=n_functions, config=network)
    jeans = jeans_moments(data, data.region(), training, draw, "cpu")
    grad_phi = -mock.acceleration(jeans.positions.double().numpy())
    where = np.abs(jeans.centers[:, 2]) if disk else np.linalg.norm(jeans.centers, axis=1)
    edges = HEIGHT_EDGES if disk else RADIUS_EDGES
    bins = [
        (lo, hi, (where >= lo) & (where < hi))
        for lo, hi in zip(edges[:-1], edges[1:], strict=True)
        if ((where >= lo) & (where < hi)).any()
    ]
    axes = (None, 2) if disk else (None,)  # a disk's vertical equations on their own too
    found = iter(jeans.force_scales(grad_phi, [(c, a) for _, _, c in bins for a in axes]))
    out = {"tension": jeans.tension(grad_phi), "bins": []}
    for lo, hi, chosen in bins:
        row = {"lo": lo, "hi": hi, "functions": int(chosen.sum())}
        row["scale"], row["error"] = next(found)
        if disk:
            row["scale_z"], row["error_z"] = next(found)
        out["bins"].append(row)
    return out


def markdown(records: list[dict]) -> str:
    vertical = "scale_z" in records[0]["bins"][0]
    head = "| correction | draw | tension | centres | functions | factor asked of the true force |"
    lines = [
        head + (" vertical equations alone |" if vertical else ""),
        "|---" * (7 if vertical else 6) + "|",
    ]
    for rec in records:
        for b in rec["bins"]:
            cells = [
                rec.get("correction", "simex"),
                str(rec["draw"]),
                f"{rec['tension']:.2f}",
                f"{b['lo']:g}-{b['hi']:g}",
                str(b["functions"]),
                f"{b['scale']:.4f} +- {b['error']:.4f}",
            ]
            if vertical:
                cells.append(f"{b['scale_z']:.3f} +- {b['error_z']:.3f}")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mock", default="hernquist_beta")
    p.add_argument("--params", default="{}", help="the mock's keywords as JSON")
    p.add_argument("--n", type=int, default=2**17)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--errors", choices=sorted(CATALOGS), default="noiseless")
    p.add_argument("--functions", type=int, default=1536)
    p.add_argument("--draws", type=int, default=2)
    p.add_argument(
        "--correction", default="simex", help="comma-separated of simex, velocities, none"
    )
    args = p.parse_args()
    mock = get_mock(args.mock, **json.loads(args.params))
    data = stars_of(mock, args.n, args.seed, args.errors).summary
    records = []
    corrections = args.correction.split(",")
    if set(corrections) - {"simex", "velocities", "none"}:
        p.error(f"--correction: use simex, velocities or none, not {args.correction!r}")
    for correction in corrections:
        for draw in range(args.draws):
            rec = {"mock": args.mock, "n": args.n, "seed": args.seed, "draw": draw}
            rec.update(correction=correction, errors=args.errors)
            rec.update(scales(mock, data, args.functions, draw, correction))
            print(json.dumps(rec), flush=True)
            records.append(rec)
    print(markdown(records))


if __name__ == "__main__":
    main()
