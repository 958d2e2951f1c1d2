r"""Orbits in a learned potential: a batched integrator, galpy's integrators, and comparisons.

galpy integrates a Python potential one orbit and one point at a time. :func:`integrate_batched`
advances *all* orbits together, one network call per force evaluation, in galpy natural units
(Cartesian :math:`\vec x, \vec v`, :math:`\ddot{\vec x} = -\nabla\Phi`):

* ``leapfrog``: kick-drift-kick, 2nd order, symplectic (one force evaluation per step),
* ``yoshida4``: Yoshida's (1990) 4th-order symplectic composition of three leapfrog steps with
  weights :math:`w_1 = 1/(2 - 2^{1/3})`, :math:`w_0 = 1 - 2 w_1` (three evaluations per step),
* ``dop853``: scipy's adaptive 8th-order Dormand-Prince on the stacked system (one step size for
  all orbits, chosen by the error norm over all of them).

:func:`integrate_galpy` runs any galpy potential (the learned one, an export, or the truth)
through ``galpy.orbit.Orbit``; :func:`integrate` picks one of the three ways (batched in the
network, galpy's Python integrator in it, or galpy's C integrator in an export);
:func:`compare_orbits` measures energy conservation :math:`|E(t)/E(0) - 1|` and the divergence
:math:`|\vec x(t) - \vec x_{ref}(t)| / |\vec x_{ref}(0)|` of two runs of the same initial
conditions (:func:`deeppot_galpy.compare.energy_drift`,
:func:`~deeppot_galpy.compare.orbit_divergence`). :func:`orbit_study` is the whole ``deeppot
orbits`` workflow: start radii, default times, integration, an optional true reference, scores,
the JSON record and the figure.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .units import cartesian_to_galpy

__all__ = [
    "BATCHED_METHODS",
    "METHODS",
    "OrbitSet",
    "acceleration_function",
    "cartesian_to_galpy",
    "compare_orbits",
    "initial_conditions",
    "integrate",
    "integrate_batched",
    "integrate_galpy",
    "orbit_study",
    "plot_orbit_comparison",
]

BATCHED_METHODS = ("leapfrog", "yoshida4", "dop853")
#: the ways of integrating in a learned potential (:func:`integrate`)
METHODS = ("batched", "direct", "exported")

_YOSHIDA_W1 = 1.0 / (2.0 - 2.0 ** (1.0 / 3.0))
_YOSHIDA_STAGES = (_YOSHIDA_W1, 1.0 - 2.0 * _YOSHIDA_W1, _YOSHIDA_W1)

Acceleration = Callable[[np.ndarray], np.ndarray]


@dataclass
class OrbitSet:
    """Orbits sampled at common times, galpy natural units: t (T,), x and v (N, T, 3)."""

    t: np.ndarray
    x: np.ndarray
    v: np.ndarray

    def __len__(self) -> int:
        return len(self.x)

    def energy(self, pot: Any) -> np.ndarray:
        """E = v^2/2 + Phi(x) (N, T) in galpy potential ``pot`` (natural units)."""
        from galpy.potential import evaluatePotentials

        x = self.x.reshape(-1, 3)
        R, z, phi = np.hypot(x[:, 0], x[:, 1]), x[:, 2], np.arctan2(x[:, 1], x[:, 0])
        pot_e = np.asarray(evaluatePotentials(pot, R, z, phi=phi, use_physical=False))
        return 0.5 * np.sum(self.v**2, axis=-1) + pot_e.reshape(self.x.shape[:2])


def acceleration_function(pot: Any) -> Acceleration:
    """-grad Phi for Cartesian natural-unit positions (N, 3), vectorised over all of them.

    A :class:`~deeppot_galpy.galpy_potential.DeepPotential` evaluates in one network call; any
    other galpy potential (or list) through galpy's array evaluation.
    """
    from .galpy_potential import DeepPotential

    if isinstance(pot, DeepPotential):
        return pot.acceleration
    from .compare import as_field

    return as_field(pot).acceleration


def _symplectic(
    accel: Acceleration, x: np.ndarray, v: np.ndarray, t: np.ndarray, substeps: int, stages
) -> OrbitSet:
    """Kick-drift-kick composition with step weights ``stages``; the closing kick of one
    stage and the opening kick of the next share a force evaluation."""
    xs, vs = [x.copy()], [v.copy()]
    a = accel(x)
    for k in range(len(t) - 1):
        h = (t[k + 1] - t[k]) / substeps
        for _ in range(substeps):
            for w in stages:
                v = v + 0.5 * w * h * a
                x = x + w * h * v
                a = accel(x)
                v = v + 0.5 * w * h * a
        xs.append(x.copy())
        vs.append(v.copy())
    return OrbitSet(np.asarray(t), np.stack(xs, axis=1), np.stack(vs, axis=1))


def _dop853(
    accel: Acceleration, x: np.ndarray, v: np.ndarray, t: np.ndarray, rtol: float, atol: float
) -> OrbitSet:
    from scipy.integrate import solve_ivp

    n = len(x)

    def rhs(_t: float, y: np.ndarray) -> np.ndarray:
        w = y.reshape(n, 6)
        return np.concatenate([w[:, 3:], accel(w[:, :3])], axis=1).ravel()

    y0 = np.concatenate([x, v], axis=1).ravel()
    sol = solve_ivp(rhs, (t[0], t[-1]), y0, method="DOP853", t_eval=t, rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"dop853 integration failed: {sol.message}")
    w = sol.y.reshape(n, 6, len(t)).transpose(0, 2, 1)
    return OrbitSet(np.asarray(t), w[..., :3], w[..., 3:])


def integrate_batched(
    pot: Any,
    x0: np.ndarray,
    v0: np.ndarray,
    t: np.ndarray,
    method: str = "yoshida4",
    substeps: int = 1,
    rtol: float = 1e-8,
    atol: float = 1e-10,
) -> OrbitSet:
    """Integrate all orbits (x0, v0: (N, 3), natural units) together, output at times ``t``.

    ``pot`` is a DeepPotential, any galpy potential, or a callable giving the acceleration of
    (N, 3) positions. Fixed-step methods take ``substeps`` steps between output times;
    ``dop853`` adapts its step to ``rtol``/``atol``.
    """
    accel = pot if callable(pot) and not hasattr(pot, "_evaluate") else acceleration_function(pot)
    x0, v0 = np.atleast_2d(np.asarray(x0, float)), np.atleast_2d(np.asarray(v0, float))
    t = np.asarray(t, float)
    if method == "leapfrog":
        return _symplectic(accel, x0, v0, t, substeps, (1.0,))
    if method == "yoshida4":
        return _symplectic(accel, x0, v0, t, substeps, _YOSHIDA_STAGES)
    if method == "dop853":
        return _dop853(accel, x0, v0, t, rtol, atol)
    raise ValueError(f"unknown batched method {method!r}; use one of {BATCHED_METHODS}")


def integrate_galpy(
    pot: Any,
    x0: np.ndarray,
    v0: np.ndarray,
    t: np.ndarray,
    method: str = "dop853_c",
    numcores: int = 1,
    **integrate_kwargs: Any,
) -> OrbitSet:
    """Integrate with ``galpy.orbit.Orbit`` in potential ``pot`` (natural units throughout).

    For a Python potential (DeepPotential) galpy uses its Python integrators, one orbit at a
    time; ``*_c`` methods need a C-backed potential (the exports, galpy's analytic ones).
    ``integrate_kwargs`` go to ``Orbit.integrate`` (e.g. ``dt`` for a fixed-step C method).
    """
    from galpy.orbit import Orbit
    from galpy.util.conversion import get_physical

    phys = get_physical(pot)
    o = Orbit(
        cartesian_to_galpy(np.atleast_2d(x0), np.atleast_2d(v0)), ro=phys["ro"], vo=phys["vo"]
    )
    t = np.asarray(t, float)
    o.integrate(t, pot, method=method, numcores=numcores, progressbar=False, **integrate_kwargs)
    kw = {"use_physical": False}
    x = np.stack([o.x(t, **kw), o.y(t, **kw), o.z(t, **kw)], axis=-1)
    v = np.stack([o.vx(t, **kw), o.vy(t, **kw), o.vz(t, **kw)], axis=-1)
    return OrbitSet(t, x.reshape(len(o), len(t), 3), v.reshape(len(o), len(t), 3))


def initial_conditions(
    pot: Any,
    n: int,
    seed: int,
    r_range: tuple[float, float],
    mock: Any = None,
    center: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """n bound initial conditions (x, v) in natural units with radii in ``r_range``.

    From ``mock``'s distribution function when given (stars drawn until n fall in range; the
    mock's units must be galpy's natural units); otherwise isotropic positions (log-uniform
    radius) with tangential velocities of 0.5-1 times the local circular speed in ``pot``.
    With ``center`` (data away from the origin: a volume around the Sun), the radii are from
    that centre and the orbits are a disk's: rotation about the z axis at 0.9-1 times the
    circular speed there.
    """
    rng = np.random.default_rng(seed)
    if mock is not None:
        x, v = np.empty((0, 3)), np.empty((0, 3))
        draw = 0
        while len(x) < n:
            ps = mock.sample(4 * n, seed=seed + draw)
            r = np.linalg.norm(ps.x, axis=1)
            keep = (r >= r_range[0]) & (r <= r_range[1])
            x, v = np.concatenate([x, ps.x[keep]]), np.concatenate([v, ps.v[keep]])
            draw += 1
        return x[:n], v[:n]
    r = np.exp(rng.uniform(math.log(r_range[0]), math.log(r_range[1]), n))
    u = rng.normal(size=(n, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    if center is not None:
        x = center + r[:, None] * u
        R = np.hypot(x[:, 0], x[:, 1])
        e_phi = np.stack([-x[:, 1] / R, x[:, 0] / R, np.zeros(n)], axis=1)
        a = acceleration_function(pot)(x)
        v_circ = np.sqrt(np.clip(-(a[:, 0] * x[:, 0] + a[:, 1] * x[:, 1]), 0.0, None))
        return x, e_phi * (v_circ * rng.uniform(0.9, 1.0, n))[:, None]
    x = r[:, None] * u
    a = acceleration_function(pot)(x)
    v_circ = np.sqrt(np.clip(-np.sum(a * x, axis=1), 0.0, None))
    w = np.cross(u, rng.normal(size=(n, 3)))  # random direction perpendicular to x
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    return x, w * (v_circ * rng.uniform(0.5, 1.0, n))[:, None]


def compare_orbits(
    orbits: OrbitSet, pot: Any, reference: OrbitSet | None = None, ref_pot: Any = None
) -> dict:
    """Energy drift of ``orbits`` in ``pot`` and, with a ``reference`` run of the same initial
    conditions, their divergence relative to each orbit's initial radius.

    Returns per-time curves (``t``, ``energy_drift_median``/``_max``, ``divergence_median``/
    ``_p90``) and scalars (``energy_drift_max``, ``divergence_final_median``, ...).
    """
    from .compare import energy_drift, orbit_divergence

    drift = energy_drift(orbits.energy(pot))
    out: dict[str, Any] = {
        "n_orbits": len(orbits),
        "t": orbits.t.tolist(),
        "energy_drift_median": np.median(drift, axis=0).tolist(),
        "energy_drift_max_t": drift.max(axis=0).tolist(),
        "energy_drift_max": float(drift.max()),
    }
    if ref_pot is not None and reference is not None:
        out["reference_energy_drift_max"] = float(energy_drift(reference.energy(ref_pot)).max())
    if reference is not None:
        div = orbit_divergence(orbits.x, reference.x)
        out.update(
            divergence_median=np.median(div, axis=0).tolist(),
            divergence_p90=np.percentile(div, 90, axis=0).tolist(),
            divergence_final_median=float(np.median(div[:, -1])),
            divergence_final_p90=float(np.percentile(div[:, -1], 90)),
        )
    return out


def integrate(
    pot: Any,
    x0: np.ndarray,
    v0: np.ndarray,
    t: np.ndarray,
    method: str = "batched",
    integrator: str = "dop853",
    exported: Any = None,
    export_method: str = "auto",
    **kwargs: Any,
) -> tuple[OrbitSet, Any, dict]:
    """Integrate in the DeepPotential ``pot`` by ``method`` (one of :data:`METHODS`):

    * ``batched``: all orbits at once in the network (:func:`integrate_batched` with
      ``integrator``; ``kwargs`` go to it),
    * ``direct``: galpy's Python dop853, one orbit and one network call per force evaluation,
    * ``exported``: galpy's dop853_c in ``exported``, a C-backed export of ``pot``, built
      here by :func:`~deeppot_galpy.export.export_galpy` (``export_method``) if not given.

    Returns the orbits, the galpy potential they were integrated in (for their energies) and a
    record: ``integrator``, ``seconds`` (integration only) and the export's report if built.
    """
    record: dict[str, Any] = {}
    if method == "exported" and exported is None:
        from .export import export_galpy

        exported, record["export"] = export_galpy(pot, export_method)
    t0 = time.perf_counter()
    if method == "batched":
        orbits = integrate_batched(pot, x0, v0, t, method=integrator, **kwargs)
        record["integrator"], integrated_in = integrator, pot
    elif method == "direct":
        orbits = integrate_galpy(pot, x0, v0, t, method="dop853")
        record["integrator"], integrated_in = "galpy dop853 (Python)", pot
    elif method == "exported":
        orbits = integrate_galpy(exported, x0, v0, t, method="dop853_c")
        name = record["export"]["method"] if "export" in record else "given"
        record["integrator"], integrated_in = f"galpy dop853_c in the {name} export", exported
    else:
        raise ValueError(f"unknown orbit method {method!r}; use one of {METHODS}")
    record["seconds"] = time.perf_counter() - t0
    return orbits, integrated_in, record


def _start_radii(pot: Any, mock: Any) -> tuple[float, float]:
    """Radii to start orbits at: the mock's well-sampled body, else the inner data region."""
    if mock is not None:
        return mock.r_range
    reg = pot.natural_region()
    return max(reg["r_min"], 0.02 * reg["r_max"]), 0.5 * reg["r_max"]


def orbit_study(
    pot: Any,
    out: str | Path,
    n_orbits: int = 100,
    time_span: float | None = None,
    steps: int = 1000,
    method: str = "batched",
    integrator: str = "dop853",
    export_method: str = "auto",
    mock: Any = None,
    seed: int = 0,
) -> dict:
    """Orbits in the DeepPotential ``pot``, scored, written to ``out``/orbits.json and
    ``out``/figures/orbits.png.

    ``n_orbits`` start (seed ``seed``) from ``mock``'s distribution function inside its
    well-sampled radii, or else on near-circular orbits in the inner data region (for data
    away from the origin, a volume around the Sun: disk orbits through it), and run for
    ``time_span`` (natural units; default ten circular periods at their median radius) with
    ``steps`` outputs, by :func:`integrate` (``method``, ``integrator``, ``export_method``).
    With a ``mock`` the same initial conditions are integrated in its true galpy potential,
    and the divergence is measured. Returns the record written, with the figure's path.
    """
    from .rundir import RunDir

    if n_orbits < 1 or steps < 1:
        raise ValueError("the number of orbits and of steps must be positive")
    if mock is not None and pot.model_units != mock.units:
        raise ValueError(
            f"the reference mock {mock.name!r} is in {mock.units}, the model in "
            f"{pot.model_units}: they do not share natural units"
        )
    from .compare import is_centred

    reg = pot.natural_region()
    off_centre = mock is None and not is_centred(reg)  # as the exports decide
    x0, v0 = initial_conditions(
        pot, n_orbits, seed, _start_radii(pot, mock), mock, reg["center"] if off_centre else None
    )
    if time_span is None:
        r = np.median(np.linalg.norm(x0, axis=1))
        phi = math.atan2(reg["center"][1], reg["center"][0]) if off_centre else 0.0
        v_c = math.sqrt(max(float(pot.vcirc(r, phi=phi, use_physical=False)), 1e-12))
        time_span = 10 * 2 * math.pi * r / v_c
    t = np.linspace(0.0, time_span, steps + 1)

    record: dict = {"method": method, "n_orbits": n_orbits, "time": time_span, "steps": steps}
    learned, integrated_in, info = integrate(
        pot, x0, v0, t, method, integrator, export_method=export_method
    )
    record.update(info)
    results = {}
    reference = ref_pot = None
    if mock is not None:
        ref_pot = mock.galpy_potential()
        t0 = time.perf_counter()
        reference = integrate_galpy(ref_pot, x0, v0, t, method="dop853_c")
        record["reference_seconds"] = time.perf_counter() - t0
        results["reference"] = compare_orbits(reference, ref_pot)
    results[method] = compare_orbits(learned, integrated_in, reference, ref_pot)
    record["results"] = results

    run = RunDir(out, create=True)
    run.write_json("orbits", record)
    record["figure"] = str(plot_orbit_comparison(results, run.path / "figures" / "orbits.png"))
    return record


def plot_orbit_comparison(results: dict[str, dict], path: str | Path) -> Path:
    """Energy drift and divergence against time for named :func:`compare_orbits` results."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for name, res in results.items():
        t = np.asarray(res["t"])
        (line,) = axes[0].semilogy(t[1:], np.asarray(res["energy_drift_median"])[1:], label=name)
        axes[0].semilogy(
            t[1:], np.asarray(res["energy_drift_max_t"])[1:], ls=":", c=line.get_color()
        )
        if "divergence_median" in res:
            axes[1].semilogy(
                t[1:],
                np.asarray(res["divergence_median"])[1:],
                c=line.get_color(),
                label=f"{name} (median)",
            )
            axes[1].semilogy(
                t[1:],
                np.asarray(res["divergence_p90"])[1:],
                ls="--",
                c=line.get_color(),
                label=f"{name} (90%)",
            )
    axes[0].set(
        xlabel="t (natural units)",
        ylabel="|E(t)/E(0) - 1|",
        title="energy conservation (solid median, dotted max)",
    )
    axes[1].set(
        xlabel="t (natural units)",
        ylabel="|x - x_ref| / r_0",
        title="divergence from the reference orbits",
    )
    for ax in axes:
        ax.legend(fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
