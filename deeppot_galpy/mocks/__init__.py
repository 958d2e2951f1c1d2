"""Stellar systems with known answers: exact samples plus the true Phi, forces, density, f."""

import inspect
import json
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
    "mock_from_record",
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


def _mock_class(name: str) -> type[MockSystem]:
    if name == _AGAMA_DISK and name in _LISTED:
        from ..agama import AgamaDiskMock

        return AgamaDiskMock
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown mock {name!r}; available: {_LISTED}") from None


def get_mock(name: str, **params) -> MockSystem:
    """A mock system by name (see ``available_mocks()``), with its parameters."""
    return _mock_class(name)(**params)


def mock_from_record(record: dict) -> MockSystem:
    """The mock a run's record (:meth:`MockSystem.describe`: name and params) describes.

    A record's params hold the constructor's arguments and values that follow from them (a
    Hernquist sphere's M = a = 1, a disk's mass); the mock is built from the arguments and
    must describe itself with the same params, so a record written by another version of a
    mock is refused (ValueError) rather than read as today's.
    """
    name, params = record["name"], dict(record.get("params") or {})
    accepted = inspect.signature(_mock_class(name).__init__).parameters
    mock = get_mock(name, **{k: v for k, v in params.items() if k in accepted})
    # the record went through JSON; so does the comparison
    if json.loads(json.dumps(mock.params)) != json.loads(json.dumps(params)):
        raise ValueError(
            f"the recorded {name!r} mock ({params}) is not what today's code builds from its "
            f"arguments ({mock.params})"
        )
    return mock


def available_mocks() -> list[str]:
    return sorted(_LISTED)
