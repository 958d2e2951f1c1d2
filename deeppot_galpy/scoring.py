"""A mock run scored against its true system: the potential, the DF gradients, the error bars.

Held-out stars are drawn afresh from the true system (the ``held_out`` stream of the run's
seed, :mod:`deeppot_galpy.seeds`, independent of the stars the run was fitted on) and the
scores are taken inside the system's well-sampled radii ``truth.r_range`` (or its scoring
ball ``truth.region``, for a system seen only in part). The metrics
themselves are defined once, in :mod:`deeppot_galpy.compare`.
"""

from __future__ import annotations

import numpy as np

from .compare import coverage, gradient_errors, in_region, potential_metrics
from .df import FlowEnsemble
from .mocks import MockSystem
from .potential import PotentialNet
from .potential.replicates import calibration, replicate_spread
from .seeds import stream_seed

__all__ = ["score_against_truth"]


def score_against_truth(
    net: PotentialNet,
    ens: FlowEnsemble,
    truth: MockSystem,
    seed: int,
    replicates: list[PotentialNet] | None = None,
    n_eval: int = 2**14,
    factors: dict[str, float] | None = None,
) -> dict:
    """Potential and DF-gradient errors on held-out stars of the true system, in its r_range.

    Parameters
    ----------
    net, ens : the fitted potential and flow ensemble (on the CPU).
    truth : the mock the stars came from.
    seed : the run's seed (the held-out stars come from its ``held_out`` stream).
    replicates : bootstrap replicates of ``net``; if given, also the coverage of their error
        bars (:func:`~deeppot_galpy.compare.coverage`), calibrated by ``factors`` (the fit's
        :func:`~deeppot_galpy.potential.replicates.calibration`; default: a whole system's).
    n_eval : held-out stars drawn (those outside ``truth.r_range`` or ``truth.region`` are not
        scored).

    Returns
    -------
    dict : ``potential`` (:func:`~deeppot_galpy.compare.potential_metrics`), ``coverage``
    with replicates, and ``df`` (:func:`~deeppot_galpy.compare.gradient_errors`) where the
    mock knows its grad ln f.
    """
    held_out = truth.sample(n_eval, stream_seed(seed, "held_out"))
    if truth.region is not None:
        pot = potential_metrics(net, truth, held_out.x, truth.units.G, region=truth.region)
        sel = in_region(held_out.x, truth.region)
    else:
        pot = potential_metrics(net, truth, held_out.x, truth.units.G, r_range=truth.r_range)
        sel = (held_out.r >= truth.r_range[0]) & (held_out.r <= truth.r_range[1])
    out: dict = {"potential": pot}
    if replicates:
        x = held_out.x[sel]
        spread = replicate_spread(replicates, x, truth.units.G, factors or calibration(None))
        out["coverage"] = coverage(net, truth, x, spread, truth.units.G)
    try:
        gx, gv = truth.grad_log_df(held_out.x, held_out.v)
    except NotImplementedError:
        return out
    _, g = ens.log_prob_and_grad(held_out.eta[sel])
    out["df"] = gradient_errors(g, np.concatenate([gx, gv], axis=1)[sel])
    return out
