"""The Deep Potential pipeline, stage by stage, writing a run directory.

    PhaseSpace -> FlowEnsemble (f) -> points drawn from f with grad ln f -> PotentialNet (Phi)
        -> bootstrap replicates of Phi (error bars) -> run directory (weights, metrics, figures)

``fit`` runs the stages on any :class:`~deeppot_galpy.phasespace.PhaseSpace`, or on an (N, 6)
array memory-mapped from a ``.npy`` file for catalogs too large to copy; ``run_demo`` feeds it
the paper's Plummer sphere and scores the result against the truth. Presets (``PRESETS``) set
the sizes; every entry point takes a seed and a device and records config, versions and
metrics.

Resumable: each training loop checkpoints into ``RUN_DIR/checkpoints``
(:mod:`deeppot_galpy.checkpoint`); ``resume=True`` continues a killed run from there, after
checking that config, seed and data are those the run was started with. Finished flow members
are loaded, not retrained; the CBE points are deterministic and simply drawn again, and so
are the replicates (refitted after a resume: each takes a fraction of the main fit's time).

Distributed: under torchrun, or :func:`deeppot_galpy.distributed.launch`, the stages are
shared among the processes (:mod:`deeppot_galpy.distributed`) and rank 0 writes the run
directory; the result is the single-process one.
"""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from . import distributed
from .checkpoint import Checkpoint, CheckpointPolicy, check_resume, clean_stale
from .compare import coverage, gradient_errors, potential_metrics
from .device import resolve_device
from .df import FlowConfig, FlowEnsemble, FlowTraining
from .mocks import MockSystem, get_mock
from .phasespace import PhaseSpace
from .potential import CBEPoints, PotentialTraining, fit_potential
from .potential.jeans import JeansMoments
from .potential.replicates import fit_replicates, replicate_spread
from .rundir import RunDir, software_versions
from .units import Units

__all__ = [
    "FitConfig",
    "PRESETS",
    "draw_cbe_points",
    "fit",
    "fit_catalog",
    "jeans_moments",
    "run_demo",
]


@dataclass(frozen=True)
class FitConfig:
    """Every setting of a fit (the TOML config mirrors these sections)."""

    n_stars: int = 2**17  # used by the demo's mock; a catalog brings its own stars
    n_flows: int = 4
    flow: FlowConfig = FlowConfig()
    flow_training: FlowTraining = FlowTraining()
    n_points: int = 2**15  # points drawn from the flows to fit the potential on
    potential: PotentialTraining = PotentialTraining()
    threads: int | None = 1  # torch intra-op threads (0 or None: torch's default)

    def __post_init__(self) -> None:
        if min(self.n_stars, self.n_flows, self.n_points) < 1:
            raise ValueError(
                f"n_stars, n_flows and n_points must be >= 1 (got {self.n_stars}, "
                f"{self.n_flows}, {self.n_points})"
            )
        if self.threads is not None and not (isinstance(self.threads, int) and self.threads >= 0):
            raise ValueError(
                f"threads must be an integer >= 0 (0: torch's default), not {self.threads!r}"
            )
        if self.crossfit and self.n_flows < 2:
            raise ValueError("the crossfit loss needs n_flows >= 2 (split into two groups)")

    @property
    def crossfit(self) -> bool:
        """The crossfit loss: the flow members in two groups give two estimates of grad ln f."""
        return self.potential.loss == "crossfit"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["potential"] = self.potential.to_dict()
        return d


PRESETS: dict[str, FitConfig] = {
    # seconds: for tests and smoke runs
    "test": FitConfig(
        n_stars=2**12,
        n_flows=1,
        flow=FlowConfig(steps=2, hidden=(32, 32)),
        flow_training=FlowTraining(epochs=4, batch_size=512),
        n_points=2**11,
        potential=PotentialTraining(steps=200, batch_size=256, replicates=2, replicate_steps=50),
    ),
    # about 15 minutes on 2 CPU cores
    "default": FitConfig(
        n_stars=2**17,
        n_flows=2,
        flow_training=FlowTraining(epochs=40, batch_size=4096, time_budget_s=300),
        n_points=2**15,
        potential=PotentialTraining(
            steps=3000, time_budget_s=240, loss="crossfit", replicates=4, replicate_steps=500
        ),
    ),
    # the paper's sizes (2^17 stars, 8 flows, 2^15 points, long training) with the default's
    # method; sized for a GPU
    "paper": FitConfig(
        n_stars=2**17,
        n_flows=8,
        flow_training=FlowTraining(epochs=200, batch_size=4096),
        n_points=2**15,
        potential=PotentialTraining(
            steps=20000, batch_size=2048, loss="crossfit", replicates=4, replicate_steps=2000
        ),
    ),
}


class _Stages:
    """Wall time and peak memory per stage, for metrics.json and the benchmarks."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        t0 = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - t0, 2)

    def record(self) -> dict:
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return {"seconds": self.seconds, "peak_rss_mb": round(peak_kb / 1024, 1)}


# above this many stars, standardisation, region and figures use a random subset of this size:
# percentiles of 2^21 stars are accurate to ~1e-3, and the full set may not fit in memory twice
_SUMMARY_ROWS = 2**21
_CHUNK_ROWS = 2**20  # rows per chunk when scanning a (memory-mapped) array


@dataclass
class _Stars:
    """The stars in the form the stages use: ``eta`` (N, 6) may be a memory map."""

    eta: np.ndarray
    units: Units
    meta: dict
    summary: PhaseSpace  # all the stars, or _SUMMARY_ROWS of them at random

    @classmethod
    def of(cls, data: PhaseSpace | np.ndarray, units: Units | None, meta: dict | None) -> _Stars:
        if isinstance(data, PhaseSpace):
            eta, units, meta = data.eta, data.units, data.meta
        else:
            eta, units, meta = data, units or Units.nbody(), dict(meta or {})
            if eta.ndim != 2 or eta.shape[1] != 6 or eta.dtype.kind != "f":
                raise ValueError(
                    f"star array must be (N, 6) floats (x, v); got {eta.shape} {eta.dtype}"
                )
            bad = sum(
                int((~np.isfinite(eta[i : i + _CHUNK_ROWS]).all(1)).sum())
                for i in range(0, len(eta), _CHUNK_ROWS)
            )
            if bad:
                raise ValueError(f"{bad} of {len(eta)} stars have NaN/inf values; drop them first")
        if len(eta) <= _SUMMARY_ROWS:
            summary = (
                data if isinstance(data, PhaseSpace) else PhaseSpace.from_eta(eta, units, meta)
            )
        else:
            rows = np.random.default_rng(0).choice(len(eta), _SUMMARY_ROWS, replace=False)
            summary = PhaseSpace.from_eta(eta[np.sort(rows)], units, meta)
        return cls(eta, units, meta, summary)

    def sha256(self) -> str:
        """SHA-256 of the float64 (x, v) rows, read in chunks."""
        h = hashlib.sha256()
        for i in range(0, len(self.eta), _CHUNK_ROWS):
            h.update(np.ascontiguousarray(self.eta[i : i + _CHUNK_ROWS], np.float64).tobytes())
        return h.hexdigest()


def _log_prob_and_grad(ens: FlowEnsemble, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``ens.log_prob_and_grad(eta)``, each process of the job computing a contiguous shard."""
    job = distributed.current()
    lo, hi = len(eta) * job.rank // job.world, len(eta) * (job.rank + 1) // job.world
    logf, grad = ens.log_prob_and_grad(eta[lo:hi])
    both = distributed.all_gather_rows(np.column_stack([logf, grad]))
    return both[:, 0], both[:, 1:]


def _gradient_sources(ens: FlowEnsemble, config: FitConfig) -> list[FlowEnsemble]:
    """The ensemble; for the crossfit loss, its members in two groups.

    The groups' gradient errors are nearly independent (two members trained on the same stars
    correlate at only 0.3-0.4, ``benchmarks/RESULTS.md``), which is what the crossfit loss
    needs; flows trained on disjoint halves of the stars were measured to do no better.
    """
    if not config.crossfit:
        return [ens]
    half = ens.k // 2
    return [ens.subset(range(half)), ens.subset(range(half, ens.k))]


def draw_cbe_points(
    ensembles: list[FlowEnsemble], n: int, region: dict, seed: int
) -> tuple[CBEPoints, dict]:
    """Draw n points from the ensembles (equal shares) with grad ln f from each.

    Points outside the stars' region (beyond ``r_max`` of its centre) are dropped: the flows
    extrapolate there and their gradients do not constrain the potential. With two ensembles,
    the second's gradients become the independent estimate for the crossfit loss.

    In a distributed job rank 0 draws the points and shares them (so every rank has the same
    points whatever its device's RNG does), then each rank evaluates a shard of the gradients.
    """
    shares = np.full(len(ensembles), n // len(ensembles))
    shares[0] += n - shares.sum()
    eta = np.empty((0, 6))
    if distributed.current().is_main:
        pairs = enumerate(zip(ensembles, shares, strict=True))
        eta = np.concatenate([e.sample(int(s), seed + i) for i, (e, s) in pairs])
    eta = distributed.all_gather_rows(eta)
    d = np.linalg.norm(eta[:, :3] - np.asarray(region["center"]), axis=1)
    keep = d <= region["r_max"]
    eta = eta[keep]
    grads = [_log_prob_and_grad(e, eta) for e in ensembles]
    logf = np.mean([g[0] for g in grads], axis=0)
    finite = np.all([np.isfinite(g[1]).all(1) & np.isfinite(g[0]) for g in grads], axis=0)
    eta, grads, logf = eta[finite], [(lf[finite], g[finite]) for lf, g in grads], logf[finite]
    g_a = grads[0][1]
    points = CBEPoints(
        eta[:, :3],
        eta[:, 3:],
        g_a[:, :3],
        g_a[:, 3:],
        logf,
        gx_b=grads[1][1][:, :3] if len(grads) > 1 else None,
        gv_b=grads[1][1][:, 3:] if len(grads) > 1 else None,
    )
    report = {
        "drawn": int(n),
        "dropped_outside_region": int((~keep).sum()),
        "dropped_nonfinite_gradient": int((~finite).sum()),
        "kept": len(points),
    }
    return points, report


def _identity(record: dict) -> dict:
    """What a resumed run must share with its start: everything that shapes the result."""
    meta = record["data"].get("meta") or {}
    return {
        "config": record["config"],
        "seed": record["seed"],
        "units": record["units"],
        "data": {"n_stars": record["data"]["n_stars"], "sha256": record["data"]["sha256"]},
        "frame": meta.get("frame"),
        "cuts": meta.get("cuts"),
    }


def _prepare(run: RunDir, record: dict, resume: bool) -> dict | None:
    """Check and set up ``run`` for a fresh or resumed fit; the stored metrics if it is done.

    Every process checks (they all see the same files, so they agree) before rank 0 changes
    anything: a fresh fit refuses a directory holding an unfinished run, a resumed one refuses
    other settings or data (:func:`~deeppot_galpy.checkpoint.check_resume`).
    """
    job = distributed.current()
    started = (run.path / "run.json").exists()
    finished = (run.path / "metrics.json").exists()
    if resume:
        if not started:
            raise ValueError(f"nothing to resume in {run.path}: it has no run.json")
        old = run.read_json("run")
        check_resume(run.path, _identity(old), _identity(record))
        if old.get("versions") != record["versions"]:
            warnings.warn(
                f"resuming {run.path} with other software versions than it started with "
                f"({old.get('versions')} -> {record['versions']}): the result may differ "
                "slightly from an uninterrupted run",
                stacklevel=3,
            )
    elif started and not finished:
        raise ValueError(
            f"{run.path} holds an unfinished run: resume it (--resume {run.path}) or choose "
            "another directory"
        )
    job.barrier()
    if job.is_main:
        if resume:
            clean_stale(run.path)
            old.setdefault("resumed", []).append(
                {k: record[k] for k in ("device", "processes", "versions")}
            )
            run.write_json("run", old)
        else:
            shutil.rmtree(run.path / "checkpoints", ignore_errors=True)
            (run.path / "metrics.json").unlink(missing_ok=True)
            run.write_json("run", record)
        if finished:
            shutil.rmtree(run.path / "checkpoints", ignore_errors=True)
    job.barrier()
    return run.read_json("metrics") if resume and finished else None


def _share_members(ens: FlowEnsemble, own: list[dict]) -> list[dict]:
    """Every member's weights and history on every process, from the process that trained it."""
    job = distributed.current()
    mine = dict(zip(job.shard(ens.k), own, strict=True))
    histories = []
    for k in range(ens.k):
        distributed.broadcast_state(ens.members[k], job.owner(k))
        histories.append(distributed.broadcast_json(mine.get(k), job.owner(k)))
    return histories


def fit(
    data: PhaseSpace | np.ndarray,
    out: str | Path,
    config: FitConfig = PRESETS["default"],
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    truth: MockSystem | None = None,
    figures: bool = True,
    *,
    units: Units | None = None,
    meta: dict | None = None,
    resume: bool = False,
    checkpoints: CheckpointPolicy = CheckpointPolicy(),
    invocation: dict | None = None,
) -> dict:
    """Fit flows and potential to ``data``; write the run directory ``out``; return metrics.

    ``data`` is a PhaseSpace, or an (N, 6) array of (x, v) in ``units`` (default N-body) with
    provenance ``meta``; ``np.load(path, mmap_mode="r")`` trains on a catalog without copying
    it into memory. ``checkpoints`` sets how often training states are saved; ``resume``
    continues the unfinished (or returns the finished) run in ``out``. ``invocation``
    (how the CLI was called) is recorded in run.json so ``--resume`` can repeat it. In a
    distributed job every process calls this and gets the metrics.
    """
    device = distributed.join(str(resolve_device(device)))
    return _fit(
        _Stars.of(data, units, meta),
        RunDir(out, create=True),
        config,
        seed,
        device,
        progress and distributed.current().is_main,
        truth,
        figures,
        resume,
        checkpoints,
        invocation,
    )


def _fit(
    stars: _Stars,
    run: RunDir,
    config: FitConfig,
    seed: int,
    device: str,
    progress: bool,
    truth: MockSystem | None,
    figures: bool,
    resume: bool,
    policy: CheckpointPolicy,
    invocation: dict | None,
) -> dict:
    job = distributed.current()
    if config.threads:
        torch.set_num_threads(config.threads)
    stages = _Stages()
    region = stars.summary.region()
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
        "invocation": invocation,
    }
    done = _prepare(run, record, resume)
    if done is not None:
        return done
    ckpt_dir = run.path / "checkpoints"

    with stages("flows"):
        ens = FlowEnsemble(stars.summary.standardization(), config.n_flows, config.flow)
        ens = ens.to(device)
        own = ens.fit(
            stars.eta,
            config.flow_training,
            seed,
            progress,
            members=job.shard(config.n_flows),
            checkpoints=lambda m: Checkpoint(
                ckpt_dir, f"flows.member{m}", policy.flow_epochs, policy.seconds
            ),
        )
        histories = _share_members(ens, own)
        if job.is_main:
            run.save_flows(ens, "flows", {"histories": histories})

    with stages("points"):
        points, point_report = draw_cbe_points(
            _gradient_sources(ens, config), config.n_points, region, seed + 3
        )

    with stages("potential"):
        ckpt = Checkpoint(ckpt_dir, "potential", policy.potential_steps, policy.seconds)
        jeans = jeans_moments(stars.summary, region, config.potential, seed, device)
        net, pot_history = fit_potential(
            points, config.potential, seed + 5, device, progress, checkpoint=ckpt, jeans=jeans
        )
        if job.is_main:
            run.save_potential(net, stars.units, region, {"history": pot_history})

    replicates = []
    if config.potential.replicates:
        with stages("replicates"):
            replicates = _fit_replicates(
                net, ens, stars.summary, points, region, config, seed, device, progress
            )
            if job.is_main:
                run.save_replicates(replicates)

    metrics: dict = {"points": point_report, "n_stars": len(stars.eta)}
    if job.is_main:
        # evaluation and figures are small; compare/plots work on CPU tensors and numpy
        net, ens = net.cpu(), ens.cpu()
        replicates = [r.cpu() for r in replicates]
        if truth is not None:
            with stages("evaluate"):
                metrics.update(score_against_truth(net, ens, truth, seed, replicates))
        if figures:
            with stages("figures"):
                from .plots import run_figures

                run_figures(
                    run.path / "figures",
                    net,
                    ens,
                    stars.summary,
                    truth,
                    seed,
                    replicates,
                )
        metrics["timing"] = stages.record()
        run.write_json("metrics", metrics)
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    return distributed.broadcast_json(metrics)


def jeans_moments(
    stars: PhaseSpace, region: dict, cfg: PotentialTraining, seed: int, device: str
) -> JeansMoments | None:
    """The stars' weak-form Jeans moments for the potential fit, or None if switched off."""
    if cfg.jeans_weight <= 0:
        return None
    return JeansMoments(
        stars.x,
        stars.v,
        region,
        cfg.jeans_functions,
        neighbours=cfg.jeans_neighbours,
        seed=seed + 11,
        device=device,
    )


def _fit_replicates(
    net,
    ens: FlowEnsemble,
    stars: PhaseSpace,
    points: CBEPoints,
    region: dict,
    config: FitConfig,
    seed: int,
    device: str,
    progress: bool,
) -> list:
    """Bootstrap replicates of the potential (:mod:`~deeppot_galpy.potential.replicates`).

    Replicate b draws its CBE points from flow member b (cycling) with that member's
    gradients, and its Jeans moments from a bootstrap resample of the stars. One member gives
    one gradient estimate, so a crossfit fit's replicates use the ln f loss.
    """
    cfg = config.potential
    if config.crossfit:
        cfg = replace(cfg, loss="lnf")

    def sample(b: int) -> tuple[CBEPoints, JeansMoments | None]:
        pts, _ = draw_cbe_points([ens.subset([b % ens.k])], config.n_points, region, seed + 100 + b)
        rows = np.random.default_rng(seed + 200 + b).integers(0, len(stars), len(stars))
        resampled = PhaseSpace.from_eta(stars.eta[rows], stars.units, stars.meta)
        return pts, jeans_moments(resampled, region, cfg, seed, device)

    return fit_replicates(net, sample, cfg, points.x, seed + 300, device, progress)


def score_against_truth(
    net,
    ens: FlowEnsemble,
    truth: MockSystem,
    seed: int,
    replicates: list | None = None,
    n_eval: int = 2**14,
) -> dict:
    """Potential and DF-gradient errors on held-out stars of the true system, in its r_range.

    With bootstrap ``replicates``, also the coverage of their error bars
    (:func:`~deeppot_galpy.compare.coverage`).
    """
    held_out = truth.sample(n_eval, seed + 10_000)
    pot = potential_metrics(net, truth, held_out.x, truth.units.G, r_range=truth.r_range)
    out: dict = {"potential": pot}
    r = held_out.r
    sel = (r >= truth.r_range[0]) & (r <= truth.r_range[1])
    if replicates:
        x = held_out.x[sel]
        spread = replicate_spread(replicates, x, truth.units.G)
        out["coverage"] = coverage(net, truth, x, spread, truth.units.G)
    try:
        gx, gv = truth.grad_log_df(held_out.x, held_out.v)
    except NotImplementedError:
        return out
    _, g = ens.log_prob_and_grad(held_out.eta[sel])
    out["df"] = gradient_errors(g, np.concatenate([gx, gv], axis=1)[sel])
    return out


def run_demo(
    out: str | Path,
    size: str = "default",
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    mock: str = "plummer",
    *,
    config: FitConfig | None = None,
    figures: bool = True,
    resume: bool = False,
    checkpoints: CheckpointPolicy = CheckpointPolicy(),
    invocation: dict | None = None,
    **overrides,
) -> dict:
    """The paper's demonstration: a mock (Plummer by default) through the whole pipeline.

    The fit's settings are ``config`` if given, else the preset ``size``, with ``overrides``
    (FitConfig fields) applied; the other keywords are :func:`fit`'s.
    """
    if config is None:
        if size not in PRESETS:
            raise ValueError(f"unknown size {size!r}; use one of {sorted(PRESETS)}")
        config = PRESETS[size]
    config = replace(config, **overrides)
    truth = get_mock(mock)
    data = truth.sample(config.n_stars, seed)
    return fit(
        data,
        out,
        config,
        seed,
        device,
        progress,
        truth=truth,
        figures=figures,
        resume=resume,
        checkpoints=checkpoints,
        invocation=invocation,
    )


def fit_catalog(
    catalog,
    out: str | Path,
    config: FitConfig = PRESETS["default"],
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    frame: dict | None = None,
    cuts: dict | None = None,
    *,
    figures: bool = True,
    resume: bool = False,
    checkpoints: CheckpointPolicy = CheckpointPolicy(),
    invocation: dict | None = None,
    **catalog_options,
) -> tuple[dict, object]:
    """Cuts, flows and potential on a user's catalog (path, Table or SkyCoord).

    ``frame`` and ``cuts`` are the ``[frame]`` / ``[cuts]`` config tables
    (:class:`~deeppot_galpy.data.FrameParameters`, :class:`~deeppot_galpy.data.QualityCuts`).
    The cut report is printed by the CLI and saved as ``cuts.json``; frame parameters travel
    in the data's metadata into ``run.json``. Returns (metrics, cut report).

    A ``.npy`` path is an (N, 6) array of Galactocentric x, y, z [kpc], v_x, v_y, v_z [km/s],
    memory-mapped and used as it is: no cuts (the report is None), for catalogs too large to
    read into memory. The other keywords are :func:`fit`'s.
    """
    from .data import FrameParameters, QualityCuts, catalog_to_phasespace

    options = dict(figures=figures, resume=resume, checkpoints=checkpoints, invocation=invocation)
    if isinstance(catalog, str | os.PathLike) and str(catalog).endswith(".npy"):
        frame_used = FrameParameters.from_dict(frame) if frame else FrameParameters()
        meta = {"source": str(catalog), "frame": frame_used.to_dict()}
        eta = np.load(catalog, mmap_mode="r")
        metrics = fit(
            eta, out, config, seed, device, progress, units=Units.galactic(), meta=meta, **options
        )
        return metrics, None
    data, report = catalog_to_phasespace(
        catalog,
        FrameParameters.from_dict(frame) if frame else None,
        QualityCuts.from_dict(cuts) if cuts else None,
        **catalog_options,
    )
    metrics = fit(data, out, config, seed, device, progress, **options)
    if distributed.is_main_process():
        RunDir(out).write_json("cuts", report.to_dict())
    return metrics, report
