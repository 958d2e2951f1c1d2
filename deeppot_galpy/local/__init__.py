"""The solar neighbourhood: local dynamical quantities with error bars, and local-volume figures."""

from . import quantities
from .figures import plot_local
from .quantities import *  # noqa: F403  (the names listed in quantities.__all__)

__all__ = [*quantities.__all__, "plot_local"]
