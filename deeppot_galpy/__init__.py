"""deeppot-galpy: a galaxy's gravitational potential from one phase-space snapshot.

Deep Potential (Green & Ting 2020): fit the distribution function f(x, v) of stars with
normalizing flows, then the potential Phi(x) that makes f stationary under the collisionless
Boltzmann equation, and hand Phi to galpy.

    catalog / SkyCoord / mock -> PhaseSpace -> FlowEnsemble -> fit_potential -> DeepPotential

The public names are imported on first use (PEP 562), so ``import deeppot_galpy.df`` loads torch
and zuko only, not galpy, astropy or the pipeline.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# public name -> the submodule that defines it
_PUBLIC = {
    "DeepPotential": "galpy_potential",
    "FlowEnsemble": "df",
    "PhaseSpace": "phasespace",
    "PotentialNet": "potential",
    "Standardization": "phasespace",
    "Units": "units",
    "fit": "pipeline",
    "fit_catalog": "pipeline",
    "fit_potential": "potential",
    "run_demo": "pipeline",
}

__all__ = sorted(["__version__", *_PUBLIC])


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_PUBLIC[name]}", __name__), name)
    globals()[name] = value  # cache: later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
