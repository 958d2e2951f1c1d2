"""deeppot-galpy: a galaxy's gravitational potential from one phase-space snapshot.

Deep Potential (Green & Ting 2020): fit the distribution function f(x, v) of stars with
normalizing flows, then the potential Phi(x) that makes f stationary under the collisionless
Boltzmann equation, and hand Phi to galpy.

    catalog / SkyCoord / mock -> PhaseSpace -> FlowEnsemble -> fit_potential -> DeepPotential
"""

__version__ = "0.1.0"

from .df import FlowEnsemble  # noqa: E402
from .galpy_potential import DeepPotential  # noqa: E402
from .phasespace import PhaseSpace, Standardization  # noqa: E402
from .pipeline import fit, fit_catalog, run_demo  # noqa: E402
from .potential import PotentialNet, fit_potential  # noqa: E402
from .units import Units  # noqa: E402

__all__ = [
    "DeepPotential",
    "FlowEnsemble",
    "PhaseSpace",
    "PotentialNet",
    "Standardization",
    "Units",
    "__version__",
    "fit",
    "fit_catalog",
    "fit_potential",
    "run_demo",
]
