"""The Deep Potential pipeline, stage by stage, writing a run directory.

    PhaseSpace -> FlowEnsemble(s) (f) -> points drawn from f with grad ln f -> PotentialNet (Phi)
        -> run directory (weights, metadata, metrics, figures)

``fit`` runs the stages on any :class:`~deeppot_galpy.phasespace.PhaseSpace`; ``run_demo`` feeds
it the paper's Plummer sphere and scores the result against the truth. Presets (``PRESETS``)
set the sizes; every entry point takes a seed and records config, versions and metrics.
"""

from __future__ import annotations

import hashlib
import resource
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .compare import gradient_errors, potential_metrics
from .df import FlowConfig, FlowEnsemble, FlowTraining
from .mocks import MockSystem, get_mock
from .phasespace import PhaseSpace
from .potential import CBEPoints, PotentialTraining, fit_potential
from .rundir import RunDir, software_versions

__all__ = ["FitConfig", "PRESETS", "draw_cbe_points", "fit", "fit_catalog", "run_demo"]


@dataclass(frozen=True)
class FitConfig:
    """Every setting of a fit (the TOML config mirrors these sections)."""

    n_stars: int = 2**17  # used by the demo's mock; a catalog brings its own stars
    n_flows: int = 4
    flow: FlowConfig = FlowConfig()
    flow_training: FlowTraining = FlowTraining()
    n_points: int = 2**15  # points drawn from the flows to fit the potential on
    potential: PotentialTraining = PotentialTraining()
    threads: int | None = 1  # torch intra-op threads; on a busy 2-core machine 1 beats 2

    def __post_init__(self) -> None:
        if self.crossfit and self.n_flows < 2:
            raise ValueError("the crossfit loss needs n_flows >= 2 (split between two ensembles)")

    @property
    def crossfit(self) -> bool:
        """Two ensembles on disjoint halves of the stars, for the crossfit loss."""
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
        potential=PotentialTraining(steps=200, batch_size=256),
    ),
    # about 15 minutes on 2 CPU cores
    "default": FitConfig(
        n_stars=2**17,
        n_flows=2,
        flow_training=FlowTraining(epochs=40, batch_size=4096, time_budget_s=300),
        n_points=2**15,
        potential=PotentialTraining(steps=3000, time_budget_s=240),
    ),
    # the paper's numbers (2^17 stars, 2^15 points); sized for a GPU
    "paper": FitConfig(
        n_stars=2**17,
        n_flows=8,
        flow_training=FlowTraining(epochs=200, batch_size=4096),
        n_points=2**15,
        potential=PotentialTraining(steps=20000, batch_size=2048),
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


def _data_hash(ps: PhaseSpace) -> str:
    return hashlib.sha256(np.ascontiguousarray(ps.eta).tobytes()).hexdigest()


def draw_cbe_points(
    ensembles: list[FlowEnsemble], n: int, region: dict, seed: int
) -> tuple[CBEPoints, dict]:
    """Draw n points from the ensembles (equal shares) with grad ln f from each.

    Points outside the stars' region (beyond ``r_max`` of its centre) are dropped: the flows
    extrapolate there and their gradients do not constrain the potential. With two ensembles,
    the second's gradients become the independent estimate for the crossfit loss.
    """
    shares = np.full(len(ensembles), n // len(ensembles))
    shares[0] += n - shares.sum()
    eta = np.concatenate(
        [e.sample(int(s), seed + i) for i, (e, s) in enumerate(zip(ensembles, shares, strict=True))]
    )
    d = np.linalg.norm(eta[:, :3] - np.asarray(region["center"]), axis=1)
    keep = d <= region["r_max"]
    eta = eta[keep]
    grads = [e.log_prob_and_grad(eta) for e in ensembles]
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


def fit(
    data: PhaseSpace,
    out: str | Path,
    config: FitConfig = PRESETS["default"],
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    truth: MockSystem | None = None,
    figures: bool = True,
) -> dict:
    """Fit flows and potential to ``data``; write the run directory ``out``; return metrics."""
    if config.threads:
        torch.set_num_threads(config.threads)
    run = RunDir(out, create=True)
    stages = _Stages()
    region = data.region()
    run.write_json(
        "run",
        {
            "config": config.to_dict(),
            "seed": seed,
            "device": device,
            "versions": software_versions(),
            "units": data.units.to_dict(),
            "data": {"n_stars": len(data), "sha256": _data_hash(data), "meta": data.meta},
            "region": region,
        },
    )

    with stages("flows"):
        parts = data.split(0.5, seed + 7) if config.crossfit else (data,)
        k = config.n_flows // len(parts)
        ensembles = []
        histories = []
        for i, part in enumerate(parts):
            ens = FlowEnsemble(data.standardization(), k, config.flow).to(device)
            histories.append(ens.fit(part, config.flow_training, seed + 1000 * i, progress))
            run.save_flows(ens, "flows" if i == 0 else "flows_b", {"histories": histories[-1]})
            ensembles.append(ens)

    with stages("points"):
        points, point_report = draw_cbe_points(ensembles, config.n_points, region, seed + 3)

    with stages("potential"):
        net, pot_history = fit_potential(points, config.potential, seed + 5, device, progress)
        run.save_potential(net, data.units, region, {"history": pot_history})

    metrics: dict = {"points": point_report, "n_stars": len(data)}
    if truth is not None:
        with stages("evaluate"):
            metrics.update(score_against_truth(net, ensembles, truth, seed))
    if figures:
        with stages("figures"):
            from .plots import run_figures

            run_figures(run.path / "figures", net, ensembles[0], data, truth, seed)
    metrics["timing"] = stages.record()
    run.write_json("metrics", metrics)
    return metrics


def score_against_truth(
    net, ensembles: list[FlowEnsemble], truth: MockSystem, seed: int, n_eval: int = 2**14
) -> dict:
    """Potential and DF-gradient errors on held-out stars of the true system, in its r_range."""
    held_out = truth.sample(n_eval, seed + 10_000)
    pot = potential_metrics(net, truth, held_out.x, truth.units.G, r_range=truth.r_range)
    out: dict = {"potential": pot}
    try:
        gx, gv = truth.grad_log_df(held_out.x, held_out.v)
    except NotImplementedError:
        return out
    r = held_out.r
    sel = (r >= truth.r_range[0]) & (r <= truth.r_range[1])
    _, g = ensembles[0].log_prob_and_grad(held_out.eta[sel])
    out["df"] = gradient_errors(g, np.concatenate([gx, gv], axis=1)[sel])
    return out


def run_demo(
    out: str | Path,
    size: str = "default",
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    mock: str = "plummer",
    **overrides,
) -> dict:
    """The paper's demonstration: a mock (Plummer by default) through the whole pipeline."""
    if size not in PRESETS:
        raise ValueError(f"unknown size {size!r}; use one of {sorted(PRESETS)}")
    config = replace(PRESETS[size], **overrides)
    truth = get_mock(mock)
    data = truth.sample(config.n_stars, seed)
    return fit(data, out, config, seed, device, progress, truth=truth)


def fit_catalog(
    catalog,
    out: str | Path,
    config: FitConfig = PRESETS["default"],
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    frame: dict | None = None,
    cuts: dict | None = None,
    **catalog_options,
) -> tuple[dict, object]:
    """Cuts, flows and potential on a user's catalog (path, Table or SkyCoord).

    ``frame`` and ``cuts`` are the ``[frame]`` / ``[cuts]`` config tables
    (:class:`~deeppot_galpy.data.FrameParameters`, :class:`~deeppot_galpy.data.QualityCuts`).
    The cut report is printed by the CLI and saved as ``cuts.json``; frame parameters travel
    in the data's metadata into ``run.json``. Returns (metrics, cut report).
    """
    from .data import FrameParameters, QualityCuts, catalog_to_phasespace

    data, report = catalog_to_phasespace(
        catalog,
        FrameParameters.from_dict(frame) if frame else None,
        QualityCuts.from_dict(cuts) if cuts else None,
        **catalog_options,
    )
    RunDir(out, create=True).write_json("cuts", report.to_dict())
    metrics = fit(data, out, config, seed, device, progress)
    return metrics, report
