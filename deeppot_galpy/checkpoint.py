"""Resumable training: atomic checkpoints of a training loop's state, and the resume check.

A fit of the paper's size trains for hours, often on machines that can be pre-empted; a
``kill -9`` should cost the minutes since the last checkpoint, not the run. Each training loop
(one flow member, the potential) saves its whole state at a set interval
(:class:`CheckpointPolicy`) as two files in ``RUN_DIR/checkpoints``::

    NAME.json                  the commit record: scalars (epoch or step, history, Adam's
                               hyper-parameters and step counts), the name and SHA-256 of the
                               tensors file, and a SHA-256 of the record itself
    NAME.<seq>.safetensors     every tensor: weights, best weights so far, Adam's moments,
                               RNG states (uint8 tensors)

No pickle anywhere: the optimizer's state dict is split into named tensors and JSON scalars.
The order of writes makes a kill harmless at any instant: write the new tensors file (atomic:
temporary file, fsync, rename), replace the record (the commit point), then delete the previous
tensors file. A reader always finds a complete checkpoint, the old one or the new one;
leftovers (temporary files, an uncommitted tensors file) are swept by :func:`clean_stale`.
Loading checks both hashes, so a truncated or edited checkpoint raises
:class:`~deeppot_galpy.storage.ModelFileError` instead of silently restarting from zero.

:func:`check_resume` compares what defines a run (config, seed, data hash, units, frame, cuts)
with the record in ``run.json`` and refuses, naming every difference, to continue a run with
other settings or other stars.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from .storage import (
    FORMAT_VERSION,
    ModelFileError,
    atomic_write_bytes,
    read_json,
    read_tensors,
    write_tensors,
)

__all__ = [
    "Checkpoint",
    "CheckpointPolicy",
    "ResumeError",
    "check_resume",
    "clean_stale",
    "restore_training_state",
    "training_state",
]


@dataclass(frozen=True)
class CheckpointPolicy:
    """How often training loops save their state (does not change results)."""

    flow_epochs: int = 1  # a flow member's state after every this many epochs
    potential_steps: int = 500  # the potential's state after every this many steps
    seconds: float = 0.0  # also whenever this long has passed since the last save (0: off)

    def __post_init__(self) -> None:
        if self.flow_epochs < 1 or self.potential_steps < 1 or self.seconds < 0:
            raise ValueError(
                f"checkpoint intervals must be positive (flow_epochs={self.flow_epochs}, "
                f"potential_steps={self.potential_steps}, seconds={self.seconds})"
            )

    def to_dict(self) -> dict:
        return asdict(self)


def _record_hash(record: dict) -> str:
    body = {k: v for k, v in record.items() if k != "record_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class Checkpoint:
    """The latest saved state of one training loop, ``DIRECTORY/NAME.json`` (+ tensors).

    ``every`` and ``seconds`` set :meth:`due`: after every ``every`` epochs or steps, or when
    ``seconds`` (> 0) have passed since the last save.
    """

    def __init__(self, directory: str | Path, name: str, every: int = 1, seconds: float = 0.0):
        self.directory = Path(directory)
        self.name = name
        self.every = every
        self.seconds = seconds
        self._file: str | None = None  # the committed tensors file, once loaded or saved
        self._last_save = time.monotonic()

    def __repr__(self) -> str:
        return f"Checkpoint({str(self.record_path)!r})"

    @property
    def record_path(self) -> Path:
        return self.directory / f"{self.name}.json"

    def due(self, count: int) -> bool:
        """Whether to save after ``count`` epochs (or steps) of training."""
        if count % self.every == 0:
            return True
        return self.seconds > 0 and time.monotonic() - self._last_save >= self.seconds

    def save(self, tensors: dict[str, Tensor], state: dict) -> None:
        """Commit a new checkpoint: tensors file, then record, then drop the previous file."""
        self.directory.mkdir(parents=True, exist_ok=True)
        seq = int(self._file.rsplit(".", 2)[1]) + 1 if self._file else 1
        fname = f"{self.name}.{seq:06d}.safetensors"
        digest = write_tensors(self.directory / fname, tensors)
        # normalise through JSON first, so the hash is of exactly what a reader will parse
        record = json.loads(
            json.dumps(
                {
                    "format_version": FORMAT_VERSION,
                    "name": self.name,
                    "file": fname,
                    "sha256": digest,
                    "state": state,
                }
            )
        )
        record["record_sha256"] = _record_hash(record)
        atomic_write_bytes(self.record_path, json.dumps(record, sort_keys=True).encode())
        if self._file and self._file != fname:
            (self.directory / self._file).unlink(missing_ok=True)
        self._file = fname
        self._last_save = time.monotonic()

    def load(self) -> tuple[dict[str, Tensor], dict] | None:
        """(tensors, state) of the committed checkpoint, or None if there is none yet."""
        path = self.record_path
        if not path.exists():
            return None
        hint = f"delete {path} (and its tensors file) to redo this stage from zero"
        record = read_json(path, hint)
        if not isinstance(record, dict) or record.get("format_version") != FORMAT_VERSION:
            raise ModelFileError(f"{path} is not a deeppot checkpoint of format {FORMAT_VERSION}")
        if _record_hash(record) != record.get("record_sha256"):
            raise ModelFileError(
                f"checkpoint {path} does not match its recorded hash: it was edited or "
                f"corrupted; {hint}"
            )
        try:
            tensors = read_tensors(self.directory / record["file"], record["sha256"], path.name)
        except ModelFileError as exc:
            raise ModelFileError(f"{exc}; {hint}") from exc
        self._file = record["file"]
        return tensors, record["state"]


def clean_stale(run_dir: str | Path) -> list[Path]:
    """Remove what a killed process can leave behind; returns the removed paths.

    That is temporary files of interrupted atomic writes (``.NAME.*.tmp``) and checkpoint
    tensor files that no record refers to (written, but killed before the commit).
    Run it while no other process writes to the directory.
    """
    run_dir = Path(run_dir)
    stale = list(run_dir.rglob(".*.tmp"))
    ckpt = run_dir / "checkpoints"
    if ckpt.is_dir():
        pattern = re.compile(r"(.+)\.\d{6}\.safetensors")
        for f in ckpt.glob("*.safetensors"):
            m = pattern.fullmatch(f.name)
            if m is None:
                continue
            record = ckpt / f"{m.group(1)}.json"
            committed = None
            if record.exists():
                try:
                    committed = json.loads(record.read_text())["file"]
                except (OSError, ValueError, KeyError, TypeError):
                    continue  # an unreadable record: leave its files for load() to report
            if f.name != committed:
                stale.append(f)
    for f in stale:
        f.unlink(missing_ok=True)
    return stale


def _split_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict]:
    """An optimizer's state dict as named tensors plus JSON-able scalars (no pickle)."""
    sd = opt.state_dict()
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict] = {}
    for pid, entries in sd["state"].items():
        for key, value in entries.items():
            if isinstance(value, Tensor):
                tensors[f"optimizer.{pid}.{key}"] = value
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "state": scalars}


def _join_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    for pid, entries in meta["state"].items():
        state.setdefault(int(pid), {}).update(entries)
    # JSON turned tuples (Adam's betas) into lists; give them back their type
    groups = [
        {k: tuple(v) if isinstance(cur.get(k), tuple) else v for k, v in saved.items()}
        for saved, cur in zip(meta["param_groups"], opt.param_groups, strict=True)
    ]
    opt.load_state_dict({"state": state, "param_groups": groups})


def _with_prefix(tensors: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def training_state(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    best: dict[str, Tensor] | None = None,
) -> tuple[dict[str, Tensor], dict]:
    """Everything needed to continue a training loop exactly: (tensors, JSON scalars).

    ``best`` is an optional second set of weights (the best so far, for early stopping).
    The torch RNG states are included although the loops draw only from ``generator``, so
    that code drawing from the global RNG after a resume sees the same numbers too.
    """
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    if best is not None:
        tensors.update({f"best.{k}": v for k, v in best.items()})
    opt_tensors, opt_meta = _split_optimizer(optimizer)
    tensors.update(opt_tensors)
    tensors["rng.generator"] = generator.get_state()
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    return tensors, {"optimizer": opt_meta}


def restore_training_state(
    tensors: dict[str, Tensor],
    state: dict,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
) -> dict[str, Tensor] | None:
    """Put a :func:`training_state` back; returns the saved ``best`` weights (or None)."""
    try:
        model.load_state_dict(_with_prefix(tensors, "model."), strict=True)
        _join_optimizer(optimizer, tensors, state["optimizer"])
    except (RuntimeError, KeyError, ValueError) as exc:
        raise ModelFileError(f"checkpoint does not fit this model or optimizer: {exc}") from exc
    generator.set_state(tensors["rng.generator"])
    torch.set_rng_state(tensors["rng.torch"])
    cuda = _with_prefix(tensors, "rng.cuda.")
    if cuda and torch.cuda.is_available() and torch.cuda.device_count() >= len(cuda):
        for i, s in cuda.items():
            torch.cuda.set_rng_state(s, int(i))
    best = _with_prefix(tensors, "best.")
    dev = next(iter(model.state_dict().values())).device
    return {k: v.to(dev) for k, v in best.items()} or None


class ResumeError(ValueError):
    """A run directory cannot be resumed with these settings or data."""


def _differences(old, new, path: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in old:
                out.append(f"{sub}: not in the run, now {new[key]!r}")
            elif key not in new:
                out.append(f"{sub}: {old[key]!r} in the run, now absent")
            else:
                out += _differences(old[key], new[key], sub)
        return out
    return [] if old == new else [f"{path}: {old!r} in the run, now {new!r}"]


def check_resume(run_dir: str | Path, recorded: dict, current: dict) -> None:
    """Raise :class:`ResumeError` naming every field where ``current`` differs from the run.

    Both are identity records (JSON-like dicts); ``current`` is normalised through JSON so
    tuples and lists compare equal.
    """
    diffs = _differences(recorded, json.loads(json.dumps(current)))
    if diffs:
        raise ResumeError(
            f"cannot resume {run_dir}: it was started with different settings or data:\n  "
            + "\n  ".join(diffs)
            + "\nresume with the run's own settings and data, or start a new run directory"
        )
