"""The potential Phi(x): an MLP fitted to the CBE, in pure torch (no galpy/astropy)."""

from .cbe import LOSSES, cbe_residual, negative_density_penalty, stationarity_loss
from .fit import (
    CBEPoints,
    PotentialTraining,
    cbe_time_power,
    cbe_time_scales,
    fit_potential,
    inner_density_slope,
    jeans_temper_power,
    jeans_weight,
)
from .jeans import JeansMoments
from .network import PotentialConfig, PotentialNet

__all__ = [
    "LOSSES",
    "CBEPoints",
    "JeansMoments",
    "PotentialConfig",
    "PotentialNet",
    "PotentialTraining",
    "cbe_residual",
    "cbe_time_power",
    "cbe_time_scales",
    "jeans_temper_power",
    "jeans_weight",
    "fit_potential",
    "inner_density_slope",
    "negative_density_penalty",
    "stationarity_loss",
]
