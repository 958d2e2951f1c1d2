"""Options of the commands that run a fit (``demo``, ``fit``): config, overrides, resume,
overwrite, processes.

A run directory records how it was started (the merged config tables and the command's
inputs, in ``run.json``'s ``invocation``), so ``--resume RUN_DIR`` needs nothing else. Flags
given together with ``--resume`` still apply: ``--device``, ``--nproc`` and ``--quiet`` change
only how the rest is computed; anything that changes the result (``--seed``, a different
``--config``, other data) makes the pipeline refuse to resume, saying what differs. An
``--out`` that already holds a run is refused (one line naming the ways forward) unless
``--overwrite`` says to replace it (:mod:`deeppot_galpy.resume`).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..config import RunConfig, parse_config, read_toml
from ..potential.fit import CORE_TIME_POWER
from ..potential.replicates import TENSION_NOISE
from ..potential.symmetry import SYMMETRY_CHOICES
from ..resume import check_target
from ..rundir import ModelFileError, RunDir

__all__ = [
    "add_run_options",
    "bad_files_reported",
    "run_config",
    "core_note",
    "model_choices",
    "rest_frame_note",
    "tension_note",
    "TENSION_BROKEN",
]

#: a Jeans tension beyond which no fit errs: the stars are not in a steady state as given (a
#: whole system given with its bulk motion gave 122; real fits give 0.9-2)
TENSION_BROKEN = 10.0


def add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", help="run directory to write")
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue the interrupted run in RUN_DIR from its last checkpoints",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in --out (without it, such a directory is refused)",
    )
    p.add_argument("--config", help="TOML config (see deeppot_galpy.config)")
    p.add_argument("--seed", type=int, help="random seed (overrides the config)")
    p.add_argument("--device", help="torch device: cpu, cuda, cuda:N (overrides the config)")
    p.add_argument(
        "--nproc",
        type=int,
        help="processes sharing the fit (torch.distributed: gloo on CPU, nccl on CUDA); "
        "or launch with torchrun --nproc-per-node N -m deeppot_galpy ...",
    )
    p.add_argument(
        "--replicates",
        type=int,
        metavar="N",
        help="bootstrap refits of the potential for error bars (0: none; overrides the config)",
    )
    p.add_argument(
        "--symmetry",
        choices=SYMMETRY_CHOICES,
        help="the potential's symmetry about the coordinates' origin (overrides the config; "
        "default auto: the one the stars show, else none; deeppot_galpy.shape): axisymmetric "
        "about the z axis, e.g. a Galactic disk volume in Galactocentric coordinates; mirror: "
        "axisymmetric and even in z; spherical; or none",
    )
    p.add_argument("--no-figures", action="store_true", help="skip the figures")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run_config(
    args: argparse.Namespace, command: str, **overrides: Any
) -> tuple[RunConfig, Path, dict]:
    """(validated config, run directory, the inputs recorded by the run being resumed or {}).

    The config is ``--config`` (or, resuming without one, the run's recorded tables) with
    ``overrides`` and the common flags applied on top; its ``options`` carry ``--quiet``,
    ``--resume`` and ``--overwrite`` too (the command adds the invocation). The run directory
    is checked here, before any process is started or any data read.
    """
    recorded: dict = {}
    if args.resume and args.overwrite:
        raise ValueError("give --resume RUN_DIR or --overwrite, not both")
    if args.resume:
        if args.out and Path(args.out).resolve() != Path(args.resume).resolve():
            raise ValueError("give the run directory once: --resume RUN_DIR (without --out)")
        out = Path(args.resume)
        check_target(out, resume=True, overwrite=False)
        with bad_files_reported():
            invocation = RunDir(out).read_json("run").get("invocation") or {}
        if not invocation:
            raise ValueError(
                f"{out} was not started from the command line: resume it from Python with "
                "the same call and resume=True"
            )
        if invocation["command"] != command:
            raise ValueError(
                f"{out} was started by `deeppot {invocation['command']}`, not "
                f"`deeppot {command}`: resume it with that command"
            )
        recorded = invocation["inputs"]
        raw = read_toml(args.config) if args.config else invocation["config"]
    elif not args.out:
        raise ValueError("give --out RUN_DIR for a new run, or --resume RUN_DIR")
    else:
        out = Path(args.out)
        check_target(out, resume=False, overwrite=args.overwrite)
        raw = read_toml(args.config) if args.config else {}
    cfg = parse_config(
        raw,
        seed=args.seed,
        device=args.device,
        nproc=args.nproc,
        figures=False if args.no_figures else None,
        potential={"replicates": args.replicates, "network": {"symmetry": args.symmetry}},
        **overrides,
    )
    how = {"progress": not args.quiet, "resume": bool(args.resume), "overwrite": args.overwrite}
    return replace(cfg, options=replace(cfg.options, **how)), out, recorded


def model_choices(out: str | Path, hints: bool = True) -> str:
    """Lines saying which potential symmetry and DF model a finished run has, and why, the
    bulk motion it took out (:func:`rest_frame_note`), its Jeans tension where it was
    measured and, with ``hints``, :func:`core_note`."""
    run = RunDir(out).read_json("run")
    potential = RunDir(out).load_metadata("potential")
    tension = potential.get("jeans_tension")
    symmetry, df_model = run.get("symmetry", {}), run.get("df_model", {})

    def why(chosen: dict) -> str:
        return chosen.get("reason", "given") if chosen.get("requested") == "auto" else "given"

    return (
        f"potential symmetry: {symmetry.get('symmetry', 'none')} ({why(symmetry)}; "
        "--symmetry none|axisymmetric|mirror|spherical chooses it)\n"
        f"DF model: {df_model.get('model', run['config']['flow']['model'])} ({why(df_model)}; "
        "[flow] model = factorised|mixture|joint in a --config file chooses it)"
    ) + "".join(
        f"\n{note}"
        for note in (
            rest_frame_note(run.get("rest_frame")),
            tension_note(tension, symmetry.get("symmetry") == "spherical"),
            hints and core_note(run, potential),
        )
        if note
    )


def rest_frame_note(motion: dict | None) -> str | None:
    """One line on the bulk motion a fit took out (:mod:`deeppot_galpy.rest_frame`), if any."""
    if not motion:
        return None
    unit = f" {motion['units']}" if motion.get("units") else ""
    v = ", ".join(f"{c:.4g}" for c in motion["velocity"])
    times = motion["speed"] / motion["dispersion"]
    return (
        f"the stars move as a whole at V = ({v}){unit}, {times:.2g} "
        f"times their dispersion of {motion['dispersion']:.3g}{unit}: fitted in their rest "
        "frame (their velocities less V; positions and potential as in the catalog, so orbits "
        "in it start from velocities less V)"
    )


def core_note(run: dict, potential: dict) -> str | None:
    """A hint for a spherical fit whose stars read as a core (``run.json``'s and the
    potential's metadata): if they are tracers in a halo with a cusp that they do not source,
    ``[flow] radial_context`` follows what the cusp does to their velocities."""
    core = (
        run.get("symmetry", {}).get("symmetry") == "spherical"
        and potential.get("history", {}).get("cbe_time_power") == CORE_TIME_POWER
        and run["config"]["potential"].get("cbe_time_slope") is None
    )
    factorised = run.get("df_model", {}).get("model") == "factorised"
    if not core or not factorised or run["config"]["flow"].get("radial_context"):
        return None
    return (
        "the stars have a core: if they are tracers in a halo with a cusp that they do not "
        "source (a dwarf spheroidal's stars in dark matter), [flow] radial_context = true in a "
        "--config file lets their velocities follow the cusp (RESULTS.md, section 35: the "
        "innermost force 44% -> 13% low on such tracers; a core that is the mass is fitted "
        "worse with it)"
    )


def tension_note(tension: float | None, spherical: bool = True) -> str | None:
    """One line on a fit's Jeans tension (:func:`~deeppot_galpy.cbe_points.jeans_tension`),
    where it was measured; ``spherical``: the fit's error bars grow with it."""
    if tension is None:
        return None
    if tension <= TENSION_NOISE:
        return (
            f"Jeans tension: {tension:.2f} (the stars' own velocity moments agree with the "
            f"fitted force within their noise, <= {TENSION_NOISE})"
        )
    if tension > TENSION_BROKEN:
        return (
            f"WARNING: Jeans tension {tension:.3g}: the stars' own velocity moments reject the "
            "fitted force many times over, so the stars are far from a steady state in this "
            "frame and the potential is not to be trusted. Check the columns' units, that a "
            "whole system is given about its own centre (one that moves is fitted in its rest "
            "frame), and that the stars are relaxed (not a stream or a merger)"
        )
    grown = "its error bars are grown for it" if spherical else "only a sphere's error bars grow"
    return (
        f"Jeans tension: {tension:.2f} (above {TENSION_NOISE}: the stars' own velocity moments "
        "pull away from the fitted force, as where the flows misread an anisotropic velocity "
        "distribution, or distance errors outgrow the moments' second-order correction for "
        "them (parallax S/N of a few); "
        f"{grown})"
    )


@contextmanager
def bad_files_reported() -> Iterator[None]:
    """Report a corrupt run directory or checkpoint as a user error (one line, no traceback)."""
    try:
        yield
    except ModelFileError as exc:
        raise ValueError(str(exc)) from exc
