"""The potential's symmetry option side by side on the same flows (issues 12 and 13).

One mock, one sample of stars, one flow ensemble (saved in OUT/flows and reused by a later
call with the same OUT) and one set of CBE points and Jeans moments at the chosen preset; then
the potential stage once per ``--variants`` entry: a symmetry
(:mod:`deeppot_galpy.potential.symmetry`), optionally with ``[potential]`` settings after
``+`` (``spherical+jeans_weight=100``) or ``[potential.network]`` settings
(``mirror+softening=0.03``), each scored on held-out true stars
(:func:`~deeppot_galpy.compare.potential_metrics`). The ``local_disk`` mock goes the way a
user's catalog does: its Gaia-archive table (ICRS; ``--errors dr3`` adds DR3-like errors) is
read by :func:`~deeppot_galpy.data.catalog_to_phasespace`, and each fit is also scored as
``benchmarks/local_disk.py`` scores ``deeppot fit`` (forces, K_z, rho_0, v_c at the Sun).
On ``hernquist_beta`` (An, Naik et al. 2021's beta = 1/2 sphere) their metric is reported too
(``an2021_radial_force_err``: median |a_r / a_r,true - 1| at 50 points along an axis, 0.4a-20a).
``--augment`` trains the flows with the first variant's symmetry augmentation
(:mod:`deeppot_galpy.df.augment`; use a new ``--out``: the flows are cached there), and
``--df-model`` with another DF model. ``--fit-seed`` redraws the points, Jeans moments and
network initialisation on the same stars and flows (the potential stage's own spread), and
``--n-points`` sets how many CBE points. The stars' density in the CBE is the one ``deeppot
fit`` takes for the variant's symmetry and the preset
(:func:`~deeppot_galpy.cbe_points.star_density`); ``+radial`` asks for the stars' nu(r) from
their radii, ``+disk`` for nu(R, z) of a disk's survey volume from their positions, ``+flows``
for the position flows' n(x) whatever the preset takes.
Every variant's fit is saved as a run directory (potential only) under ``--out``, and its
export to galpy (``interp_rz``/``interp_spherical``/expansions) is timed and checked against
the network.

    python benchmarks/symmetry.py --mock hernquist_om --variants none,spherical
    python benchmarks/symmetry.py --mock local_disk --variants none,axisymmetric+jeans_weight=100
    python benchmarks/symmetry.py --mock hernquist_om --variants spherical,spherical+radial
    python benchmarks/symmetry.py --mock local_disk --variants mirror+flows,mirror

Prints one JSON record per variant and a Markdown table of all in OUT/results.json.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from local_disk import CATALOGS, field_scores

from deeppot_galpy.cbe_points import (
    draw_cbe_points,
    gradient_sources,
    jeans_moments,
    star_density,
)
from deeppot_galpy.compare import as_field, in_region, is_centred, potential_metrics
from deeppot_galpy.config import PRESETS
from deeppot_galpy.data.cuts import Volume
from deeppot_galpy.df import FlowEnsemble
from deeppot_galpy.df.augment import symmetry_augmentation
from deeppot_galpy.export import export_galpy
from deeppot_galpy.galpy_potential import DeepPotential
from deeppot_galpy.local import local_quantities
from deeppot_galpy.mocks import get_mock
from deeppot_galpy.potential import fit_potential
from deeppot_galpy.rundir import RunDir
from deeppot_galpy.seeds import stream_seed
from deeppot_galpy.shape import choose_df_model, chosen_flow
from deeppot_galpy.stars import Stars


def stars_of(mock, n: int, seed: int, errors: str, volume: Volume | None = None) -> Stars:
    sample = mock.sample(n, seed)
    if volume is not None:  # as local_disk.py --volume cuts them
        sample = sample.subset(volume.contains(sample.x, mock.sun))
    if mock.name != "local_disk":
        return Stars.of(sample, None, None)
    from deeppot_galpy.data import catalog_to_phasespace

    data, report = catalog_to_phasespace(mock.gaia_table(sample, seed, CATALOGS[errors][0]))
    print(report)
    return Stars.of(data, None, None)


#: variant flags that choose the stars' density in place of the position flows
DENSITY_FLAGS = ("radial", "disk", "flows")


def density_key(variant: str) -> tuple:
    """What sets a variant's CBE points: its symmetry and density flags."""
    symmetry, *settings = variant.split("+")
    return (symmetry, *(flag in settings for flag in DENSITY_FLAGS))


def density_config(config, variant: str):
    """The fit settings whose ``star_density`` a variant takes: its symmetry, and nu(r) with
    "+radial", nu(R, z) with "+disk", the position flows with "+flows" (else the config's
    own choice)."""
    symmetry, radial, disk, flows = density_key(variant)
    net = replace(config.potential.config, symmetry=symmetry)
    return replace(
        config,
        radial_density=radial or (config.radial_density and not flows),
        disk_density=disk or (config.disk_density and not flows),
        potential=replace(config.potential, config=net),
    )


def typed(default, value: str):
    """A variant's setting ``value`` as the type of the setting's ``default``; ``lo:hi`` is a
    (min, max) range."""
    if default is None:  # a setting whose default is decided later, e.g. jeans_weight
        return float(value)
    if isinstance(default, bool):
        return json.loads(value.lower())
    if ":" in value:  # a (min, max) range
        return tuple(float(v) for v in value.split(":"))
    return type(default)(value)


def scores(net, mock, stars: Stars, region: dict, x_eval: np.ndarray) -> dict:
    G = stars.units.G
    if mock.region is not None:
        out = {"potential": potential_metrics(net, mock, x_eval, G, region=mock.region)}
    else:
        out = {"potential": potential_metrics(net, mock, x_eval, G, r_range=mock.r_range)}
    pot = DeepPotential(net, stars.units, region)
    if hasattr(mock, "radial_force_error"):  # An, Naik et al.'s metric on their system
        out["an2021_radial_force_err"] = mock.radial_force_error(as_field(net, G))
    if mock.name == "mn_disk":  # the disk criteria, where rho > 0.1 rho_max
        out["disk"] = disk_scores(net, mock, x_eval, G)
    if mock.name == "local_disk":
        out["field"] = field_scores(net, mock, x_eval[in_region(x_eval, mock.region)])
        fit = local_quantities(pot, baryons="MWPotential2014")
        truth = local_quantities(mock.galpy_potential(), fit.R0, fit.z0, fit.phi0)
        band = (np.abs(fit.z.value) > 0.3) & (np.abs(fit.z.value) < 1.1 + 1e-9)
        kz = fit.Kz.value[band] / truth.Kz.to_value(fit.Kz.unit)[band] - 1
        out["local"] = {"Kz_max_rel_err": float(np.max(np.abs(kz)))}
        for key in ("vc", "rho0", "oort_A", "oort_B"):
            value, true = getattr(fit, key), getattr(truth, key)
            out["local"][key] = float(value.value / true.to_value(value.unit) - 1)
    t0 = time.perf_counter()
    try:
        _, report = export_galpy(pot)
        out["export"] = {k: report[k] for k in ("method", "force_err_median", "force_err_p90")}
        out["export"]["seconds"] = time.perf_counter() - t0
    except ValueError as exc:
        out["export"] = {"refused": str(exc)}
    return out


def disk_scores(net, mock, x: np.ndarray, G: float) -> dict:
    """Median density and K_z (vertical force) errors where rho > 0.1 rho_max."""
    field = as_field(net, G)
    dense = mock.density(x) > 0.1 * mock.density(np.zeros((1, 3)))[0]
    x = x[dense]
    kz = field.acceleration(x)[:, 2] / mock.acceleration(x)[:, 2] - 1
    rho = field.density(x) / mock.density(x) - 1
    return {
        "n": int(dense.sum()),
        "Kz_err_median": float(np.median(np.abs(kz))),
        "density_err_median": float(np.median(np.abs(rho))),
    }


def markdown(results: dict) -> str:
    lines = [
        "| variant | force err (med / p90) | bias | worst bin | density err | Phi err "
        "| F_z err (abs z > 0.3) | K_z max err | rho_0 err | v_c err | export (err, s) | fit s |",
        "|" + "---|" * 12,
    ]
    for name, r in results.items():
        p = r["potential"]
        f, q, e = r.get("field", {}), r.get("local", {}), r["export"]
        lines.append(
            f"| {name} | {p['force_err_median']:.2%} / {p['force_err_p90']:.1%} "
            f"| {p['force_bias_median']:+.2%} | {p['force_bias_max_bin']:.1%} "
            f"| {p['density_err_median']:.1%} | {p['phi_err_median']:.2%} "
            f"| {f.get('F_z_err_median_above_0.3kpc', float('nan')):.1%} "
            f"| {q.get('Kz_max_rel_err', float('nan')):.1%} | {q.get('rho0', float('nan')):+.1%} "
            f"| {q.get('vc', float('nan')):+.1%} "
            f"| {e.get('method', 'refused')} {e.get('force_err_median', float('nan')):.1e}, "
            f"{e.get('seconds', float('nan')):.0f} | {r['fit_seconds']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--mock", default="hernquist_om")
    p.add_argument(
        "--mock-kwargs", default="{}", help="the mock's keywords as JSON (local_disk.py --mock)"
    )
    p.add_argument(
        "--volume", help="a local disk's stars cut to this volume (local_disk.py --volume)"
    )
    p.add_argument("--variants", default="none,spherical")
    p.add_argument("--preset", default="default")
    p.add_argument("--n", type=int, help="stars (default: the preset's)")
    p.add_argument("--errors", choices=sorted(CATALOGS), default="noiseless")
    p.add_argument("--n-eval", type=int, default=2**14)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/symmetry")
    p.add_argument("--df-model", help="the flows' FlowConfig.model (default: the preset's)")
    p.add_argument("--n-points", type=int, help="CBE points (default: the preset's)")
    p.add_argument(
        "--fit-seed", type=int, help="seed of the points, Jeans moments and potential (--seed)"
    )
    p.add_argument(
        "--augment",
        action="store_true",
        help="train the flows with the first variant's symmetry augmentation (df.augment)",
    )
    args = p.parse_args()
    config = PRESETS[args.preset]
    if args.df_model:
        config = replace(config, flow=replace(config.flow, model=args.df_model))
    config = replace(config, n_points=args.n_points or config.n_points)
    fit_seed = args.seed if args.fit_seed is None else args.fit_seed
    mock = get_mock(args.mock, **json.loads(args.mock_kwargs))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    volume = Volume.from_dict(json.loads(args.volume)) if args.volume else None
    stars = stars_of(mock, args.n or config.n_stars, args.seed, args.errors, volume)
    region = stars.summary.region()
    held = mock.sample(args.n_eval, args.seed + 99)
    if volume is not None:
        held = held.subset(volume.contains(held.x, mock.sun))

    t0 = time.perf_counter()
    cache = RunDir(out / "flows", create=True)
    if (cache.path / "flows.json").exists():
        ens, _ = cache.load_flows()
    else:
        first = args.variants.split(",")[0].split("+")[0]
        flow = config.flow
        if flow.model == "auto":  # as deeppot fit chooses it, for the first variant's symmetry
            flow = chosen_flow(
                flow, choose_df_model(stars.summary.x, stars.summary.v, first, region)
            )
        ens = FlowEnsemble(stars.summary.standardization(), config.n_flows, flow)
        augment = None
        if args.augment:  # the symmetry of the first variant
            augment = symmetry_augmentation(first, is_centred(region))
        seed = stream_seed(args.seed, "flows")
        ens.fit(stars.eta, config.flow_training, seed, False, augment=augment)
        cache.save_flows(ens)
    sources = gradient_sources(ens, config)
    # the stars' density each variant takes in place of the position flows, as deeppot fit
    # chooses it for the variant's symmetry ("+radial": nu(r); "+disk": nu(R, z); "+flows":
    # the position flows)
    points = {}
    for variant in args.variants.split(","):
        key = density_key(variant)
        if key not in points:
            density = star_density(
                density_config(replace(config, flow=ens.config), variant),
                stars.summary,
                region,
                None,
                fit_seed,
            )
            points[key] = draw_cbe_points(
                sources,
                config.n_points,
                region,
                stream_seed(fit_seed, "points"),
                density=density,
            )[0]
            print(f"{variant}: stars' density {type(density).__name__}", flush=True)
    flow_s = time.perf_counter() - t0
    saved = out / "results.json"  # a later call with the same OUT adds its variants
    results = json.loads(saved.read_text()) if saved.exists() else {}
    for variant in args.variants.split(","):
        symmetry, *settings = variant.split("+")
        settings = [kv for kv in settings if kv not in DENSITY_FLAGS]
        net_cfg = replace(config.potential.config, symmetry=symmetry)
        cfg = config.potential
        for key, value in (kv.split("=") for kv in settings):
            if hasattr(net_cfg, key):  # a [potential.network] setting, e.g. softening
                net_cfg = replace(net_cfg, **{key: typed(getattr(net_cfg, key), value)})
            else:
                cfg = replace(cfg, **{key: typed(getattr(cfg, key), value)})
        cfg = replace(cfg, config=net_cfg)
        jeans = jeans_moments(stars.summary, region, cfg, fit_seed, "cpu")
        t0 = time.perf_counter()
        net, history = fit_potential(
            points[density_key(variant)],
            cfg,
            stream_seed(fit_seed, "potential"),
            "cpu",
            False,
            jeans=jeans,
        )
        fit_s = time.perf_counter() - t0
        RunDir(out / variant, create=True).save_potential(net, stars.units, region, {})
        results[variant] = {"flow_seconds": flow_s, "fit_seconds": fit_s}
        results[variant] |= scores(net, mock, stars, region, held.x)
        print(json.dumps({variant: results[variant]}, indent=1, default=str), flush=True)
        saved.write_text(json.dumps(results, indent=1, default=str))
    print(markdown(results))


if __name__ == "__main__":
    main()
