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
:math:`\nabla^2\Phi/4\pi G`, times a calibration factor per kind of quantity
(:data:`SIGMA_CALIBRATION`), is the quoted :math:`1\sigma` error of the main fit. The raw
spread leaves out what all flow members get wrong together (their smoothing of a cusp or of a
thin disk, say), so on the mocks it covers the truth far less often than a :math:`1\sigma`
should; the factors are measured there (``benchmarks/calibration.py``: the 68.3rd percentile
of |error| / raw spread, pooled over the mocks at the default preset) and are the same for
every fit. How well the calibrated errors cover is reported per mock
(:func:`deeppot_galpy.compare.coverage`, ``benchmarks/RESULTS.md``).

:math:`\Phi` has a free zero point: each replicate's is set so that its mean over the
reference points (the main fit's CBE points) equals the main fit's, so
:math:`\sigma_\Phi` is the error of :math:`\Phi` relative to its mean over the data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .fit import CBEPoints, PotentialTraining, fit_potential
from .jeans import JeansMoments
from .network import PotentialNet

__all__ = ["SIGMA_CALIBRATION", "fit_replicates", "replicate_spread", "replicate_std"]

#: Factor on the replicates' standard deviation per kind of quantity: potential, force (and
#: what follows from it: v_c, Oort's constants, K_z) and density. Measured by
#: benchmarks/calibration.py on five default-preset runs (Plummer, NFW, Osipkov-Merritt
#: Hernquist, the local disk noiseless and with DR3-like errors): 2.76, 2.73, 2.59.
SIGMA_CALIBRATION: dict[str, float] = {"phi": 2.8, "force": 2.7, "density": 2.6}


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


def replicate_std(values: Any, kind: str, calibrated: bool = True) -> Any:
    """The 1-sigma error from replicate ``values`` (replicates along axis 0; numpy arrays or
    astropy Quantities): their standard deviation, times ``SIGMA_CALIBRATION[kind]``."""
    factor = SIGMA_CALIBRATION[kind] if calibrated else 1.0
    return np.std(values, axis=0, ddof=1) * factor


def replicate_spread(
    nets: Sequence[PotentialNet], x: np.ndarray, G: float = 1.0, calibrated: bool = True
) -> dict:
    """1-sigma errors of ``phi`` (N,), ``acc`` (N, 3), ``density`` (N,) at x from ``nets``
    (:func:`replicate_std`; ``calibrated=False``: the raw standard deviation)."""
    if len(nets) < 2:
        raise ValueError(f"a spread needs at least two replicates, got {len(nets)}")
    evals = [net.evaluate(np.asarray(x)) for net in nets]
    return {
        "phi": replicate_std([e["phi"] for e in evals], "phi", calibrated),
        "acc": replicate_std([e["acc"] for e in evals], "force", calibrated),
        "density": replicate_std([e["lap"] for e in evals], "density", calibrated)
        / (4.0 * np.pi * G),
    }
