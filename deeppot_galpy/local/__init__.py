"""The solar neighbourhood: local dynamical quantities with error bars, and local-volume figures."""

from .figures import plot_local
from .quantities import (
    BARYONIC_MODELS,
    LocalQuantities,
    baryonic_model,
    galpy_quantity,
    load_run,
    local_quantities,
    run_truth,
    sun_cyl,
)

__all__ = [
    "BARYONIC_MODELS",
    "LocalQuantities",
    "baryonic_model",
    "galpy_quantity",
    "load_run",
    "local_quantities",
    "plot_local",
    "run_truth",
    "sun_cyl",
]
