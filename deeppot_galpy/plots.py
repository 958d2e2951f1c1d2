r"""Figures of a fit, after the paper's Figs. 2 and 3, plus error profiles.

* ``df_rv.png``: f in the (r, v) plane integrated over angles, model vs truth (or vs the stars'
  histogram when no closed-form f exists), and their ratio (paper Fig. 2).
* ``potential.png``: learned vs true Phi at random stars; Phi and density in the z = 0 slice
  (paper Fig. 3).
* ``errors_vs_radius.png``: force and density errors, and |a|/|a_true|, against radius.
* ``error_bars.png`` (runs with bootstrap replicates): the shell-averaged circular velocity
  :math:`\sqrt{r\,\langle -a_r\rangle}` and density with their :math:`1\sigma` and
  :math:`2\sigma` bands, against the truth where known.

and, on a given (or new) axes, the results of :mod:`deeppot_galpy.compare`:
:func:`plot_error_profile` (median errors against radius), :func:`plot_circular_velocity` and
:func:`plot_vertical_force` (a disk's v_c(R) and K_z(z)).

Figures are built as plain :class:`matplotlib.figure.Figure` objects, not through pyplot, so
writing them neither needs nor changes a display backend (notebooks keep their inline plots).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from .compare import field_errors, radial_profile

if TYPE_CHECKING:
    from .units import Units

__all__ = [
    "run_figures",
    "plot_df_rv",
    "plot_potential",
    "plot_errors_vs_radius",
    "plot_error_bars",
    "plot_error_profile",
    "plot_circular_velocity",
    "plot_vertical_force",
]


def _labels(data) -> tuple[str, str, str, str]:
    units = data.units
    if units.is_physical:
        return (
            f" [{units.length}]",
            f" [{units.velocity}]",
            f" [({units.velocity})$^2$]",
            f" [{units.mass}/{units.length}$^3$]",
        )
    return (" [b]", " [$\\sqrt{GM/b}$]", " [$GM/b$]", " [$M/b^3$]")


def _angle_average_logf(log_f, r, v, center, n_dir: int, seed: int) -> np.ndarray:
    """ln of f averaged over random directions of x and v at each (r, v)."""
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(2, n_dir, 3))
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    R, V = np.meshgrid(r, v, indexing="ij")
    x = center + R.reshape(-1, 1, 1) * d[0][None]
    vel = V.reshape(-1, 1, 1) * d[1][None]
    lf = log_f(x.reshape(-1, 3), vel.reshape(-1, 3)).reshape(-1, n_dir)
    m = lf.max(axis=1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)  # all -inf (e.g. unbound for a true f): f = 0 there
    with np.errstate(divide="ignore"):
        return (m[:, 0] + np.log(np.mean(np.exp(lf - m), axis=1))).reshape(R.shape)


def plot_df_rv(path, ensemble, data, truth=None, seed: int = 0) -> None:
    """Paper Fig. 2: the angle-integrated f(r, v) of the model against the truth."""
    ul, uv, _, _ = _labels(data)
    center = np.asarray(data.region()["center"])
    r_max = np.percentile(np.linalg.norm(data.x - center, axis=1), 95)
    v_max = np.percentile(np.linalg.norm(data.v, axis=1), 99.5)
    r = np.linspace(r_max / 60, r_max, 60)
    v = np.linspace(v_max / 60, v_max, 60)

    def flow_logf(x, vel):
        return ensemble.log_prob_and_grad(np.concatenate([x, vel], 1))[0]

    jac = np.log(16 * np.pi**2 * r[:, None] ** 2 * v[None, :] ** 2)
    model = np.exp(_angle_average_logf(flow_logf, r, v, center, 24, seed) + jac)
    if truth is not None and _has_df(truth):
        ref = np.exp(_angle_average_logf(truth.log_df, r, v, center, 24, seed) + jac)
        ref_name = "true f"
    else:  # the stars themselves, as a normalised histogram on the same grid
        dr, dv = r[1] - r[0], v[1] - v[0]
        rr = np.linalg.norm(data.x - center, axis=1)
        vv = np.linalg.norm(data.v, axis=1)
        edges = (np.append(r - dr / 2, r[-1] + dr / 2), np.append(v - dv / 2, v[-1] + dv / 2))
        ref = np.histogram2d(rr, vv, bins=edges)[0] / (len(rr) * dr * dv)
        ref_name = "stars (histogram)"
    fig = Figure(figsize=(14, 4.2), layout="constrained")
    ax = fig.subplots(1, 3)
    ext = (r[0], r[-1], v[0], v[-1])
    vmax = max(ref.max(), model.max())
    norm = LogNorm(vmin=vmax * 1e-3, vmax=vmax)
    for a, img, title in ((ax[0], ref, ref_name), (ax[1], model, "flow ensemble")):
        im = a.imshow(img.T, origin="lower", extent=ext, aspect="auto", norm=norm, cmap="viridis")
        a.set_title(f"{title}: $\\int f\\,d\\Omega_x d\\Omega_v$")
        fig.colorbar(im, ax=a, label="probability density")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(ref > vmax * 1e-3, model / ref, np.nan)
    im = ax[2].imshow(
        ratio.T, origin="lower", extent=ext, aspect="auto", cmap="RdBu_r", vmin=0.8, vmax=1.2
    )
    ax[2].set_title(f"ratio flow / {ref_name}")
    fig.colorbar(im, ax=ax[2], label="ratio")
    for a in ax:
        a.set_xlabel("r" + ul)
        a.set_ylabel("v" + uv)
    fig.savefig(path, dpi=110)


def _has_df(truth) -> bool:
    try:
        truth.log_df(np.zeros((1, 3)), np.zeros((1, 3)))
    except NotImplementedError:
        return False
    return True


def plot_potential(path, net, data, truth=None, seed: int = 0, extent: float | None = None) -> None:
    """Paper Fig. 3: Phi at random stars vs truth; Phi and density in the z = 0 slice."""
    from .compare import as_field

    ul, _, up, ud = _labels(data)
    model = as_field(net, data.units.G)
    center = np.asarray(data.region()["center"])
    if extent is None:
        extent = truth.r_range[1] if truth is not None else 0.5 * data.region()["r_max"]
    g = np.linspace(-extent, extent, 80)
    X, Y = np.meshgrid(g, g, indexing="xy")
    grid = np.stack([X.ravel(), Y.ravel(), np.zeros(X.size)], 1) + center
    phi_m, rho_m = model.potential(grid), model.density(grid)
    fig = Figure(figsize=(15, 4.5), layout="constrained")
    ax = fig.subplots(1, 3)
    near = np.flatnonzero(np.linalg.norm(data.x - center, axis=1) <= extent)
    idx = np.random.default_rng(seed).choice(near, min(2000, len(near)), replace=False)
    xs = data.x[idx]
    if truth is not None:
        pm, pt = model.potential(xs), truth.potential(xs)
        off = np.median(pm - pt)
        ax[0].scatter(pt, pm - off, s=2, alpha=0.5, label="stars")
        lims = [pt.min(), pt.max()]
        ax[0].plot(lims, lims, "k--", lw=1, label="identity")
        ax[0].set_xlabel("true $\\Phi$" + up)
        ax[0].set_ylabel("learned $\\Phi$ - offset" + up)
        ax[0].legend()
    else:
        ax[0].hist(model.potential(xs), bins=60)
        ax[0].set_xlabel("learned $\\Phi$ at the stars" + up)
        ax[0].set_ylabel("stars")
    ax[0].set_title(f"potential at random stars within {extent:.3g} of the centre")
    cs = ax[1].contour(X, Y, phi_m.reshape(X.shape), levels=12, cmap="viridis")
    ax[1].clabel(cs, fontsize=7)
    if truth is not None:
        ref = truth.potential(grid) + np.median(phi_m - truth.potential(grid))
        ax[1].contour(
            X,
            Y,
            ref.reshape(X.shape),
            levels=cs.levels,
            colors="k",
            linestyles="--",
            linewidths=0.8,
        )
    ax[1].set_title("$\\Phi$ in z = 0 (solid: learned" + (", dashed: true)" if truth else ")"))
    pos = np.where(rho_m > 0, rho_m, np.nan).reshape(X.shape)
    im = ax[2].imshow(
        pos,
        origin="lower",
        extent=(-extent, extent, -extent, extent),
        norm=LogNorm(vmin=np.nanmax(pos) * 1e-4, vmax=np.nanmax(pos)),
        cmap="magma",
    )
    fig.colorbar(im, ax=ax[2], label="learned $\\rho$" + ud)
    if truth is not None:
        rho_t = truth.density(grid).reshape(X.shape)
        ax[2].contour(
            X,
            Y,
            rho_t,
            levels=np.geomspace(rho_t.min(), rho_t.max(), 8),
            colors="w",
            linewidths=0.7,
        )
    ax[2].set_title("density in z = 0 (white: true)" if truth else "density in z = 0")
    for a in ax[1:]:
        a.set_xlabel("x - x$_c$" + ul)
        a.set_ylabel("y - y$_c$" + ul)
    fig.savefig(path, dpi=110)


def plot_errors_vs_radius(path, net, truth, data, seed: int = 0) -> None:
    """Force and density errors and the force ratio against radius, on held-out true stars."""
    ul = _labels(data)[0]
    held = truth.sample(8192, seed + 20_000)
    r = held.r
    sel = (r >= truth.r_range[0] / 2) & (r <= truth.r_range[1] * 2)
    errs = field_errors(net, truth, held.x[sel], data.units.G)
    r = r[sel]
    edges = np.geomspace(r.min(), r.max(), 15)
    mid = np.sqrt(edges[1:] * edges[:-1])
    medians = radial_profile(r, errs, edges)
    fig = Figure(figsize=(15, 4.2), layout="constrained")
    ax = fig.subplots(1, 3)
    for a, key, label in (
        (ax[0], "force", "|a - a$_{true}$| / |a$_{true}$|"),
        (ax[1], "density", "|$\\rho - \\rho_{true}$| / $\\rho_{true}$"),
        (ax[2], "force_ratio", "|a| / |a$_{true}$|"),
    ):
        a.scatter(r, errs[key], s=1, alpha=0.2, color="0.5", label="held-out stars")
        a.plot(mid, medians[key], "C3o-", label="median")
        a.set_xscale("log")
        a.set_xlabel("r" + ul)
        a.set_ylabel(label)
        for lim in truth.r_range:
            a.axvline(lim, color="k", ls=":", lw=0.8)
        a.legend()
    ax[0].set_yscale("log")
    ax[1].set_yscale("log")
    ax[2].axhline(1, color="k", lw=0.8)
    ax[2].set_ylim(0.8, 1.2)
    ax[0].set_title("force error (dotted: scored range)")
    ax[1].set_title("density error")
    ax[2].set_title("force ratio (bias)")
    fig.savefig(path, dpi=110)


def _shell_profiles(field, center: np.ndarray, r: np.ndarray, seed: int) -> np.ndarray:
    """Shell means over 64 fixed directions: (2, len(r)) of v_c = sqrt(r <-a_r>) and rho."""
    d = np.random.default_rng(seed).normal(size=(64, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    x = (center + r[:, None, None] * d[None]).reshape(-1, 3)
    a_r = np.sum(field.acceleration(x).reshape(len(r), 64, 3) * d, axis=-1).mean(1)
    rho = field.density(x).reshape(len(r), 64).mean(1)
    return np.stack([np.sqrt(np.clip(-r * a_r, 0.0, None)), rho])


def plot_error_bars(
    path, net, replicates, data, truth=None, seed: int = 0, factors: dict | None = None
) -> None:
    """Shell-averaged v_c(r) and density with the replicates' 1 and 2 sigma bands, calibrated
    by ``factors`` (default: :func:`~deeppot_galpy.potential.replicates.calibration` of the
    data region)."""
    from .compare import as_field
    from .potential.replicates import calibration, replicate_std

    ul, uv, _, ud = _labels(data)
    G = data.units.G
    region = data.region()
    center = np.asarray(region["center"])
    r = np.geomspace(max(region["r_min"], 1e-2 * region["r_max"]), region["r_max"], 32)
    main = _shell_profiles(as_field(net, G), center, r, seed)
    profiles = [_shell_profiles(as_field(n, G), center, r, seed) for n in replicates]
    factors = factors or calibration(region)
    # v_c takes the force's calibration, the density its own
    sigma = np.stack(
        [
            replicate_std([p[i] for p in profiles], kind, factors)
            for i, kind in enumerate(("force", "density"))
        ]
    )
    # where the stars thin out, the replicates share the extrapolation and the bands shrink
    r90, r99 = np.percentile(np.linalg.norm(data.x - center, axis=1), [90, 99])
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax = fig.subplots(1, 2)
    for i, (a, label) in enumerate(((ax[0], "$v_c$" + uv), (ax[1], "density" + ud))):
        a.axvline(r90, color="0.4", ls=":", lw=1, label="90% / 99% of the stars inside")
        a.axvline(r99, color="0.4", ls=":", lw=1)
        for k, alpha in ((2, 0.2), (1, 0.35)):
            a.fill_between(
                r,
                main[i] - k * sigma[i],
                main[i] + k * sigma[i],
                color="C0",
                alpha=alpha,
                lw=0,
                label=f"{k}$\\sigma$ ({len(replicates)} replicates)",
            )
        a.plot(r, main[i], "C0-", label="Deep Potential")
        if truth is not None:
            a.plot(r, _shell_profiles(as_field(truth, G), center, r, seed)[i], "k--", label="truth")
        a.set_xscale("log")
        a.set_xlabel("r" + ul)
        a.set_ylabel(label)
        a.legend()
        a.grid(alpha=0.3, which="both")
    ax[1].set_yscale("log")
    ax[0].set_title("circular velocity from the shell-mean radial force")
    ax[1].set_title("shell-mean density")
    fig.savefig(path, dpi=110)


def run_figures(
    folder,
    net,
    ensemble,
    data,
    truth,
    seed: int = 0,
    replicates: list | None = None,
    factors: dict | None = None,
) -> list[Path]:
    """Write all figures of a run into ``folder``; returns their paths. ``factors``
    calibrate the error bands (:func:`~deeppot_galpy.potential.replicates.calibration`).

    The profiles in shells around the data centre (errors against radius, v_c and density
    with error bands) are drawn for a galaxy, not for a survey volume around the Sun, where
    they mean nothing: ``deeppot local RUN_DIR`` draws that volume's own figures.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "df_rv.png", folder / "potential.png"]
    plot_df_rv(paths[0], ensemble, data, truth, seed)
    plot_potential(paths[1], net, data, truth, seed)
    if data.region().get("survey_volume"):
        return paths
    if truth is not None:
        paths.append(folder / "errors_vs_radius.png")
        plot_errors_vs_radius(paths[-1], net, truth, data, seed)
    if replicates:
        paths.append(folder / "error_bars.png")
        plot_error_bars(paths[-1], net, replicates, data, truth, seed, factors)
    return paths


# ---- metrics from deeppot_galpy.compare on axes -------------------------------------------------
def _unit_label(units: Units | None, kind: str) -> str:
    if units is None or not units.is_physical:
        return "(N-body units)" if units is not None else "(model units)"
    return f"[{units.quantity(kind).to_string('latex_inline')}]"


def _axes(ax):
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=(6.0, 4.2), layout="constrained")
    return fig, fig.subplots()


def plot_error_profile(
    metrics: dict,
    ax=None,
    keys: tuple[str, ...] = ("force", "density", "phi"),
    units: Units | None = None,
    label: str | None = None,
    title: str = "Median error against radius",
) -> Figure:
    """Median errors per radial bin from :func:`~deeppot_galpy.compare.potential_metrics` (or
    its ``radial`` dict)."""
    prof = metrics.get("radial", metrics)
    fig, ax = _axes(ax)
    mid = np.sqrt(np.asarray(prof["r_lo"]) * np.asarray(prof["r_hi"]))
    names = {
        "force": "force",
        "force_R": "force, R part",
        "force_z": "force, z part",
        "density": "density",
        "phi": "potential",
    }
    for i, key in enumerate(k for k in keys if k in prof):
        name = names.get(key, key) if label is None else f"{label}: {names.get(key, key)}"
        ax.plot(mid, prof[key], f"C{i}o-", label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"radius r {_unit_label(units, 'length')}")
    ax.set_ylabel("median relative error")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    return fig


def plot_circular_velocity(
    metrics: dict,
    ax=None,
    units: Units | None = None,
    labels: tuple[str, str] = ("model", "reference"),
    title: str = "Circular velocity in the plane",
) -> Figure:
    """v_c(R) of model and reference from :func:`~deeppot_galpy.compare.disk_metrics`, with
    the relative error."""
    vc = metrics["vc"]
    fig, ax = _axes(ax)
    ax.plot(vc["R"], vc["reference"], "k-", label=labels[1])
    ax.plot(vc["R"], vc["model"], "C3--", label=labels[0])
    ax.set_xlabel(f"cylindrical radius R {_unit_label(units, 'length')}")
    ax.set_ylabel(f"$v_c$ {_unit_label(units, 'velocity')}")
    ax.set_title(f"{title} (median error {100 * metrics['vc_err_median']:.2g}%)")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def plot_vertical_force(
    metrics: dict,
    ax=None,
    units: Units | None = None,
    labels: tuple[str, str] = ("model", "reference"),
    title: str | None = None,
) -> Figure:
    """|K_z|(z) at R_sun of model and reference from :func:`~deeppot_galpy.compare.disk_metrics`."""
    kz = metrics["kz"]
    fig, ax = _axes(ax)
    ax.plot(kz["z"], np.abs(kz["reference"]), "k-", label=labels[1])
    ax.plot(kz["z"], np.abs(kz["model"]), "C0--", label=labels[0])
    ax.set_xlabel(f"height z {_unit_label(units, 'length')}")
    ax.set_ylabel(f"$|K_z|$ {_unit_label(units, 'acceleration')}")
    if title is None:
        title = (
            f"Vertical force at R = {kz['R']:.3g} "
            f"(median error {100 * metrics['kz_err_median']:.2g}%)"
        )
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    return fig
