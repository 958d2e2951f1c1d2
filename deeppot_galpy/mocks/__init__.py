"""Stellar systems with known answers: exact samples plus the true Phi, forces, density, f."""

from importlib.util import find_spec

from .base import MockSystem
from .disk import MiyamotoNagaiDisk
from .hernquist import HernquistBeta, HernquistOM
from .local_disk import LocalDisk
from .nfw import NFW
from .plummer import Plummer

__all__ = [
    "MockSystem",
    "HernquistBeta",
    "HernquistOM",
    "LocalDisk",
    "MiyamotoNagaiDisk",
    "NFW",
    "Plummer",
    "get_mock",
]

_REGISTRY: dict[str, type[MockSystem]] = {
    "plummer": Plummer,
    "hernquist_om": HernquistOM,
    "hernquist_beta": HernquistBeta,
    "nfw": NFW,
    "mn_disk": MiyamotoNagaiDisk,
    "local_disk": LocalDisk,
}
# The optional Agama disk, listed only where it can run, and imported when asked for:
# deeppot_galpy.agama imports this package, so importing it here would be a cycle.
_AGAMA_DISK = "agama_qi_disk"
_LISTED = sorted(_REGISTRY) + ([_AGAMA_DISK] if find_spec("agama") is not None else [])


def get_mock(name: str, **params) -> MockSystem:
    """A mock system by name (see ``available_mocks()``), with its parameters."""
    if name == _AGAMA_DISK and name in _LISTED:
        from ..agama import AgamaDiskMock

        return AgamaDiskMock(**params)
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown mock {name!r}; available: {_LISTED}") from None
    return cls(**params)


def available_mocks() -> list[str]:
    return sorted(_LISTED)
