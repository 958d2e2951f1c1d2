"""Run directories: everything needed to reload a fit, with no pickles.

Layout (``deeppot demo`` and ``deeppot fit`` write the same)::

    RUN_DIR/
      run.json              config, seed, versions, units, frame parameters, data summary
      metrics.json          accuracy metrics (against truth where known) and timings
      flows.safetensors     flow-ensemble weights       + flows.json     (architecture, hash)
      potential.safetensors potential-network weights   + potential.json (scales, units, region)
      potential_replicates.safetensors  bootstrap replicates, if any (error bars)  + .json
      figures/*.png
      checkpoints/          while a fit runs: resumable training states (see checkpoint.py)

Weights are stored with ``safetensors`` (no code execution on load); each ``NAME.json`` records
the architecture and the SHA-256 of its weights file, so a corrupt, truncated or mismatched
file is reported as such instead of loading garbage. Every file is written atomically (temporary
file, fsync, rename), so a crash never leaves a half-written file under a final name. Those
primitives live in :mod:`~deeppot_galpy.storage`; this module adds the layout and the models.
"""

from __future__ import annotations

import os
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch

# the storage primitives are re-exported: callers have imported them from here
from .storage import (
    FORMAT_VERSION,
    ModelFileError,
    atomic_write_bytes,
    read_json,
    read_tensors,
    write_json,
    write_tensors,
)

__all__ = [
    "ModelFileError",
    "RunDir",
    "atomic_write_bytes",
    "read_tensors",
    "software_versions",
    "write_tensors",
]


def software_versions() -> dict[str, str]:
    """Versions of the packages a result depends on."""
    import platform

    import astropy
    import galpy
    import numpy
    import zuko

    return {
        # the installed distribution's version, not the package's __init__: this module sits
        # below the package's front door and must not import it
        "deeppot_galpy": version("deeppot-galpy"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "zuko": zuko.__version__,
        "numpy": numpy.__version__,
        "galpy": galpy.__version__,
        "astropy": astropy.__version__,
    }


class RunDir:
    """A run directory (see the module docstring for its layout)."""

    def __init__(self, path: str | os.PathLike, create: bool = False):
        self.path = Path(path)
        if create:
            (self.path / "figures").mkdir(parents=True, exist_ok=True)
        elif not self.path.is_dir():
            raise FileNotFoundError(f"run directory {self.path} does not exist")

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def write_json(self, name: str, obj: Any) -> Path:
        p = self.path / f"{name}.json"
        write_json(p, obj)
        return p

    def read_json(self, name: str) -> dict:
        p = self.path / f"{name}.json"
        if not p.exists():
            raise ModelFileError(f"{p} is missing: is {self.path} a deeppot run directory?")
        return read_json(p)

    def has(self, name: str) -> bool:
        return (self.path / f"{name}.safetensors").exists() and (
            self.path / f"{name}.json"
        ).exists()

    def save_module(self, name: str, module: torch.nn.Module, metadata: dict) -> None:
        """Weights to NAME.safetensors, then metadata (with the weights' hash) to NAME.json."""
        digest = write_tensors(self.path / f"{name}.safetensors", module.state_dict())
        record = {
            "format_version": FORMAT_VERSION,
            "kind": name,
            "sha256": digest,
            "metadata": metadata,
        }
        self.write_json(name, record)

    def load_metadata(self, name: str) -> dict:
        record = self.read_json(name)
        if record.get("format_version") != FORMAT_VERSION or "metadata" not in record:
            raise ModelFileError(
                f"{self.path / (name + '.json')} is not a deeppot {name} record of format "
                f"{FORMAT_VERSION} (found format {record.get('format_version')!r})"
            )
        return record["metadata"]

    def load_module(self, name: str, module: torch.nn.Module) -> torch.nn.Module:
        """Load NAME.safetensors into ``module`` after checking it against NAME.json."""
        record = self.read_json(name)
        wpath = self.path / f"{name}.safetensors"
        state = read_tensors(wpath, record.get("sha256"), f"{name}.json")
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ModelFileError(
                f"{wpath} does not fit the architecture in {name}.json: {exc}"
            ) from exc
        return module

    def save_potential(self, net, units, region: dict, extra: dict | None = None) -> None:
        """Save a PotentialNet with what a reader needs: architecture, units and data region.

        ``units`` is a :class:`~deeppot_galpy.units.Units`; ``region`` is
        :meth:`PhaseSpace.region() <deeppot_galpy.phasespace.PhaseSpace.region>` of the stars.
        """
        meta = {"network": net.metadata(), "units": units.to_dict(), "region": region}
        meta.update(extra or {})
        self.save_module("potential", net, meta)

    def load_potential(self):
        """The trained :class:`~deeppot_galpy.potential.PotentialNet` and its metadata."""
        from .potential import PotentialNet

        meta = self.load_metadata("potential")
        try:
            net = PotentialNet.from_metadata(meta["network"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"potential.json has an invalid architecture: {exc}") from exc
        self.load_module("potential", net).eval()
        return net, meta

    def save_replicates(self, nets: list) -> None:
        """Save the bootstrap replicates of the potential (one file; same architecture)."""
        meta = {"network": nets[0].metadata(), "n": len(nets)}
        self.save_module("potential_replicates", torch.nn.ModuleList(nets), meta)

    def load_replicates(self) -> list:
        """The bootstrap replicates of the potential; an empty list if the run has none."""
        from .potential import PotentialNet

        if not (self.path / "potential_replicates.json").exists():
            return []
        meta = self.load_metadata("potential_replicates")
        try:
            nets = [PotentialNet.from_metadata(meta["network"]) for _ in range(int(meta["n"]))]
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(
                f"potential_replicates.json has an invalid architecture: {exc}"
            ) from exc
        self.load_module("potential_replicates", torch.nn.ModuleList(nets))
        return [net.eval() for net in nets]

    def save_flows(self, ens, name: str = "flows", extra: dict | None = None) -> None:
        """Save a FlowEnsemble under NAME (``flows``)."""
        meta = {"ensemble": ens.metadata()}
        meta.update(extra or {})
        self.save_module(name, ens, meta)

    def load_flows(self, name: str = "flows"):
        """The trained :class:`~deeppot_galpy.df.FlowEnsemble` saved as NAME, and its metadata."""
        from .df import FlowEnsemble

        meta = self.load_metadata(name)
        try:
            ens = FlowEnsemble.from_metadata(meta["ensemble"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{name}.json has an invalid architecture: {exc}") from exc
        self.load_module(name, ens).eval()
        return ens, meta
