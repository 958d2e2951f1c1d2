"""deeppot-galpy: a galaxy's gravitational potential from one phase-space snapshot.

Deep Potential (Green & Ting 2020): fit the distribution function f(x, v) of stars with
normalizing flows, then the potential Phi(x) that makes f stationary under the collisionless
Boltzmann equation, and hand Phi to galpy.
"""

__version__ = "0.1.0"

from .phasespace import PhaseSpace, Standardization  # noqa: E402
from .units import Units  # noqa: E402

__all__ = ["PhaseSpace", "Standardization", "Units", "__version__"]
