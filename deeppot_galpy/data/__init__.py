"""Star catalogs -> :class:`~deeppot_galpy.phasespace.PhaseSpace` (astropy and numpy only).

``catalog_to_phasespace(source, frame, cuts)`` reads a catalog (file, Table, SkyCoord), applies
:class:`QualityCuts` with a :class:`CutReport` of every row removed, and transforms to
Galactocentric kpc, km/s in the frame :class:`FrameParameters` records. ``make_gaia_mock`` makes
Gaia-like catalogs from a model with a known potential.
"""

from .catalog import CONVENTIONS, catalog_to_phasespace, meta_record, read_catalog
from .cuts import CutReport, CutStep, QualityCuts, TooFewStarsError, Volume
from .frames import (
    FrameParameters,
    galactocentric_to_observables,
    observables_to_galactocentric,
    skycoord_to_galactocentric,
    sun_position,
)
from .gaia_mock import (
    MOCK_MODELS,
    GaiaErrorModel,
    make_gaia_mock,
    sample_model,
    truth_potential,
    write_gaia_mock,
)

__all__ = [
    "CONVENTIONS",
    "MOCK_MODELS",
    "CutReport",
    "CutStep",
    "FrameParameters",
    "GaiaErrorModel",
    "QualityCuts",
    "TooFewStarsError",
    "Volume",
    "catalog_to_phasespace",
    "galactocentric_to_observables",
    "make_gaia_mock",
    "meta_record",
    "observables_to_galactocentric",
    "read_catalog",
    "sample_model",
    "skycoord_to_galactocentric",
    "sun_position",
    "truth_potential",
    "write_gaia_mock",
]
