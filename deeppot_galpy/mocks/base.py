r"""The interface every mock system with a known answer implements.

A mock gives an exact sample of stars (a :class:`~deeppot_galpy.phasespace.PhaseSpace`) and the
truth to score a fit against: the potential :math:`\Phi`, the acceleration
:math:`-\nabla\Phi`, the density :math:`\rho = \nabla^2\Phi / 4\pi G`, and, where known in
closed form, the normalised distribution function :math:`f` and :math:`\nabla \ln f`.
All arrays are in the mock's :class:`~deeppot_galpy.units.Units`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..phasespace import PhaseSpace
from ..units import Units

__all__ = ["MockSystem"]


class MockSystem(ABC):
    """A stationary stellar system with a known potential."""

    name: str = "mock"
    units: Units = Units.nbody()
    #: radii (from the origin) over which the fit is scored: the well-sampled body of the system
    r_range: tuple[float, float] = (0.1, 3.0)
    #: a ball to score in instead (``center``, ``r_min``, ``r_max``), for a system seen only in
    #: part, such as a survey volume around the Sun; None: ``r_range`` about the origin
    region: dict | None = None

    @abstractmethod
    def sample(self, n: int, seed: int) -> PhaseSpace:
        """Draw ``n`` stars exactly from the system's distribution function."""

    @abstractmethod
    def potential(self, x: np.ndarray) -> np.ndarray:
        """Phi at positions ``x`` (N, 3)."""

    @abstractmethod
    def acceleration(self, x: np.ndarray) -> np.ndarray:
        """-grad Phi at ``x`` (N, 3)."""

    @abstractmethod
    def density(self, x: np.ndarray) -> np.ndarray:
        """Mass density lap Phi / (4 pi G) at ``x`` (N, 3)."""

    def log_df(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        """ln f(x, v), f normalised to unit mass. Not every mock has it in closed form."""
        raise NotImplementedError(f"{self.name} has no closed-form distribution function")

    def grad_log_df(self, x: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(grad_x ln f, grad_v ln f), each (N, 3)."""
        raise NotImplementedError(f"{self.name} has no closed-form distribution function")

    @property
    def params(self) -> dict:
        """The parameters that define the system, recorded in run directories."""
        return {}

    def galpy_potential(self):
        """The true potential as a galpy Potential in natural units matching ``units``."""
        raise NotImplementedError(f"{self.name} has no galpy counterpart")

    def describe(self) -> dict:
        return {"name": self.name, "params": self.params, "units": self.units.to_dict()}
