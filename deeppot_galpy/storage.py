"""Storage: atomic writes, safetensors I/O and the errors a model file can raise.

Every file the package writes (run directories, checkpoints) goes through here, so that two
properties hold everywhere:

* **Atomic.** A file is written to a temporary name in its directory, fsynced, then renamed
  over the final name (and the directory fsynced), so a reader sees the old file or the new
  one, never a mix; a crash never leaves a half-written file under a final name.
* **Checked, never executed.** Tensors are stored with ``safetensors`` (no code runs on load,
  unlike a pickle); the writer returns the SHA-256 of the bytes it wrote, the caller records it
  in a JSON file, and :func:`read_tensors` refuses a file whose hash differs. A missing,
  corrupt, truncated or mismatched file raises :class:`ModelFileError` saying which.

This module imports no model code (only torch and safetensors), so the training loops in
``df/`` and ``potential/`` and the run directory above them can all use it without a cycle.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

__all__ = [
    "FORMAT_VERSION",
    "ModelFileError",
    "atomic_write_bytes",
    "read_json",
    "read_tensors",
    "write_json",
    "write_tensors",
]

# The version of the JSON records (run-directory models and checkpoints) this code writes and
# reads; a record of another version is refused rather than misread.
FORMAT_VERSION = 1


class ModelFileError(RuntimeError):
    """A model file is missing, corrupt, or does not match its metadata."""


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # the rename itself must reach the disk too, or a power cut can undo it
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: str | os.PathLike, hint: str = "the file is corrupt") -> Any:
    """Parse the JSON file ``path``; :class:`ModelFileError` if it is missing or invalid.

    ``hint`` ends the message of an invalid file (what the reader should do about it).
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path} is missing")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path} is not valid JSON ({exc}); {hint}") from exc


def write_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor]) -> str:
    """Save ``tensors`` to a safetensors file atomically; returns the file's SHA-256."""
    blob = st_save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
    atomic_write_bytes(path, blob)
    return hashlib.sha256(blob).hexdigest()


def read_tensors(path: str | os.PathLike, sha256: str, recorded_in: str) -> dict[str, torch.Tensor]:
    """Load a safetensors file after checking it against the hash recorded in ``recorded_in``."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path} is missing")
    blob = path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != sha256:
        raise ModelFileError(
            f"{path} does not match the hash recorded in {recorded_in}: the file is "
            "corrupt, truncated, or from another run"
        )
    try:
        return st_load(blob)
    except SafetensorError as exc:
        raise ModelFileError(f"{path} is not a valid safetensors file: {exc}") from exc
