r"""Error bars of a fitted potential in galpy's units, from its bootstrap replicates.

A run fitted with ``replicates = N`` (``[potential]`` config table, or ``--replicates N``)
stores N refits of the potential on resampled data
(:mod:`deeppot_galpy.potential.replicates`). Their standard deviation is the
:math:`1\sigma` error of the main fit, for any quantity galpy computes:

.. math:: \sigma_Q = \Big[\tfrac{1}{N-1}\sum_b (Q_b - \bar Q)^2\Big]^{1/2} .

It covers the sampling noise of the stars and the scatter between flow members, not what
all members get wrong together; ``metrics.json`` of a mock run reports how often the truth
fell within the quoted :math:`1\sigma` and :math:`2\sigma` (``coverage``), and
``benchmarks/RESULTS.md`` the coverage on the mocks. Errors on :math:`\Phi` are relative to
its mean over the data (the zero point every replicate shares).

    >>> pot = DeepPotential.load(run, ro=8.0, vo=220.0)
    >>> reps = DeepPotential.load_replicates(run, ro=8.0, vo=220.0)
    >>> R = np.linspace(4, 12, 9) * u.kpc
    >>> bars = error_bars(reps, R, z=0.0 * u.kpc)
    >>> pot.vcirc(R, phi=0.0), bars["vcirc"]          # value and 1 sigma, in km/s
    >>> error_bars(reps, R, quantity=True)            # the same as astropy Quantities
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from astropy import units as u

from .potential.replicates import calibration, replicate_std

__all__ = ["QUANTITIES", "error_bars"]

#: what :func:`error_bars` reports, as galpy methods of a potential at (R, z, phi)
QUANTITIES = {
    "phi": lambda p, R, z, phi, kw: p(R, z, phi=phi, **kw),
    "Rforce": lambda p, R, z, phi, kw: p.Rforce(R, z, phi=phi, **kw),
    "zforce": lambda p, R, z, phi, kw: p.zforce(R, z, phi=phi, **kw),
    "dens": lambda p, R, z, phi, kw: p.dens(R, z, phi=phi, **kw),
    "vcirc": lambda p, R, z, phi, kw: p.vcirc(R, phi=phi, **kw),
}


#: the calibration (SIGMA_CALIBRATION) each quantity takes
KINDS = {"phi": "phi", "Rforce": "force", "zforce": "force", "dens": "density", "vcirc": "force"}


def error_bars(
    replicates: Sequence[Any],
    R: Any,
    z: Any = 0.0,
    phi: Any = 0.0,
    quantities: Sequence[str] = tuple(QUANTITIES),
    factors: Mapping[str, float] | None = None,
    **galpy_kwargs: Any,
) -> dict[str, Any]:
    """1-sigma errors of galpy ``quantities`` at (R, z, phi) from the replicates' spread.

    ``replicates`` are galpy potentials (:meth:`DeepPotential.load_replicates
    <deeppot_galpy.galpy_potential.DeepPotential.load_replicates>`); R, z, phi are what
    galpy takes (numbers in natural units, or Quantities). Each error is in the units galpy
    returns the quantity in (physical output on: km/s, kpc, Msun/pc^3, ... as floats, or
    Quantities with ``quantity=True``); ``galpy_kwargs`` go to every galpy call.
    ``vcirc`` is in the plane (its z is ignored). ``factors`` calibrate the spread per kind
    (``"phi"``, ``"force"``, ``"density"``); by default those the replicates' fit recorded
    (:attr:`DeepPotential.error_calibration
    <deeppot_galpy.galpy_potential.DeepPotential.error_calibration>`).
    """
    if len(replicates) < 2:
        raise ValueError(
            f"error bars need at least two replicates, got {len(replicates)}: fit with "
            "`replicates = N` (N >= 2) in [potential], or --replicates N"
        )
    unknown = set(quantities) - set(QUANTITIES)
    if unknown:
        raise ValueError(f"unknown quantities {sorted(unknown)}; use some of {list(QUANTITIES)}")
    if factors is None:  # a DeepPotential's replicates know their fit's calibration
        factors = getattr(replicates[0], "error_calibration", None) or calibration(None)
    out = {}
    for name in quantities:
        values = [QUANTITIES[name](p, R, z, phi, galpy_kwargs) for p in replicates]
        stacked = u.Quantity(values) if isinstance(values[0], u.Quantity) else np.array(values)
        out[name] = replicate_std(stacked, KINDS[name], factors)
    return out
