"""The solar neighbourhood: local dynamical quantities with error bars, and local-volume figures."""

from .quantities import BARYONIC_MODELS, LocalQuantities, baryonic_model, local_quantities, sun_cyl

__all__ = ["BARYONIC_MODELS", "LocalQuantities", "baryonic_model", "local_quantities", "sun_cyl"]
