"""The Deep Potential pipeline: the stages in order, writing a run directory.

    PhaseSpace -> FlowEnsemble (f) -> points drawn from f with grad ln f -> PotentialNet (Phi)
        -> bootstrap replicates of Phi (error bars) -> run directory (weights, metrics, figures)

``fit`` runs the stages on any :class:`~deeppot_galpy.phasespace.PhaseSpace`, or on an (N, 6)
array memory-mapped from a ``.npy`` file for catalogs too large to copy; ``fit_catalog`` reads
and cuts a user's catalog first; ``run_demo`` feeds ``fit`` the paper's Plummer sphere (or
another mock) and scores the result against the truth. What shapes the result is a
:class:`~deeppot_galpy.config.FitConfig` (presets: :data:`~deeppot_galpy.config.PRESETS`); how
it is run, a :class:`~deeppot_galpy.config.FitOptions`. Every run records config, seed,
versions and metrics.

Before the stages, a whole system that moves through the catalog's frame is taken to its rest
frame (:mod:`deeppot_galpy.rest_frame`), and a config's ``symmetry = "auto"`` (the presets')
becomes the symmetry the stars show (:func:`~deeppot_galpy.shape.choose_symmetry`), both
recorded in ``run.json`` with their reasons.
The stages live where their science is: the flows in :mod:`deeppot_galpy.df`, the points and
moments that carry them to the potential in :mod:`deeppot_galpy.cbe_points`, the potential in
:mod:`deeppot_galpy.potential`, scoring against a mock's truth in :mod:`deeppot_galpy.scoring`.
Each stage draws from its own random stream of the seed (:mod:`deeppot_galpy.seeds`).

Resumable: each training loop checkpoints into ``RUN_DIR/checkpoints``
(:mod:`deeppot_galpy.checkpoint`); ``resume=True`` continues a killed run from there, after
checking that config, seed and data are those the run was started with
(:mod:`deeppot_galpy.resume`, which also refuses to overwrite a run unasked). Finished flow
members are loaded, not retrained; the CBE points are deterministic and simply drawn again,
and so are the replicates (refitted after a resume: each takes a fraction of the main fit's
time).

Distributed: under torchrun, or :func:`deeppot_galpy.distributed.launch`, the stages are
shared among the processes (:mod:`deeppot_galpy.distributed`) and rank 0 writes the run
directory; the result is the single-process one.
"""

from __future__ import annotations

import math
import os
import resource
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from . import distributed
from .cbe_points import (
    draw_cbe_points,
    gradient_sources,
    jeans_moments,
    jeans_tension,
    replicate_inputs,
    star_density,
)
from .checkpoint import Checkpoint
from .compare import is_centred
from .completeness import Completeness
from .config import PRESETS, FitConfig, FitOptions
from .device import resolve_device
from .df import FlowEnsemble
from .df.augment import Augmentation, symmetry_augmentation
from .df.disk_density import DiskDensity
from .df.radial import RadialProfile
from .mocks import MockSystem, get_mock
from .phasespace import PhaseSpace
from .potential import fit_potential
from .potential.replicates import calibration, fit_replicates
from .rest_frame import to_rest_frame
from .resume import check_target, prepare
from .rundir import RunDir, software_versions
from .scoring import score_against_truth
from .seeds import stream_seed
from .shape import choose_df_model, choose_symmetry, chosen_flow
from .stars import Stars
from .units import Units

if TYPE_CHECKING:  # astropy: imported only when a catalog is read
    from .data import CutReport, FrameParameters, QualityCuts

__all__ = ["fit", "fit_catalog", "run_demo"]


class _Stages:
    """Wall time and peak memory per stage, for metrics.json and the benchmarks."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - t0, 2)

    def record(self) -> dict:
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return {"seconds": self.seconds, "peak_rss_mb": round(peak_kb / 1024, 1)}


def fit(
    data: PhaseSpace | np.ndarray,
    out: str | Path,
    config: FitConfig = PRESETS["default"],
    *,
    options: FitOptions = FitOptions(),
    truth: MockSystem | None = None,
    units: Units | None = None,
    meta: dict | None = None,
) -> dict:
    """Fit flows and potential to ``data``; write the run directory ``out``; return metrics.

    Parameters
    ----------
    data : a PhaseSpace, or an (N, 6) array of (x, v) in ``units`` (default N-body) with
        provenance ``meta``; ``np.load(path, mmap_mode="r")`` trains on a catalog without
        copying it into memory.
    out : the run directory. One that holds a run is refused unless ``options.resume``
        (continue it, or return a finished run's metrics) or ``options.overwrite``.
    config : what shapes the result (:class:`~deeppot_galpy.config.FitConfig`).
    options : how to run it (:class:`~deeppot_galpy.config.FitOptions`: seed, device, ...).
    truth : the mock the stars came from; the metrics then include the errors against it.

    Returns
    -------
    dict : the metrics written to ``out/metrics.json``; in a distributed job, on every process.

    Example
    -------
    >>> from deeppot_galpy.mocks import Plummer
    >>> metrics = fit(Plummer().sample(4096, 0), "runs/tiny", PRESETS["test"],
    ...               options=FitOptions(progress=False))  # doctest: +SKIP
    """
    check_target(out, options.resume, options.overwrite)
    device = distributed.join(str(resolve_device(options.device)))
    progress = options.progress and distributed.current().is_main
    options = replace(options, device=device, progress=progress)
    return _fit(Stars.of(data, units, meta), RunDir(out, create=True), config, options, truth)


def _fit(
    stars: Stars, run: RunDir, config: FitConfig, options: FitOptions, truth: MockSystem | None
) -> dict:
    job = distributed.current()
    seed, device, progress = options.seed, options.device, options.progress
    policy = options.checkpoints
    if config.threads:
        torch.set_num_threads(config.threads)
    stages = _Stages()
    region = stars.summary.region()
    stars, motion = to_rest_frame(stars, region)
    config, symmetry = _resolve_symmetry(config, stars.summary, region)
    config, df_model = _resolve_df_model(config, stars.summary, region)
    record = {
        "config": config.to_dict(),
        "seed": seed,
        "device": device,
        "processes": job.world,
        "checkpoints": policy.to_dict(),
        "versions": software_versions(),
        "units": stars.units.to_dict(),
        "data": {"n_stars": len(stars.eta), "sha256": stars.sha256(), "meta": stars.meta},
        "region": region,
        "rest_frame": motion,
        "symmetry": symmetry,
        "df_model": df_model,
        "invocation": options.invocation,
    }
    done = prepare(run, record, options.resume, options.overwrite)
    if done is not None:
        return done
    ckpt_dir = run.path / "checkpoints"

    with stages("flows"):
        ens = FlowEnsemble(stars.summary.standardization(), config.n_flows, config.flow)
        ens = ens.to(device)
        own = ens.fit(
            stars.eta,
            config.flow_training,
            stream_seed(seed, "flows"),
            progress,
            members=job.shard(config.n_flows),
            checkpoints=lambda m: Checkpoint(
                ckpt_dir, f"flows.member{m}", policy.flow_epochs, policy.seconds
            ),
            augment=_augmentation(config, region),
        )
        histories = distributed.share_members(ens.members, own)
        if job.is_main:
            run.save_flows(ens, "flows", {"histories": histories})

    with stages("points"):
        completeness = Completeness.from_meta(stars.meta)
        density = star_density(config, stars.summary, region, completeness, seed, progress)
        points, point_report = draw_cbe_points(
            gradient_sources(ens, config),
            config.n_points,
            region,
            stream_seed(seed, "points"),
            completeness,
            density,
        )
        point_report["star_density"] = type(density).__name__ if density else None
        if isinstance(density, DiskDensity):  # the volume's edge as the stars show it
            point_report["volume_edge"] = {
                "radius": density.edge,
                "blur": density.edge_width,
                "center": density.edge_center.tolist(),
            }
            if math.isfinite(density.edge_half_height):  # a cylinder's faces
                point_report["volume_edge"]["half_height"] = density.edge_half_height
                point_report["volume_edge"]["faces_blur"] = density.edge_faces_width

    with stages("potential"):
        ckpt = Checkpoint(ckpt_dir, "potential", policy.potential_steps, policy.seconds)
        jeans = jeans_moments(stars.summary, region, config.potential, seed, device)
        net, pot_history = fit_potential(
            points,
            config.potential,
            stream_seed(seed, "potential"),
            device,
            progress,
            checkpoint=ckpt,
            jeans=jeans,
        )
        tension = jeans_tension(net, stars.summary, region, config.potential, seed, device)
        factors = calibration(region, net.config.symmetry, tension)
        if job.is_main:
            run.save_potential(
                net,
                stars.units,
                region,
                {"history": pot_history, "jeans_tension": tension, "calibration": factors},
            )

    replicates = []
    if config.potential.replicates:
        with stages("replicates"):
            # one member gives one gradient estimate: a crossfit fit's replicates use ln f
            cfg = config.potential
            if config.crossfit:
                cfg = replace(cfg, loss="lnf")
            n = config.n_points
            # nu(r) is refitted on each bootstrap resample; a disk's nu(R, z) is not (a fit
            # of its own): those replicates keep the flows' n(x), as their calibration had
            sample = replicate_inputs(
                ens, stars.summary, region, n, cfg, seed, device, isinstance(density, RadialProfile)
            )
            replicates = fit_replicates(
                net, sample, cfg, points.x, stream_seed(seed, "replicate_fits"), device, progress
            )
            if job.is_main:
                run.save_replicates(replicates)

    metrics: dict = {"points": point_report, "n_stars": len(stars.eta), "jeans_tension": tension}
    if job.is_main:
        # evaluation and figures are small; compare/plots work on CPU tensors and numpy
        net, ens = net.cpu(), ens.cpu()
        replicates = [r.cpu() for r in replicates]
        if truth is not None:
            with stages("evaluate"):
                metrics.update(
                    score_against_truth(net, ens, truth, seed, replicates, factors=factors)
                )
        if options.figures:
            with stages("figures"):
                from .plots import run_figures

                figure_seed = stream_seed(seed, "figures")
                folder = run.path / "figures"
                run_figures(
                    folder, net, ens, stars.summary, truth, figure_seed, replicates, factors
                )
        metrics["timing"] = stages.record()
        run.write_json("metrics", metrics)
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    return distributed.broadcast_json(metrics)


def _resolve_symmetry(config: FitConfig, stars: PhaseSpace, region: dict) -> tuple[FitConfig, dict]:
    """The config with ``symmetry = "auto"`` replaced by the one the stars show, and the
    record of that choice for ``run.json`` (:func:`~deeppot_galpy.shape.choose_symmetry`)."""
    net = config.potential.config
    if net.symmetry != "auto":
        return config, {"symmetry": net.symmetry, "reason": "given"}
    choice = choose_symmetry(stars.x, stars.v, region).to_dict()
    potential = replace(config.potential, config=replace(net, symmetry=choice["symmetry"]))
    return replace(config, potential=potential), {"requested": "auto"} | choice


def _resolve_df_model(config: FitConfig, stars: PhaseSpace, region: dict) -> tuple[FitConfig, dict]:
    """The config with the DF model ``"auto"`` replaced by the one the stars and the resolved
    symmetry call for (:func:`~deeppot_galpy.shape.choose_df_model`), with its hidden layers
    unless ``[flow] hidden`` is set to other than the default, and its record."""
    if config.flow.model != "auto":
        return config, {"model": config.flow.model, "reason": "given"}
    choice = choose_df_model(stars.x, stars.v, config.potential.config.symmetry, region)
    flow = chosen_flow(config.flow, choice)
    return replace(config, flow=flow), {"requested": "auto"} | choice | {
        "hidden": list(flow.hidden)
    }


def _augmentation(config: FitConfig, region: dict) -> Augmentation | None:
    """The flows' symmetry augmentation (:mod:`deeppot_galpy.df.augment`), if asked for."""
    if not config.flow_training.augment:
        return None
    return symmetry_augmentation(config.potential.config.symmetry, is_centred(region))


def run_demo(
    out: str | Path,
    config: FitConfig | str = "default",
    *,
    options: FitOptions = FitOptions(),
    mock: str = "plummer",
) -> dict:
    """The paper's demonstration: a mock (Plummer by default) through the whole pipeline.

    Parameters
    ----------
    out : the run directory (see :func:`fit` for one that already holds a run).
    config : a :class:`~deeppot_galpy.config.FitConfig`, or the name of a preset
        (``"test"``, ``"default"``, ``"paper"``).
    options : how to run it; ``options.seed`` also draws the stars,
        ``mock.sample(config.n_stars, seed)``.
    mock : the system (:func:`deeppot_galpy.mocks.available_mocks`).

    Returns
    -------
    dict : the metrics, with the errors against the mock's true potential.

    Example
    -------
    >>> opts = FitOptions(seed=1, progress=False)
    >>> metrics = run_demo("runs/demo-test", "test", options=opts)  # doctest: +SKIP
    >>> metrics["potential"]["force_err_median"]  # doctest: +SKIP
    """
    if isinstance(config, str):
        if config not in PRESETS:
            raise ValueError(f"unknown size {config!r}; use one of {sorted(PRESETS)}")
        config = PRESETS[config]
    check_target(out, options.resume, options.overwrite)  # before drawing the stars
    truth = get_mock(mock)
    data = truth.sample(config.n_stars, options.seed)
    return fit(data, out, config, options=options, truth=truth)


def fit_catalog(
    catalog,
    out: str | Path,
    config: FitConfig = PRESETS["default"],
    *,
    options: FitOptions = FitOptions(),
    frame: FrameParameters | None = None,
    cuts: QualityCuts | None = None,
    **catalog_options,
) -> tuple[dict, CutReport | None]:
    """Cuts, flows and potential on a user's catalog (path, Table or SkyCoord).

    Parameters
    ----------
    catalog : a file astropy reads, a Table or a SkyCoord
        (:func:`~deeppot_galpy.data.catalog_to_phasespace`, which gets ``catalog_options``).
        A ``.npy`` path is an (N, 6) array of Galactocentric x, y, z [kpc], v_x, v_y, v_z
        [km/s], memory-mapped and used as it is: no cuts, for catalogs too large to read into
        memory.
    out, config, options : as for :func:`fit`.
    frame : the Galactocentric frame (:class:`~deeppot_galpy.data.FrameParameters`; None:
        astropy's defaults, or a SkyCoord's own); it travels in the data's metadata into
        ``run.json``.
    cuts : the quality cuts (:class:`~deeppot_galpy.data.QualityCuts`; None: the defaults).

    Returns
    -------
    (metrics, report) : the metrics, and the cut report (also saved as ``cuts.json``; None
    for a ``.npy`` array).

    Example
    -------
    >>> metrics, report = fit_catalog("stars.ecsv", "runs/mw", PRESETS["test"])  # doctest: +SKIP
    >>> print(report)  # doctest: +SKIP
    """
    from .data import FrameParameters, catalog_to_phasespace

    check_target(out, options.resume, options.overwrite)  # before reading the catalog
    if isinstance(catalog, str | os.PathLike) and str(catalog).endswith(".npy"):
        meta = {"source": str(catalog), "frame": (frame or FrameParameters()).to_dict()}
        eta = np.load(catalog, mmap_mode="r")
        metrics = fit(eta, out, config, options=options, units=Units.galactic(), meta=meta)
        return metrics, None
    data, report = catalog_to_phasespace(catalog, frame, cuts, **catalog_options)
    metrics = fit(data, out, config, options=options)
    if distributed.is_main_process():
        RunDir(out).write_json("cuts", report.to_dict())
    return metrics, report
