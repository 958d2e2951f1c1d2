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
of |error| / raw spread, pooled over the mocks at the default preset), one set for whole
systems and one for survey volumes away from the galaxy's centre (:func:`calibration`): what
the flows share differs between the two (a cusp or a thin disk smoothed by every member, a
local disk's few populations of stars). How well the calibrated errors cover is reported per
mock (:func:`deeppot_galpy.compare.coverage`, ``benchmarks/RESULTS.md``).

:math:`\Phi` has a free zero point: each replicate's is set so that its mean over the
reference points (the main fit's CBE points) equals the main fit's, so
:math:`\sigma_\Phi` is the error of :math:`\Phi` relative to its mean over the data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..compare import is_centred
from .fit import CBEPoints, PotentialTraining, fit_potential
from .jeans import JeansMoments
from .network import PotentialNet

__all__ = [
    "SIGMA_CALIBRATION",
    "VOLUME_CALIBRATION",
    "calibration",
    "fit_replicates",
    "replicate_spread",
    "replicate_std",
]

#: Factor on the replicates' standard deviation per kind of quantity for a whole system:
#: potential, force (and what follows from it: v_c, Oort's constants, K_z) and density.
#: Measured by benchmarks/calibration.py on five default-preset runs (Plummer, NFW,
#: Osipkov-Merritt Hernquist, the local disk noiseless and with DR3-like errors): 2.76, 2.73,
#: 2.59.
SIGMA_CALIBRATION: dict[str, float] = {"phi": 2.8, "force": 2.7, "density": 2.6}

#: The same for the field of a survey volume away from the galaxy's centre: measured on four
#: default-preset fits of the package's local-disk mocks (noiseless, two samples; DR3-like
#: errors, two disks): 0.46, 1.17, 2.27, and 0.40-0.52, 1.08-1.25, 2.0-2.7 leaving out any one
#: (RESULTS.md, section 17). The replicates see more of a local fit's force error than of a
#: whole system's (a sphere's cusp, every member smooths alike); the local quantities at the
#: Sun keep the whole-system factors (:data:`deeppot_galpy.local.LOCAL_CALIBRATION`).
VOLUME_CALIBRATION: dict[str, float] = {"phi": 0.5, "force": 1.2, "density": 2.3}


def calibration(region: dict | None) -> dict[str, float]:
    """The factors on the replicates' spread for a fit of the data ``region``
    (:meth:`~deeppot_galpy.phasespace.PhaseSpace.region`): :data:`VOLUME_CALIBRATION` for a
    survey volume away from the galaxy's centre, else (or without a region)
    :data:`SIGMA_CALIBRATION`."""
    return (
        VOLUME_CALIBRATION if region is not None and not is_centred(region) else SIGMA_CALIBRATION
    )


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


def replicate_std(
    values: Any, kind: str, factors: Mapping[str, float] | None = SIGMA_CALIBRATION
) -> Any:
    """The 1-sigma error from replicate ``values`` (replicates along axis 0; numpy arrays or
    astropy Quantities): their standard deviation, times ``factors[kind]`` (the fit's
    :func:`calibration`; None: the raw standard deviation)."""
    return np.std(values, axis=0, ddof=1) * (factors[kind] if factors else 1.0)


def replicate_spread(
    nets: Sequence[PotentialNet],
    x: np.ndarray,
    G: float = 1.0,
    factors: Mapping[str, float] | None = SIGMA_CALIBRATION,
) -> dict:
    """1-sigma errors of ``phi`` (N,), ``acc`` (N, 3), ``density`` (N,) at x from ``nets``
    (:func:`replicate_std` with ``factors``; None: the raw standard deviation)."""
    if len(nets) < 2:
        raise ValueError(f"a spread needs at least two replicates, got {len(nets)}")
    evals = [net.evaluate(np.asarray(x)) for net in nets]
    return {
        "phi": replicate_std([e["phi"] for e in evals], "phi", factors),
        "acc": replicate_std([e["acc"] for e in evals], "force", factors),
        "density": replicate_std([e["lap"] for e in evals], "density", factors) / (4.0 * np.pi * G),
    }
