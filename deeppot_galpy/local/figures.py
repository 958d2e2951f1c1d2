r"""Figures of a potential in the solar neighbourhood, restricted to where the stars are.

Three figures, each drawn only inside the data region of the fit (within ``r_max`` of the
stars' centre: :attr:`DeepPotential.region <deeppot_galpy.galpy_potential.DeepPotential.region>`,
or ``region`` given), since the network says nothing outside it:

* ``local_kz.png``: :math:`K_z(z)/2\pi G` (Msun/pc^2, the equivalent slab surface density,
  signed: negative above the plane) at the Sun's :math:`(R_0, \phi_0)`, above and below the
  plane,
* ``local_rotation.png``: :math:`v_c(R)` and :math:`F_R(R)` in the plane along the line from
  the Sun to the Galactic centre (and beyond it outwards),
* ``local_density.png``: :math:`\rho(R, z)` in the meridional plane through the Sun, the
  error :math:`\sigma_\rho` of the replicates, and the ratio to the truth (or
  the first reference).

Curves carry the replicates' :math:`1\sigma` band (:func:`deeppot_galpy.uncertainty.error_bars`)
and, dashed, the truth of a mock and reference galpy potentials (e.g. the published Milky Way
models ``MWPotential2014``, ``McMillan17``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from astropy.constants import G as G_NEWTON
from matplotlib.figure import Figure

from ..uncertainty import error_bars
from .quantities import (
    DENS,
    FORCE,
    KMS,
    LOCAL_CALIBRATION,
    SURF,
    galpy_quantity,
    with_kz_systematic,
)

__all__ = ["plot_local"]

#: half-width of the figures without a data region (an analytic potential) [kpc]
DEFAULT_HALF_WIDTH = 1.5


def _inside(region: dict | None, sun_xyz: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Mask of Galactocentric points x [kpc] (..., 3) inside the data region (or the default
    half-width around the Sun when there is none)."""
    if region is None:
        return np.linalg.norm(x - sun_xyz, axis=-1) <= DEFAULT_HALF_WIDTH
    return np.linalg.norm(x - np.asarray(region["center"]), axis=-1) <= region["r_max"]


def _cartesian(R: np.ndarray, z: np.ndarray, phi: float) -> np.ndarray:
    return np.stack(np.broadcast_arrays(R * np.cos(phi), R * np.sin(phi), z), axis=-1)


def _curves(ax, x, main, band, others: dict, unit) -> None:
    """Main curve with its 1-sigma band, and the others dashed (NaN outside the region)."""
    y = main.to_value(unit)
    ax.plot(x, y, color="C0", label="fit")
    if band is not None:
        s = band.to_value(unit)
        ax.fill_between(x, y - s, y + s, color="C0", alpha=0.3, lw=0, label="fit $\\pm1\\sigma$")
    for k, (name, values) in enumerate(others.items()):
        # the truth on top: a reference may be the same potential
        style = {"color": "k", "zorder": 3} if name == "truth" else {"color": f"C{k + 1}"}
        ax.plot(x, values.to_value(unit), "--", label=name, **style)
    ax.legend(fontsize=8)


def plot_local(
    out_dir: str | os.PathLike,
    potential: Any,
    R0: u.Quantity,
    z0: u.Quantity,
    phi0: u.Quantity,
    replicates: Sequence[Any] | None = None,
    truth: Any = None,
    references: dict[str, Any] | None = None,
    region: dict | None = None,
    n: int = 81,
) -> list[Path]:
    """Write the three figures (module docstring) into ``out_dir``; returns their paths.

    ``potential`` and ``truth``/``references`` (galpy potentials, physical units through
    their ro/vo) are evaluated at the Sun ``(R0, z0, phi0)`` (Quantities); ``replicates``
    (two or more) give the bands. ``region`` (Galactocentric kpc: ``center``, ``r_max``)
    defaults to the potential's own ``region`` attribute, if any.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    region = region if region is not None else getattr(potential, "region", None)
    others = {"truth": truth} if truth is not None else {}
    others.update(references or {})
    bands = replicates is not None and len(replicates) >= 2
    R0k, z0k, phi = R0.to_value(u.kpc), z0.to_value(u.kpc), float(phi0.to_value(u.rad))
    sun = _cartesian(np.asarray(R0k), np.asarray(z0k), phi)
    # the figures' centre in (R, z): the data region's (the stars' median), else the Sun
    half = region["r_max"] if region is not None else DEFAULT_HALF_WIDTH
    centre = np.asarray(region["center"]) if region is not None else sun
    Rc, zc = float(np.hypot(centre[0], centre[1])), float(centre[2])
    paths = []

    def values(name, R, z, inside):
        """(fit, its 1-sigma band or None, {other: values}) at the points inside the region,
        NaN elsewhere: the network is neither evaluated nor drawn where there are no stars."""
        R, z = R[inside], z[inside]

        def full(q):
            out = np.full(inside.shape, np.nan) * q.unit
            out[inside] = q
            return out

        main = full(galpy_quantity(potential, name, R, z, phi0))
        band = None
        if bands:
            band = error_bars(replicates, R, z, phi0, [name], LOCAL_CALIBRATION, quantity=True)
            band = band[name]
        refs = {k: full(galpy_quantity(p, name, R, z, phi0)) for k, p in others.items()}
        return main, None if band is None else full(band), refs

    # K_z above and below the Sun
    z = np.linspace(-1.1, 1.1, n) * u.kpc
    R = np.full(n, R0k) * u.kpc
    inside = _inside(region, sun, _cartesian(R.value, z.value, phi))
    main, band, refs = values("zforce", R, z, inside)
    if band is not None:  # the same error as local_quantities' K_z
        band = with_kz_systematic(band, z, main)
    slab = 2 * np.pi * G_NEWTON
    fig = Figure(figsize=(6.5, 4.5), layout="constrained")
    ax = fig.subplots()
    _curves(
        ax,
        z.value,
        main / slab,
        None if band is None else band / slab,
        {k: v / slab for k, v in refs.items()},
        SURF,
    )
    ax.axhline(0.0, color="0.7", lw=0.5)
    ax.set(
        xlabel="z [kpc]",
        ylabel="$K_z / 2\\pi G$ [M$_\\odot$ pc$^{-2}$]",
        title=f"vertical force at R = {R0k:.2f} kpc",
    )
    paths.append(out / "local_kz.png")
    fig.savefig(paths[-1], dpi=110)

    # v_c and F_R along the line to the Galactic centre, in the plane
    Rl = np.linspace(Rc - half, Rc + half, n) * u.kpc
    zl = np.zeros(n) * u.kpc
    inside = _inside(region, sun, _cartesian(Rl.value, zl.value, phi))
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax = fig.subplots(1, 2)
    for a, name, unit, label in (
        (ax[0], "vcirc", KMS, "$v_c$ [km/s]"),
        (ax[1], "Rforce", FORCE, "$F_R$ [(km/s)$^2$/kpc]"),
    ):
        _curves(a, Rl.value, *values(name, Rl, zl, inside), unit)
        a.axvline(R0k, color="0.7", lw=0.5)
        a.set(xlabel="R [kpc] (z = 0, towards the Galactic centre: smaller R)", ylabel=label)
    paths.append(out / "local_rotation.png")
    fig.savefig(paths[-1], dpi=110)

    # density in the (R, z) plane through the Sun
    Rg, zg = np.meshgrid(
        np.linspace(Rc - half, Rc + half, n), np.linspace(zc - half, zc + half, n), indexing="xy"
    )
    inside = _inside(region, sun, _cartesian(Rg, zg, phi))
    main, band, refs = values("dens", Rg.ravel() * u.kpc, zg.ravel() * u.kpc, inside.ravel())
    # linear: the range within a local volume is small, and a negative learned density shows
    panels = [(main.to_value(DENS), "$\\rho$ [M$_\\odot$ pc$^{-3}$]")]
    if band is not None:
        panels.append((band.to_value(DENS), "$\\sigma_\\rho$ [M$_\\odot$ pc$^{-3}$]"))
    if refs:
        name, ref = next(iter(refs.items()))
        panels.append(((main / ref).to_value(""), f"$\\rho$ / $\\rho$ ({name})"))
    fig = Figure(figsize=(4.6 * len(panels), 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for a, (image, label) in zip(axes, panels, strict=True):
        im = a.pcolormesh(Rg, zg, image.reshape(Rg.shape))
        a.plot([R0k], [z0k], marker="*", color="w", mec="k", ms=10)
        a.set(xlabel="R [kpc]", ylabel="z [kpc]", aspect="equal")
        fig.colorbar(im, ax=a, label=label)
    paths.append(out / "local_density.png")
    fig.savefig(paths[-1], dpi=110)
    return paths
