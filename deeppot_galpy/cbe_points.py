r"""From the flows to the potential fit: CBE points with :math:`\nabla\ln f`, Jeans moments.

The potential is fitted on two kinds of data (:mod:`deeppot_galpy.potential`):

* points :math:`(\vec x, \vec v)` drawn from the flows with the flows' :math:`\ln f` and
  :math:`\nabla_{x,v}\ln f` (:func:`draw_cbe_points`), on which the stationary collisionless
  Boltzmann equation :math:`\vec v\cdot\nabla_x f - \nabla\Phi\cdot\nabla_v f = 0` is imposed;
  with the crossfit loss the flow members form two groups (:func:`gradient_sources`) whose
  gradients are two nearly independent estimates;
* the stars' weak-form Jeans moments (:func:`jeans_moments`), which pin the force amplitude
  from the stars themselves.

A bootstrap replicate b of the potential gets both from resampled inputs
(:func:`replicate_inputs`): points from flow member b alone, moments of a resample of the
stars. Seeds: :mod:`deeppot_galpy.seeds` (streams ``points``, ``jeans``, ``replicate_points``,
``replicate_stars``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from . import distributed
from .compare import is_centred
from .completeness import Completeness
from .config import FitConfig
from .df import FlowEnsemble
from .df.disk_density import DiskDensity
from .df.radial import RadialProfile
from .phasespace import FilledVolume, PhaseSpace
from .potential import CBEPoints, PotentialNet, PotentialTraining, jeans_temper_power
from .potential.jeans import JeansMoments
from .potential.replicates import REPLICATE_POINTS, TENSION_STARS
from .seeds import spawn_seeds, stream_seed

__all__ = [
    "draw_cbe_points",
    "gradient_sources",
    "jeans_moments",
    "jeans_tension",
    "replicate_inputs",
    "star_density",
]


def _log_prob_and_grad(
    ens: FlowEnsemble, eta: np.ndarray, conditional: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """``ens.log_prob_and_grad(eta)``, each process of the job computing a contiguous shard."""
    job = distributed.current()
    lo, hi = len(eta) * job.rank // job.world, len(eta) * (job.rank + 1) // job.world
    logf, grad = ens.log_prob_and_grad(eta[lo:hi], conditional=conditional)
    both = distributed.all_gather_rows(np.column_stack([logf, grad]))
    return both[:, 0], both[:, 1:]


def gradient_sources(ens: FlowEnsemble, config: FitConfig) -> list[FlowEnsemble]:
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
    ensembles: list[FlowEnsemble],
    n: int,
    region: dict,
    seed: int,
    completeness: Completeness | None = None,
    density: RadialProfile | DiskDensity | None = None,
) -> tuple[CBEPoints, dict]:
    """Draw n points from the ensembles (equal shares) with grad ln f from each.

    Points outside the stars' region (beyond ``r_fit`` of ``fit_center``: ``r_max`` of the
    centre, or a hard-edged survey volume, ball or cylinder, less its smeared rim,
    :meth:`PhaseSpace.region`) are dropped: the
    flows extrapolate there and their gradients do not constrain the potential. With two ensembles,
    the second's gradients become the independent estimate for the crossfit loss.

    In a distributed job rank 0 draws the points and shares them (so every rank has the same
    points whatever its device's RNG does), then each rank evaluates a shard of the gradients.

    Parameters
    ----------
    ensembles : one ensemble, or two (crossfit: :func:`gradient_sources`).
    n : points to draw, before the drops.
    region : the stars' region (``PhaseSpace.region()``: ``fit_center``, ``r_fit``).
    seed : the seed of the draw; each ensemble samples from its own child of it.
    completeness : the catalog's completeness S (None: complete); the flows model S f, so
        grad ln S is taken off their spatial gradients (:mod:`deeppot_galpy.completeness`).
    density : the stars' density from their positions, to use in place of the position flows:
        ln f = ln nu + ln p(v | x); nu(r) of a round system (:mod:`deeppot_galpy.df.radial`)
        or nu(R, z) of a disk's survey volume (:mod:`deeppot_galpy.df.disk_density`), both
        the density before any selection, so grad ln S is not taken off them.

    Returns
    -------
    (points, report) : the :class:`~deeppot_galpy.potential.CBEPoints`, and the counts drawn,
    dropped (outside the region, non-finite gradient) and kept.

    Example
    -------
    >>> points, report = draw_cbe_points([ens], 2**12, stars.region(), seed=0)  # doctest: +SKIP
    """
    shares = np.full(len(ensembles), n // len(ensembles))
    shares[0] += n - shares.sum()
    eta = np.empty((0, 6))
    if distributed.current().is_main:
        seeds = spawn_seeds(seed, len(ensembles))
        parts = zip(ensembles, shares, seeds, strict=True)
        eta = np.concatenate([e.sample(int(m), s) for e, m, s in parts])
    eta = distributed.all_gather_rows(eta)
    keep = FilledVolume.of(region, trimmed=True).depth(eta[:, :3]) >= 0
    eta = eta[keep]
    grads = [_log_prob_and_grad(e, eta, conditional=density is not None) for e in ensembles]
    if density is not None:
        grad_log_nu, log_nu = density.grad_log(eta[:, :3]), density.log_density(eta[:, :3])
        for lf, g in grads:
            lf += log_nu
            g[:, :3] += grad_log_nu
    logf = np.mean([g[0] for g in grads], axis=0)
    finite = np.all([np.isfinite(g[1]).all(1) & np.isfinite(g[0]) for g in grads], axis=0)
    eta, grads, logf = eta[finite], [(lf[finite], g[finite]) for lf, g in grads], logf[finite]
    if completeness is not None and density is None:
        grad_log_s = completeness.grad_log(eta[:, :3])
        for _, g in grads:
            g[:, :3] -= grad_log_s
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


def jeans_moments(
    stars: PhaseSpace,
    region: dict,
    cfg: PotentialTraining,
    seed: int,
    device: str,
    stream: str = "jeans",
) -> JeansMoments | None:
    """The stars' weak-form Jeans moments for the potential fit, or None if switched off.

    ``seed`` is the run's seed: the test functions are placed from its ``stream``, the same
    for the main fit and every replicate (a replicate resamples the stars, not the
    functions). A completeness recorded in the stars' ``meta`` enters the moments.
    """
    if cfg.jeans_strength <= 0:
        return None
    return JeansMoments(
        stars.x,
        stars.v,
        region,
        cfg.jeans_functions,
        n_stars=cfg.jeans_stars,
        neighbours=cfg.jeans_neighbours,
        seed=stream_seed(seed, stream),
        device=device,
        completeness=Completeness.from_meta(stars.meta),
        # one or the other: the stars observed once more also take out the positions' share
        v_cov=stars.v_cov if cfg.jeans_deconvolve and stars.reobserved is None else None,
        reobserved=stars.reobserved if cfg.jeans_deconvolve else None,
        shells=cfg.jeans_shells if cfg.config.symmetry == "spherical" else 1.0,
        noise_weight=cfg.jeans_noise_power,
        temper=jeans_temper_power(cfg, stars.x),
    )


def jeans_tension(
    net: PotentialNet,
    stars: PhaseSpace,
    region: dict,
    cfg: PotentialTraining,
    seed: int,
    device: str,
) -> float | None:
    """The fitted potential's tension with the stars' Jeans moments
    (:meth:`JeansMoments.tension <deeppot_galpy.potential.jeans.JeansMoments.tension>`) on
    test functions placed anew (stream ``jeans_check``), which the fit was not trained on,
    over at most :data:`~deeppot_galpy.potential.replicates.TENSION_STARS` stars; None
    without a Jeans term."""
    cfg = replace(cfg, jeans_stars=min(cfg.jeans_stars, TENSION_STARS))
    check = jeans_moments(stars, region, cfg, seed, device, stream="jeans_check")
    if check is None:
        return None
    x = check.positions.detach().cpu().double().numpy()
    return check.tension(-net.evaluate(x, laplacian=False)["acc"])


def star_density(
    config: FitConfig,
    stars: PhaseSpace,
    region: dict,
    completeness: Completeness | None,
    seed: int,
    progress: bool = False,
) -> RadialProfile | DiskDensity | None:
    """The stars' density from their positions alone, in place of the position flows
    (factorised DF only), or None: nu(r) for a spherical fit of a whole, centred system
    (``config.radial_density``; not with a completeness, since then the stars' density about
    the origin is not the system's); nu(R, z) for a mirror fit of a survey volume
    (``config.disk_density``)."""
    if not config.flow.factorised:
        return None
    symmetry = config.potential.config.symmetry
    if symmetry == "spherical" and config.radial_density and is_centred(region):
        return RadialProfile.from_radii(stars.r) if completeness is None else None
    if symmetry == "mirror" and config.disk_density and not is_centred(region):
        seed = stream_seed(seed, "disk_density")
        return DiskDensity.fit(stars.x, region, seed, completeness, progress=progress)
    return None


def replicate_inputs(
    ens: FlowEnsemble,
    stars: PhaseSpace,
    region: dict,
    n_points: int,
    cfg: PotentialTraining,
    seed: int,
    device: str,
    radial: bool = False,
) -> Callable[[int], tuple[CBEPoints, JeansMoments | None]]:
    """``sample(b)``: replicate b's CBE points and Jeans moments (the ``fit_replicates`` input).

    Replicate b draws ``n_points`` points (at most ``REPLICATE_POINTS``, as many as its
    calibration was measured with) from flow member b (cycling) with that member's
    gradients, and its Jeans moments (settings ``cfg``) and, with ``radial``, its radial
    profile from a bootstrap resample of the stars; ``seed`` is the run's seed (streams
    ``replicate_points``, ``replicate_stars``).
    """

    def sample(b: int) -> tuple[CBEPoints, JeansMoments | None]:
        rng = np.random.default_rng(stream_seed(seed, "replicate_stars", b))
        rows = rng.integers(0, len(stars), len(stars))
        resampled = stars.subset(rows)
        pts, _ = draw_cbe_points(
            [ens.subset([b % ens.k])],
            min(n_points, REPLICATE_POINTS),
            region,
            stream_seed(seed, "replicate_points", b),
            Completeness.from_meta(stars.meta),
            RadialProfile.from_radii(resampled.r) if radial else None,
        )
        return pts, jeans_moments(resampled, region, cfg, seed, device)

    return sample
