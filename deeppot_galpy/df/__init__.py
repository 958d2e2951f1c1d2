"""The distribution function f(x, v): normalizing flows in pure torch (no galpy/astropy)."""

from .ensemble import FlowEnsemble, FlowTraining, train_flow
from .flows import FlowConfig, PhaseSpaceFlow

__all__ = ["FlowConfig", "FlowEnsemble", "FlowTraining", "PhaseSpaceFlow", "train_flow"]
