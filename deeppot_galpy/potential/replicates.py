r"""Bootstrap replicates of the potential: the spread behind the error bars.

A replicate refits the potential, starting from the main fit, on a resampled version of what
the fit saw:

* CBE points drawn from one flow member, with that member's :math:`\nabla\ln f` (member
  :math:`b \bmod K` for replicate :math:`b`). The gradient errors of two members trained on
  the same stars correlate at only 0.3-0.4 (``benchmarks/RESULTS.md``), so the scatter
  between members carries much of the flows' error into the potential;
* the weak-form Jeans moments of a bootstrap resample of the stars (the sampling noise of
  the amplitude constraint);
* its own minibatch order.

The standard deviation over the replicates of :math:`\Phi`, :math:`-\nabla\Phi` and
:math:`\nabla^2\Phi/4\pi G` is the quoted :math:`1\sigma` error of the main fit. It leaves
out what all flow members get wrong together (their smoothing of a cusp, say); how well it
covers the truth is measured on mocks (:func:`deeppot_galpy.compare.coverage`).

:math:`\Phi` has a free zero point: each replicate's is set so that its mean over the
reference points (the main fit's CBE points) equals the main fit's, so
:math:`\sigma_\Phi` is the error of :math:`\Phi` relative to its mean over the data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import torch
from tqdm.auto import tqdm

from .fit import CBEPoints, PotentialTraining, fit_potential
from .jeans import JeansMoments
from .network import PotentialNet

__all__ = ["fit_replicates", "replicate_spread"]


def fit_replicates(
    base: PotentialNet,
    sample: Callable[[int], tuple[CBEPoints, JeansMoments | None]],
    cfg: PotentialTraining,
    x_ref: np.ndarray,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> list[PotentialNet]:
    """``cfg.replicates`` refits of ``base``, replicate b on the data ``sample(b)``.

    Each runs ``cfg.replicate_steps`` steps of ``cfg``'s training (its time budget scaled by
    the same fraction of ``cfg.steps``) and gets the zero point of ``base`` over ``x_ref``.
    ``sample`` is called once per replicate, so only one resample is held in memory.
    """
    budget = cfg.time_budget_s and cfg.time_budget_s * cfg.replicate_steps / cfg.steps
    sub = replace(cfg, steps=cfg.replicate_steps, time_budget_s=budget or None, replicates=0)
    ref = torch.as_tensor(x_ref, dtype=torch.float32, device=device)
    with torch.no_grad():
        phi0 = base.to(device)(ref).mean()
    nets = []
    for b in tqdm(range(cfg.replicates), desc="replicates", disable=not progress, leave=False):
        points, jeans = sample(b)
        net, _ = fit_potential(
            points, sub, seed + b, device, progress=False, jeans=jeans, init=base
        )
        with torch.no_grad():
            net.mlp[-1].bias += (phi0 - net(ref).mean()) / net.phi_scale
        nets.append(net.eval())
    return nets


def replicate_spread(nets: Sequence[PotentialNet], x: np.ndarray, G: float = 1.0) -> dict:
    """Standard deviation over ``nets`` of ``phi`` (N,), ``acc`` (N, 3), ``density`` (N,) at x."""
    if len(nets) < 2:
        raise ValueError(f"a spread needs at least two replicates, got {len(nets)}")
    evals = [net.evaluate(np.asarray(x)) for net in nets]
    return {
        "phi": np.std([e["phi"] for e in evals], axis=0, ddof=1),
        "acc": np.std([e["acc"] for e in evals], axis=0, ddof=1),
        "density": np.std([e["lap"] for e in evals], axis=0, ddof=1) / (4.0 * np.pi * G),
    }
