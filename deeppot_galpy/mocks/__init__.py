"""Stellar systems with known answers: exact samples plus the true Phi, forces, density, f."""

from importlib.util import find_spec

from .base import MockSystem
from .disk import MiyamotoNagaiDisk
from .hernquist import HernquistOM
from .nfw import NFW
from .plummer import Plummer

__all__ = ["MockSystem", "HernquistOM", "MiyamotoNagaiDisk", "NFW", "Plummer", "get_mock"]

_REGISTRY: dict[str, type[MockSystem]] = {
    "plummer": Plummer,
    "hernquist_om": HernquistOM,
    "nfw": NFW,
    "mn_disk": MiyamotoNagaiDisk,
}
if find_spec("agama") is not None:  # the optional Agama disk, listed only where it can run
    from ..agama import AgamaDiskMock

    _REGISTRY[AgamaDiskMock.name] = AgamaDiskMock


def get_mock(name: str, **params) -> MockSystem:
    """A mock system by name (see ``available_mocks()``), with its parameters."""
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown mock {name!r}; available: {sorted(_REGISTRY)}") from None
    return cls(**params)


def available_mocks() -> list[str]:
    return sorted(_REGISTRY)
