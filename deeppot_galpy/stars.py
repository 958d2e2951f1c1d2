"""The stars a fit runs on: checked once, summarised, and hashed for resuming.

A fit takes a :class:`~deeppot_galpy.phasespace.PhaseSpace`, or an (N, 6) float array of
(x, v) that may be memory-mapped from a ``.npy`` file (a catalog too large to copy). The
stages then use :class:`Stars`: ``eta`` (N, 6) as given, and ``summary``, all the stars or,
above 2**21 rows, a random subset of that size, for what needs them in memory (the
standardisation, the region, the Jeans moments, the figures).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from .phasespace import PhaseSpace
from .units import Units

__all__ = ["Stars"]

# percentiles of 2^21 stars are accurate to ~1e-3, and the full set may not fit in memory twice
_SUMMARY_ROWS = 2**21
_CHUNK_ROWS = 2**20  # rows per chunk when scanning a (memory-mapped) array


@dataclass
class Stars:
    """The stars in the form the stages use: ``eta`` (N, 6) may be a memory map."""

    eta: np.ndarray
    units: Units
    meta: dict
    summary: PhaseSpace  # all the stars, or _SUMMARY_ROWS of them at random

    @classmethod
    def of(cls, data: PhaseSpace | np.ndarray, units: Units | None, meta: dict | None) -> Stars:
        """Check ``data`` (finite (N, 6) floats; ``units`` default N-body) and summarise it."""
        if isinstance(data, PhaseSpace):
            eta, units, meta = data.eta, data.units, data.meta
        else:
            eta, units, meta = data, units or Units.nbody(), dict(meta or {})
            if eta.ndim != 2 or eta.shape[1] != 6 or eta.dtype.kind != "f":
                raise ValueError(
                    f"star array must be (N, 6) floats (x, v); got {eta.shape} {eta.dtype}"
                )
            bad = sum(
                int((~np.isfinite(eta[i : i + _CHUNK_ROWS]).all(1)).sum())
                for i in range(0, len(eta), _CHUNK_ROWS)
            )
            if bad:
                raise ValueError(f"{bad} of {len(eta)} stars have NaN/inf values; drop them first")
        if len(eta) <= _SUMMARY_ROWS:
            summary = (
                data if isinstance(data, PhaseSpace) else PhaseSpace.from_eta(eta, units, meta)
            )
        else:
            # a fixed subset (not a random stream of the run): the same stars give the same
            # standardisation and region whatever the seed
            rows = np.sort(np.random.default_rng(0).choice(len(eta), _SUMMARY_ROWS, replace=False))
            if isinstance(data, PhaseSpace):
                summary = data.subset(rows)
            else:
                summary = PhaseSpace.from_eta(eta[rows], units, meta)
        return cls(eta, units, meta, summary)

    def sha256(self) -> str:
        """SHA-256 of the float64 (x, v) rows, read in chunks."""
        h = hashlib.sha256()
        for i in range(0, len(self.eta), _CHUNK_ROWS):
            h.update(np.ascontiguousarray(self.eta[i : i + _CHUNK_ROWS], np.float64).tobytes())
        return h.hexdigest()
