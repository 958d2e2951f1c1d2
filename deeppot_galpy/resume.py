"""A run directory's lifecycle: start fresh, resume, return a finished run, or overwrite it.

What a fit does with its output directory ``RUN_DIR``:

=================  ===================================  =======================================
RUN_DIR holds      ``resume=False``                      ``resume=True``
=================  ===================================  =======================================
no run             start a fresh run                    refused: nothing to resume
an unfinished run  refused (``overwrite=True``:          continue from the checkpoints, after
                   replaced)                            checking config, seed and data
a finished run     refused (``overwrite=True``:          its stored metrics, nothing recomputed
                   replaced)
=================  ===================================  =======================================

A run is *started* once ``run.json`` exists and *finished* once ``metrics.json`` does. A
refusal happens before anything is written, so the directory stays byte-identical; like
astropy's writers with ``overwrite=False``, replacing a finished fit (maybe a GPU-day of work)
takes an explicit ``overwrite=True`` (``--overwrite``).
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

from . import distributed
from .checkpoint import check_resume, clean_stale
from .rundir import RunDir

__all__ = ["check_target", "identity", "prepare"]

# what a run writes into RUN_DIR besides run.json (rundir.py's layout; orbits.json is written by
# `deeppot orbits` next to the potential it integrated): removed before an overwrite, so no
# file of the old run (its replicates, its figures) survives next to the new one
_RUN_FILES = (
    "metrics.json",
    "cuts.json",
    "orbits.json",
    "flows.json",
    "flows.safetensors",
    "potential.json",
    "potential.safetensors",
    "potential_replicates.json",
    "potential_replicates.safetensors",
)
_RUN_FOLDERS = ("checkpoints", "figures")


def check_target(out: str | Path, resume: bool, overwrite: bool) -> None:
    """Refuse what the table in the module docstring refuses; cheap, and it writes nothing.

    The entry points call it before reading any data, so a refusal costs no time.

    Raises
    ------
    FileExistsError : ``out`` holds a run and neither ``resume`` nor ``overwrite`` is set;
        the one-line message names the directory and the three ways forward.
    ValueError : ``resume`` without a run in ``out``.
    """
    out = Path(out)
    started = (out / "run.json").exists()
    if resume and not started:
        raise ValueError(f"nothing to resume in {out}: it has no run.json")
    if resume or overwrite or not started:
        return
    if (out / "metrics.json").exists():
        raise FileExistsError(
            f"{out} holds a finished run: write to a new --out, read its result with "
            f"--resume {out} (resume=True), or replace it with --overwrite (overwrite=True)"
        )
    raise FileExistsError(
        f"{out} holds an unfinished run: continue it with --resume {out} (resume=True), "
        "write to a new --out, or replace it with --overwrite (overwrite=True)"
    )


def identity(record: dict) -> dict:
    """What a resumed run must share with its start: everything that shapes the result."""
    meta = record["data"].get("meta") or {}
    return {
        "config": record["config"],
        "seed": record["seed"],
        "units": record["units"],
        "data": {"n_stars": record["data"]["n_stars"], "sha256": record["data"]["sha256"]},
        "frame": meta.get("frame"),
        "cuts": meta.get("cuts"),
    }


def prepare(run: RunDir, record: dict, resume: bool, overwrite: bool) -> dict | None:
    """Check and set up ``run`` for a fresh, resumed or overwriting fit; the stored metrics if
    it is a finished run being resumed (None otherwise: the stages run).

    Every process checks (they all see the same files, so they agree) before rank 0 changes
    anything: :func:`check_target`, and for a resumed run the same settings and data
    (:func:`~deeppot_galpy.checkpoint.check_resume`).
    """
    job = distributed.current()
    check_target(run.path, resume, overwrite)
    started = (run.path / "run.json").exists()
    finished = (run.path / "metrics.json").exists()
    if resume:
        old = run.read_json("run")
        check_resume(run.path, identity(old), identity(record))
        if old.get("versions") != record["versions"]:
            warnings.warn(
                f"resuming {run.path} with other software versions than it started with "
                f"({old.get('versions')} -> {record['versions']}): the result may differ "
                "slightly from an uninterrupted run",
                stacklevel=3,
            )
    job.barrier()
    if job.is_main:
        if resume:
            clean_stale(run.path)
            old.setdefault("resumed", []).append(
                {k: record[k] for k in ("device", "processes", "versions")}
            )
            run.write_json("run", old)
            if finished:
                shutil.rmtree(run.path / "checkpoints", ignore_errors=True)
        else:
            if started:  # overwrite (check_target let it through): clear the old run first
                for name in _RUN_FOLDERS:
                    shutil.rmtree(run.path / name, ignore_errors=True)
                for name in _RUN_FILES:
                    (run.path / name).unlink(missing_ok=True)
            run.write_json("run", record)
    job.barrier()
    return run.read_json("metrics") if resume and finished else None
