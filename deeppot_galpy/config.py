"""The settings of a fit: the schema (:class:`FitConfig`, :data:`PRESETS`), how to run it
(:class:`FitOptions`), and one TOML configuration for all of it, validated up front.

A config file starts from a preset and overrides any setting; CLI flags override the file::

    preset = "default"         # test | default | paper (PRESETS)
    seed = 0
    device = "cpu"             # cpu | cuda | cuda:N
    nproc = 1                  # processes sharing the fit (deeppot_galpy.distributed)
    figures = true

    [fit]                      # FitConfig: n_stars, n_flows, n_points, threads (0: torch's),
                               #   radial_density (spherical fits: nu(r) from the radii),
                               #   disk_density (mirror fits of a survey volume: nu(R, z))
    n_flows = 4
    [flow]                     # FlowConfig: steps, bins, hidden, bound,
                               #   model (auto | joint | factorised: n(x) p(v|x) | mixture: the
                               #   same with p a mixture of velocity ellipsoids; the presets':
                               #   auto, chosen from the stars, deeppot_galpy.shape), components,
                               #   axisymmetric (p(v|x) read at the data's azimuth; auto sets it
                               #   for a disk's survey volume), speed_profile (a spline of the
                               #   speed before p(v|x); auto sets it for a spherical potential),
                               #   radial_context (p(v|x) also reads the distance from the
                               #   origin: for tracers with a core in a halo with a cusp)
    [flow_training]            # FlowTraining: epochs, batch_size, lr, weight_decay, val_fraction,
                               #   patience, time_budget_s (0: none), bootstrap,
                               #   augment (random moves by the potential's symmetry)
    [potential]                # PotentialTraining: steps, batch_size, lr, lam, time_budget_s,
                               #   loss (lnf | f | crossfit: the flow members in two groups),
                               #   jeans_weight, jeans_functions, jeans_neighbours, jeans_batch,
                               #   jeans_stars,
                               #   jeans_shells, jeans_noise_weight, jeans_temper
                               #   (spread of the functions' centres in ln r), cbe_time_slope
                               #   (the CBE time scale's power of r in a spherical fit),
                               #   replicates (bootstrap refits for error bars), replicate_steps
    [potential.network]        # PotentialConfig: hidden, activation, softening, vertical,
                               #   symmetry (auto | none | axisymmetric | mirror | spherical;
                               #   the presets': auto, chosen from the stars, deeppot_galpy.shape)
    [checkpoint]               # checkpoint.CheckpointPolicy: flow_epochs, potential_steps, seconds
    [frame]                    # data.FrameParameters (catalogs only)
    [cuts]                     # data.QualityCuts (catalogs only)

Unknown sections or keys, and values of the wrong type or out of range, are errors that name
the offending key and list the allowed ones, before any work starts. Command-line flags
override the file (:func:`parse_config`'s keyword arguments); the merged, validated tables are
kept in :attr:`RunConfig.raw` so that a run directory can record exactly how it was configured
and ``--resume`` can repeat it.

:class:`FitConfig` shapes the result (a resumed run must have the same); :class:`FitOptions`
says how to compute it and where from (seed, device, progress, figures, resume/overwrite,
checkpoints), and is what :func:`~deeppot_galpy.pipeline.fit` and its siblings take.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .checkpoint import CheckpointPolicy
from .device import parse_device
from .df import FlowConfig, FlowTraining
from .potential import PotentialConfig, PotentialTraining

if TYPE_CHECKING:  # astropy: imported only when a config has a catalog's frame or cuts
    from .data import FrameParameters, QualityCuts

__all__ = [
    "PRESETS",
    "CheckpointPolicy",
    "FitConfig",
    "FitOptions",
    "FlowConfig",
    "FlowTraining",
    "PotentialConfig",
    "PotentialTraining",
    "RunConfig",
    "load_config",
    "parse_config",
    "read_toml",
]


@dataclass(frozen=True)
class FitConfig:
    """Every setting that shapes a fit's result (the TOML config mirrors these sections)."""

    n_stars: int = 2**17  # used by the demo's mock; a catalog brings its own stars
    n_flows: int = 4
    flow: FlowConfig = FlowConfig()
    flow_training: FlowTraining = FlowTraining()
    n_points: int = 2**15  # points drawn from the flows to fit the potential on
    potential: PotentialTraining = PotentialTraining()
    threads: int | None = 1  # torch intra-op threads (0 or None: torch's default)
    # a spherical fit of a centred system may take the stars' density from their radii
    # (deeppot_galpy.df.radial) in place of the position flows (factorised DF only): better
    # in a cusp, worse in a core (RESULTS.md, section 9), so off by default
    radial_density: bool = False
    # a mirror fit of a survey volume takes the stars' nu(R, z) from their positions
    # (deeppot_galpy.df.disk_density) in place of the position flows, whose vertical
    # log-slope ripples by 20-50%: on four same-flows pairs the median and p90 force errors
    # lower every time (RESULTS.md, section 26)
    disk_density: bool = True

    def __post_init__(self) -> None:
        if min(self.n_stars, self.n_flows, self.n_points) < 1:
            raise ValueError(
                f"n_stars, n_flows and n_points must be >= 1 (got {self.n_stars}, "
                f"{self.n_flows}, {self.n_points})"
            )
        if self.threads is not None and not (isinstance(self.threads, int) and self.threads >= 0):
            raise ValueError(
                f"threads must be an integer >= 0 (0: torch's default), not {self.threads!r}"
            )
        if self.crossfit and self.n_flows < 2:
            raise ValueError("the crossfit loss needs n_flows >= 2 (split into two groups)")

    @property
    def crossfit(self) -> bool:
        """The crossfit loss: the flow members in two groups give two estimates of grad ln f."""
        return self.potential.loss == "crossfit"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["potential"] = self.potential.to_dict()
        return d


# the potential's symmetry is chosen from the stars (deeppot_galpy.shape; "none" unless they
# show one): a symmetric fit averages the flows' noise (RESULTS.md, sections 7 and 8)
_AUTO = PotentialConfig(symmetry="auto")

PRESETS: dict[str, FitConfig] = {
    # seconds: for tests and smoke runs
    "test": FitConfig(
        n_stars=2**12,
        n_flows=1,
        flow=FlowConfig(steps=2, hidden=(32, 32)),
        flow_training=FlowTraining(epochs=4, batch_size=512),
        n_points=2**11,
        potential=PotentialTraining(
            steps=200, batch_size=256, replicates=2, replicate_steps=50, config=_AUTO
        ),
    ),
    # about 15 minutes on 2 CPU cores
    "default": FitConfig(
        n_stars=2**17,
        n_flows=2,
        # n(x) p(v|x), p a conditional flow (halves the anisotropic sphere's force error,
        # RESULTS.md, section 6) or in a disk's survey volume a mixture of ellipsoids (section 17)
        flow=FlowConfig(model="auto"),
        flow_training=FlowTraining(epochs=40, batch_size=4096, time_budget_s=300),
        # four times the paper's points: better or even on every pair measured (spheres and
        # local disks; RESULTS.md, sections 22 and 24) for ~10 s more; replicates keep 2^15
        n_points=2**17,
        potential=PotentialTraining(
            steps=3000,
            time_budget_s=240,
            loss="crossfit",
            replicates=4,
            replicate_steps=500,
            config=_AUTO,
        ),
    ),
    # the paper's sizes (2^17 stars, 8 flows, 2^15 points, long training) with the default's
    # method; sized for a GPU
    "paper": FitConfig(
        n_stars=2**17,
        n_flows=8,
        flow=FlowConfig(model="auto"),
        flow_training=FlowTraining(epochs=200, batch_size=4096),
        n_points=2**15,
        potential=PotentialTraining(
            steps=20000,
            batch_size=2048,
            loss="crossfit",
            replicates=4,
            replicate_steps=2000,
            config=_AUTO,
        ),
    ),
}


@dataclass(frozen=True)
class FitOptions:
    """How a fit is run; none of it changes the result except ``seed``.

    Parameters
    ----------
    seed : the run's seed; every stage draws from its own stream of it
        (:mod:`deeppot_galpy.seeds`).
    device : torch device, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    progress : show progress bars.
    figures : write the figures into ``RUN_DIR/figures``.
    resume : continue the unfinished run in the output directory from its checkpoints (a
        finished one returns its stored metrics).
    overwrite : replace a run already in the output directory. Without it (the default, as
        astropy's writers) a directory holding a run is refused, so no finished fit is lost.
    checkpoints : how often training states are saved.
    invocation : how the command line was called; recorded in ``run.json`` so ``--resume``
        can repeat it.

    Example
    -------
    >>> FitOptions(seed=3, progress=False).seed
    3
    """

    seed: int = 0
    device: str = "cpu"
    progress: bool = True
    figures: bool = True
    resume: bool = False
    overwrite: bool = False
    checkpoints: CheckpointPolicy = CheckpointPolicy()
    invocation: dict | None = None

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, not {self.seed!r}")
        if not isinstance(self.checkpoints, CheckpointPolicy):
            raise ValueError(f"checkpoints must be a CheckpointPolicy, not {self.checkpoints!r}")
        if self.resume and self.overwrite:
            raise ValueError("resume or overwrite a run, not both")


_TOP_LEVEL = {
    "preset",
    "seed",
    "device",
    "nproc",
    "figures",
    "fit",
    "flow",
    "flow_training",
    "potential",
    "checkpoint",
    "frame",
    "cuts",
}


@dataclass(frozen=True)
class RunConfig:
    """A validated configuration: the fit, how to run it, and the catalog's frame and cuts.

    ``options`` holds what the config file sets (seed, device, figures, checkpoints); a command
    adds how it was called (progress, resume, overwrite, invocation) with ``dataclasses.replace``.
    ``frame`` and ``cuts`` are parsed once, here (None: the defaults).
    """

    fit: FitConfig = PRESETS["default"]
    options: FitOptions = FitOptions()
    nproc: int = 1
    frame: FrameParameters | None = None
    cuts: QualityCuts | None = None
    raw: dict = field(default_factory=dict)  # the TOML tables it was parsed from


def _check_type(section: str, key: str, value: Any, default: Any, annotation: str = "") -> Any:
    """Coerce TOML values to the type of the default (lists -> tuples, ints -> floats).

    ``annotation`` is the field's declared type: a ``float | None`` field takes any number,
    also when its current value is None or was written as an int.
    """
    if (isinstance(default, tuple) or "tuple" in str(annotation)) and isinstance(value, list):
        return tuple(value)
    if isinstance(default, float) or "float" in str(annotation):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ValueError(
            f"[{section}] {key} = {value!r}: expected a number, got {type(value).__name__}"
        )
    if default is None or isinstance(value, type(default)):
        if isinstance(default, int) and isinstance(value, bool) != isinstance(default, bool):
            raise ValueError(f"[{section}] {key} = {value!r}: expected {type(default).__name__}")
        return value
    raise ValueError(
        f"[{section}] {key} = {value!r}: expected {type(default).__name__}, "
        f"got {type(value).__name__}"
    )


def _override(section: str, obj: Any, values: dict, nested: dict[str, str] | None = None) -> Any:
    """A copy of dataclass ``obj`` with ``values`` applied, unknown keys and bad types refused."""
    nested = nested or {}
    types = {f.name: f.type for f in dataclasses.fields(obj)}
    allowed = set(types)
    names = {nested.get(n, n) for n in allowed}
    changes = {}
    for key, value in values.items():
        attr = {v: k for k, v in nested.items()}.get(key, key)
        if attr not in allowed:
            raise ValueError(f"unknown key {key!r} in [{section}]; allowed: {sorted(names)}")
        current = getattr(obj, attr)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ValueError(f"[{section}.{key}] must be a table")
            changes[attr] = _override(f"{section}.{key}", current, value)
        else:
            changes[attr] = _check_type(section, key, value, current, types[attr])
    try:
        return replace(obj, **changes)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"invalid [{section}]: {exc}") from exc


def _merge(raw: dict, overrides: dict) -> dict:
    """``raw`` with the overrides that are set (not None), tables merged key by key."""
    out = dict(raw)
    for key, value in overrides.items():
        if isinstance(value, dict):
            table = _merge(out.get(key, {}), value)
            if table:
                out[key] = table
        elif value is not None:
            out[key] = value
    return out


def parse_config(raw: dict, **overrides: Any) -> RunConfig:
    """Validate a config dict (as read from TOML) into a :class:`RunConfig`.

    ``overrides`` (e.g. from command-line flags) replace top-level keys, or keys of a table
    when given as a dict (``fit={"n_flows": 8}``); None values are ignored.
    """
    raw = _merge(raw, overrides)
    unknown = set(raw) - _TOP_LEVEL
    if unknown:
        raise ValueError(f"unknown config keys {sorted(unknown)}; allowed: {sorted(_TOP_LEVEL)}")
    preset = raw.get("preset", "default")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; use one of {sorted(PRESETS)}")
    fit = PRESETS[preset]
    changes: dict[str, Any] = {}
    for section, attr in (("flow", "flow"), ("flow_training", "flow_training")):
        if section in raw:
            changes[attr] = _override(section, getattr(fit, attr), raw[section])
    if "potential" in raw:
        changes["potential"] = _override(
            "potential", fit.potential, raw["potential"], nested={"config": "network"}
        )
    fit = replace(fit, **changes)
    if "fit" in raw:
        scalar = {f.name for f in dataclasses.fields(fit)} - {
            "flow",
            "flow_training",
            "potential",
        }
        bad = set(raw["fit"]) - scalar
        if bad:
            raise ValueError(f"unknown key(s) {sorted(bad)} in [fit]; allowed: {sorted(scalar)}")
        fit = _override("fit", fit, raw["fit"])
    checkpoint = CheckpointPolicy()
    if "checkpoint" in raw:
        checkpoint = _override("checkpoint", checkpoint, raw["checkpoint"])
    seed = _check_type("top level", "seed", raw.get("seed", 0), 0)
    nproc = _check_type("top level", "nproc", raw.get("nproc", 1), 1)
    figures = _check_type("top level", "figures", raw.get("figures", True), True)
    device = _check_type("top level", "device", raw.get("device", "cpu"), "cpu")
    if seed < 0 or nproc < 1:
        raise ValueError(f"seed must be >= 0 and nproc >= 1 (got seed = {seed}, nproc = {nproc})")
    try:
        parse_device(device)
    except ValueError as exc:
        raise ValueError(f"device = {device!r}: {exc}") from exc
    for section in ("frame", "cuts"):
        if not isinstance(raw.get(section, {}), dict):
            raise ValueError(f"[{section}] must be a table")
    parsed: dict[str, Any] = {}
    if raw.get("frame") or raw.get("cuts"):
        from .data import FrameParameters, QualityCuts  # astropy: only when there is a catalog

        for section, cls in (("frame", FrameParameters), ("cuts", QualityCuts)):
            if raw.get(section):
                try:
                    parsed[section] = cls.from_dict(raw[section])
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"invalid [{section}]: {exc}") from exc
    options = FitOptions(seed=seed, device=device, figures=figures, checkpoints=checkpoint)
    return RunConfig(fit, options, nproc, parsed.get("frame"), parsed.get("cuts"), raw)


def read_toml(path: str | Path) -> dict:
    """The tables of a TOML config file, not yet validated."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path} is not valid TOML: {exc}") from exc


def load_config(path: str | Path | None, **overrides: Any) -> RunConfig:
    """Read and validate a TOML config file (``None``: the defaults), then ``overrides``."""
    return parse_config(read_toml(path) if path is not None else {}, **overrides)
