r"""The learned potential as a galpy ``Potential``: :class:`DeepPotential`.

galpy works in natural units (:math:`G = 1`, length ``ro`` kpc, velocity ``vo`` km/s). A network
trained in its own units (:class:`~deeppot_galpy.units.Units`) is evaluated at
:math:`\vec x_{model} = \ell\,\vec x_{nat}` and converted back with

.. math::
    \Phi_{nat} = \Phi_{model} / \nu^2, \qquad
    \nabla\Phi_{nat} = \frac{\ell}{\nu^2}\,\nabla\Phi_{model}, \qquad
    \nabla\nabla\Phi_{nat} = \frac{\ell^2}{\nu^2}\,\nabla\nabla\Phi_{model},

where :math:`(\ell, \nu)` = :meth:`Units.natural_scales(ro, vo)
<deeppot_galpy.units.Units.natural_scales>`: ro kpc and vo km/s expressed in the model's length
and velocity units (both 1 for N-body models, which *are* natural units). galpy's cylindrical
quantities follow from the Cartesian gradient :math:`\vec g` and Hessian :math:`H` with
:math:`\hat e_R = (\cos\phi, \sin\phi, 0)`, :math:`\hat e_\phi = (-\sin\phi, \cos\phi, 0)`:

.. math::
    F_R = -\vec g\cdot\hat e_R, \quad \tau_\phi = -R\,\vec g\cdot\hat e_\phi, \quad F_z = -g_z,

    \partial^2_R\Phi = \hat e_R^T H \hat e_R, \quad
    \partial^2_\phi\Phi = R^2\,\hat e_\phi^T H \hat e_\phi - R\,\vec g\cdot\hat e_R, \quad
    \partial_R\partial_\phi\Phi = \vec g\cdot\hat e_\phi + R\,\hat e_\phi^T H \hat e_R,

    \partial_R\partial_z\Phi = \hat e_R^T H \hat e_z, \quad
    \partial_\phi\partial_z\Phi = R\,\hat e_\phi^T H \hat e_z, \quad
    \rho = \operatorname{tr} H / 4\pi .

All derivatives are exact (autograd, or the hand-written backward pass of
:class:`NumpyPotentialMLP` for a few points) and evaluated in float64, so forces are the exact
gradient of the potential and orbits conserve the network's energy.
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from typing import Any

import numpy as np
import torch
from galpy.potential import Potential
from scipy.special import expit

from .potential import PotentialNet
from .potential.replicates import calibration, fit_calibration
from .potential.symmetry import invariant_inputs
from .units import Units

__all__ = ["DeepPotential", "NumpyPotentialMLP", "OutsideDataWarning"]

# Up to this many points a numpy forward/backward pass beats torch's per-call overhead
# (~45 us against ~170 us for one point); beyond it torch's batched kernels win.
_NUMPY_MAX_POINTS = 4
_TORCH_BATCH = 16384


class OutsideDataWarning(UserWarning):
    """The potential was evaluated far outside the volume its training stars cover."""


class NumpyPotentialMLP:
    r"""Phi and grad Phi of a :class:`PotentialNet` in plain float64 numpy, for a few points.

    galpy's orbit integrators call a Python potential one point at a time, where torch's
    dispatch overhead dominates; a hand-written backward pass through the small MLP is ~4x
    faster there. Backward pass: with pre-activations :math:`z_k = W_k h_{k-1} + b_k`,
    :math:`\delta_{k-1} = W_k^T (\sigma'(z_k) \odot \delta_k)`, starting from the output weights.
    """

    def __init__(self, net: PotentialNet):
        linears = [m for m in net.mlp if isinstance(m, torch.nn.Linear)]
        weights = [
            (m.weight.detach().cpu().double().numpy(), m.bias.detach().cpu().double().numpy())
            for m in linears
        ]
        self.hidden = weights[:-1]
        self.w_out = weights[-1][0][0]
        self.b_out = float(weights[-1][1][0])
        self.center = net.center.detach().cpu().double().numpy()
        self.length = float(net.length_scale)
        self.phi_scale = float(net.phi_scale)
        self.activation = net.config.activation
        self.symmetry, self.softening = net.config.symmetry, net.config.softening
        self.vertical = net.config.vertical
        self.input_center = self.inputs(self.center[None])[0]

    def _act(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """sigma(z) and sigma'(z)."""
        if self.activation == "silu":
            s = expit(z)
            return z * s, s * (1.0 + z * (1.0 - s))
        if self.activation == "tanh":
            t = np.tanh(z)
            return t, 1.0 - t * t
        return np.logaddexp(0.0, z), expit(z)  # softplus

    def inputs(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The MLP's inputs (before centring) and their Jacobian in x / L (None: identity):
        position, or the symmetry's invariants, in units of the length scale."""
        return invariant_inputs(x / self.length, self.symmetry, self.softening, self.vertical)[:2]

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], np.ndarray | None]:
        """The network's output (N,) at x (N, 3), each hidden layer's sigma'(z) and the
        inputs' Jacobian."""
        h, jac = self.inputs(x)
        h = h - self.input_center
        slopes = []
        for w, b in self.hidden:
            h, ds = self._act(h @ w.T + b)
            slopes.append(ds)
        return h @ self.w_out + self.b_out, slopes, jac

    def phi(self, x: np.ndarray) -> np.ndarray:
        """Phi (N,) at x (N, 3) in the model's units, without the backward pass."""
        return self.phi_scale * self._forward(x)[0]

    def phi_grad(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(Phi (N,), grad Phi (N, 3)) at x (N, 3) in the model's units."""
        phi, slopes, jac = self._forward(x)
        delta = self.w_out
        for (w, _), ds in zip(reversed(self.hidden), reversed(slopes), strict=True):
            delta = (delta * ds) @ w
        if jac is not None:
            delta = np.einsum("nik,nk->ni", jac, delta)
        return self.phi_scale * phi, (self.phi_scale / self.length) * delta


def _is_scalar(a: Any) -> bool:
    return isinstance(a, (float, int, np.floating, np.integer))


class DeepPotential(Potential):
    """A trained :class:`~deeppot_galpy.potential.PotentialNet` as a galpy ``Potential``.

    Get one with :meth:`DeepPotential.load` from a run directory, or construct it from a network,
    its training ``units`` and the data ``region`` (:meth:`PhaseSpace.region()
    <deeppot_galpy.phasespace.PhaseSpace.region>`). ``ro``/``vo`` (kpc, km/s or Quantity) set
    galpy's natural units; a model in physical units (kpc, km/s) is mapped through them and has
    physical output on by default, an N-body model is used as natural units directly.
    ``amp`` scales the potential like any galpy amplitude. ``outside_factor``: evaluating beyond
    this many ``r_max`` from the data centre warns once (:class:`OutsideDataWarning`).
    ``calibration``: the factors on the replicates' spread that make the fit's error bars
    (:attr:`error_calibration`; :meth:`load` reads the ones the fit recorded).
    """

    def __init__(
        self,
        net: PotentialNet,
        units: Units | None = None,
        region: dict | None = None,
        ro: float | Any = None,
        vo: float | Any = None,
        amp: float = 1.0,
        device: str | torch.device = "cpu",
        outside_factor: float = 1.5,
        calibration: dict[str, float] | None = None,
    ):
        Potential.__init__(self, amp=amp, ro=ro, vo=vo)
        self._model_units = units or Units.nbody()
        if self._model_units.is_physical:
            self.turn_physical_on()
        self._region = region
        self._calibration = calibration
        # Squared distance from the data centre beyond which evaluation warns (model units).
        self._outside_r2 = (
            math.inf if region is None else (float(outside_factor) * region["r_max"]) ** 2
        )
        self._scale_memo: tuple = (None, None)
        self._device = str(device)
        self._set_network(net)

    @classmethod
    def load(
        cls,
        run_dir: str | os.PathLike,
        ro: float | Any = None,
        vo: float | Any = None,
        amp: float = 1.0,
        device: str | torch.device = "cpu",
    ) -> DeepPotential:
        """The potential saved in run directory ``run_dir`` (``potential.safetensors/json``)."""
        from .rundir import RunDir

        net, meta = RunDir(run_dir).load_potential()
        units, region = Units.from_dict(meta["units"]), meta.get("region")
        return cls(net, units, region, ro, vo, amp, device, calibration=fit_calibration(meta))

    @classmethod
    def load_replicates(cls, run_dir: str | os.PathLike, **options: Any) -> list[DeepPotential]:
        """The run's bootstrap replicates (``potential_replicates``), [] if it has none.

        ``options`` are :meth:`load`'s (ro, vo, amp, device). Their spread is the fit's error
        bar: :func:`deeppot_galpy.uncertainty.error_bars`.
        """
        from .rundir import RunDir

        main = cls.load(run_dir, **options)
        return [main._with_network(net) for net in RunDir(run_dir).load_replicates()]

    def _with_network(self, net: PotentialNet) -> DeepPotential:
        """This potential (units, region, ro, vo, amp, device) with another network."""
        other = copy.copy(self)
        other._set_network(net)
        return other

    def _set_network(self, net: PotentialNet) -> None:
        # A private float64 copy: float32 forces are not the exact gradient of a float32
        # potential at the 1e-7 level, which shows up as energy drift in long integrations.
        self._net = copy.deepcopy(net).to(device=self._device, dtype=torch.float64).eval()
        self._net.requires_grad_(False)
        self._numpy = NumpyPotentialMLP(self._net)
        # galpy asks for phi only of non-axisymmetric potentials (the axis is the z axis)
        self.isNonAxi = net.config.symmetry == "none"
        # the data centre in the network's inputs, once: the region check is on the orbit path
        if self._region is not None:
            center = np.reshape(np.asarray(self._region["center"], dtype=np.float64), (1, 3))
            self._region_inputs = self._numpy.inputs(center)[0]
        self._cache: tuple | None = None
        self._warned_outside = False

    # ---------------------------------------------------------------- properties and state

    @property
    def network(self) -> PotentialNet:
        """The float64 network this potential evaluates (model units)."""
        return self._net

    @property
    def model_units(self) -> Units:
        return self._model_units

    @property
    def error_calibration(self) -> dict[str, float]:
        """The factors on the replicates' spread per kind of quantity (``phi``, ``force``,
        ``density``) that make this fit's 1-sigma errors
        (:func:`~deeppot_galpy.potential.replicates.calibration`)."""
        return self._calibration or calibration(self._region)

    @property
    def region(self) -> dict | None:
        """The data region in model units (``center``, ``r_min``, ``r_max``, ``lo``, ``hi``)."""
        return self._region

    def natural_region(self) -> dict | None:
        """The data region in galpy natural units (``center``, ``r_min``, ``r_max``)."""
        if self._region is None:
            return None
        lf, _ = self._scales()
        return {
            "center": np.asarray(self._region["center"]) / lf,
            "r_min": self._region["r_min"] / lf,
            "r_max": self._region["r_max"] / lf,
        }

    def __repr__(self) -> str:
        cfg = self._net.config
        units = self._model_units.length or "nbody"
        return (
            f"DeepPotential(hidden={cfg.hidden}, activation={cfg.activation!r}, "
            f"symmetry={cfg.symmetry!r}, units={units!r}, "
            f"amp={self._amp}, ro={self._ro}, vo={self._vo}, "
            f"physical={'on' if self._roSet and self._voSet else 'off'})"
        )

    def plotRotcurve(self, *args, **kwargs):
        """galpy's rotation-curve plot, along phi = 0 unless ``phi=`` is given.

        galpy's list-of-potentials functions refuse a non-axisymmetric potential without
        ``phi``; the single-potential methods (``vcirc``) already default to phi = 0.
        """
        kwargs.setdefault("phi", 0.0)
        return Potential.plotRotcurve(self, *args, **kwargs)

    def __getstate__(self) -> dict:
        # Weights travel as numpy arrays plus the architecture record: no pickled torch code.
        state = {k: v for k, v in self.__dict__.items() if k not in ("_net", "_numpy", "_cache")}
        state["_net_metadata"] = self._net.metadata()
        state["_net_weights"] = {k: v.cpu().numpy() for k, v in self._net.state_dict().items()}
        return state

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        meta, weights = state.pop("_net_metadata"), state.pop("_net_weights")
        self.__dict__.update(state)
        net = PotentialNet.from_metadata(meta)
        net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in weights.items()})
        warned = self._warned_outside
        self._set_network(net)
        self._warned_outside = warned

    # ---------------------------------------------------------------- Cartesian evaluation

    def _scales(self) -> tuple[float, float]:
        """(length, velocity) of one natural unit in model units, for the current ro, vo."""
        # Memoised: an astropy conversion costs more than a network pass on one point.
        key = (self._ro, self._vo)
        if self._scale_memo[0] != key:
            self._scale_memo = (key, self._model_units.natural_scales(self._ro, self._vo))
        return self._scale_memo[1]

    def _check_region(self, x_model: np.ndarray) -> None:
        if self._warned_outside or self._region is None:
            return
        # distance as the network sees it: in (R, z) or r for a symmetric one, since a whole
        # ring or shell is as constrained as the data on it
        d = self._numpy.inputs(np.atleast_2d(x_model))[0] - self._region_inputs
        d2 = self._numpy.length**2 * np.sum(d * d, axis=-1)
        if np.any(d2 > self._outside_r2):
            self._warned_outside = True
            symmetry = self._net.config.symmetry
            where = "" if symmetry == "none" else f" ({symmetry}: in its invariants)"
            warnings.warn(
                f"DeepPotential evaluated at distance {math.sqrt(np.max(d2)):.3g} from the data "
                f"centre{where}, beyond {math.sqrt(self._outside_r2):.3g} (model units; the data "
                f"reach r_max = {self._region['r_max']:.3g}): the network is not constrained by "
                "stars there (warning once per potential)",
                OutsideDataWarning,
                stacklevel=4,
            )

    def _point_forces(self, R: float, z: float, phi: float) -> dict[str, float]:
        """Potential and forces at one point: the orbit integrators' hot path."""
        lf, vf = self._scales()
        c, s = math.cos(phi), math.sin(phi)
        xm = np.array([[lf * R * c, lf * R * s, lf * z]])
        self._check_region(xm)
        p, g = self._numpy.phi_grad(xm)
        k = lf / vf**2
        gx, gy, gz = (float(v) * k for v in g[0])
        return {
            "phi": float(p[0]) / vf**2,
            "Rforce": -(gx * c + gy * s),
            "zforce": -gz,
            "phitorque": -R * (-gx * s + gy * c),
        }

    def _raw(self, x: np.ndarray, order: int) -> tuple[np.ndarray, ...]:
        """(Phi, grad, [Hessian]) at natural-unit positions x (N, 3), natural units, no amp."""
        lf, vf = self._scales()
        xm = np.asarray(x, dtype=np.float64) * lf
        self._check_region(xm)
        if order <= 1 and len(xm) <= _NUMPY_MAX_POINTS:
            phi, grad = self._numpy.phi_grad(xm)
            return phi / vf**2, grad * (lf / vf**2)
        if len(xm) == 0:
            return tuple(np.zeros((0,) + (3,) * k) for k in range(order + 1))
        with torch.enable_grad():
            parts = [
                self._net.hessian(xb) if order == 2 else self._net.gradient(xb)
                for xb in torch.as_tensor(xm, device=self._device).split(_TORCH_BATCH)
            ]
        phi, grad, *hess = (
            np.concatenate([p[k].cpu().numpy() for p in parts]) for k in range(order + 1)
        )
        scaled = (phi / vf**2, grad * (lf / vf**2))
        return scaled + (hess[0] * (lf**2 / vf**2),) if order == 2 else scaled

    def cartesian(self, x: np.ndarray, order: int = 1) -> tuple[np.ndarray, ...]:
        """(Phi (N,), grad Phi (N, 3)[, Hessian (N, 3, 3)]) at x (N, 3), natural units.

        One batched network call; ``amp`` applied. ``order`` 0 and 1 both return the gradient
        (it comes with the potential at little extra cost); 2 adds the Hessian.
        """
        return tuple(self._amp * a for a in self._raw(np.atleast_2d(x), max(order, 1)))

    def acceleration(self, x: np.ndarray) -> np.ndarray:
        """-grad Phi at natural-unit Cartesian positions x (N, 3), ``amp`` applied."""
        return -self.cartesian(x)[1]

    # ---------------------------------------------------------------- cylindrical, cached

    def _cyl(self, R, z, phi, order: int) -> tuple:
        """Cylindrical derivatives at (R, z, phi): cached, so galpy's successive
        Rforce/zforce/phitorque (or six second-derivative) calls at one point cost one pass.

        The potential is static, so t is not part of the key.
        """
        phi = 0.0 if phi is None else phi
        scalar = _is_scalar(R) and _is_scalar(z) and _is_scalar(phi)
        if scalar:
            key = (float(R), float(z), float(phi), self._ro, self._vo)
        else:
            R, z, phi = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (R, z, phi)))
            key = (R.shape, R.tobytes(), z.tobytes(), phi.tobytes(), self._ro, self._vo)
        if self._cache is not None and self._cache[0] == key and self._cache[1] >= order:
            return self._cache[2]
        if scalar and order == 1:
            self._cache = (key, order, self._point_forces(*key[:3]))
            return self._cache[2]
        Rf, zf, pf = (np.ravel(a).astype(np.float64) for a in (R, z, phi))
        c, s = np.cos(pf), np.sin(pf)
        x = np.stack([Rf * c, Rf * s, zf], axis=-1)
        out = self._raw(x, order)
        g = out[1]
        g_R = g[:, 0] * c + g[:, 1] * s
        g_phi = -g[:, 0] * s + g[:, 1] * c
        fields = {"phi": out[0], "Rforce": -g_R, "zforce": -g[:, 2], "phitorque": -Rf * g_phi}
        if order == 2:
            H = out[2]
            e_R = np.stack([c, s, np.zeros_like(c)], axis=-1)
            e_p = np.stack([-s, c, np.zeros_like(c)], axis=-1)
            He_R = np.einsum("nij,nj->ni", H, e_R)
            He_p = np.einsum("nij,nj->ni", H, e_p)
            fields.update(
                R2deriv=np.einsum("ni,ni->n", e_R, He_R),
                z2deriv=H[:, 2, 2],
                Rzderiv=He_R[:, 2],
                phi2deriv=Rf**2 * np.einsum("ni,ni->n", e_p, He_p) - Rf * g_R,
                Rphideriv=g_phi + Rf * np.einsum("ni,ni->n", e_p, He_R),
                phizderiv=Rf * He_p[:, 2],
                dens=np.trace(H, axis1=1, axis2=2) / (4.0 * math.pi),
            )
        if scalar:
            fields = {k: float(v[0]) for k, v in fields.items()}
        else:
            fields = {k: v.reshape(R.shape) for k, v in fields.items()}
        self._cache = (key, order, fields)
        return fields

    def _field(self, name: str, R, z, phi, order: int):
        value = self._cyl(R, z, phi, order)[name]
        # Arrays are handed out as copies so a caller's in-place edit cannot corrupt the cache.
        return value if isinstance(value, float) else value.copy()

    def _evaluate(self, R, z, phi=0.0, t=0.0):
        return self._field("phi", R, z, phi, 1)

    def _Rforce(self, R, z, phi=0.0, t=0.0):
        return self._field("Rforce", R, z, phi, 1)

    def _zforce(self, R, z, phi=0.0, t=0.0):
        return self._field("zforce", R, z, phi, 1)

    def _phitorque(self, R, z, phi=0.0, t=0.0):
        return self._field("phitorque", R, z, phi, 1)

    def _dens(self, R, z, phi=0.0, t=0.0):
        return self._field("dens", R, z, phi, 2)

    def _R2deriv(self, R, z, phi=0.0, t=0.0):
        return self._field("R2deriv", R, z, phi, 2)

    def _z2deriv(self, R, z, phi=0.0, t=0.0):
        return self._field("z2deriv", R, z, phi, 2)

    def _Rzderiv(self, R, z, phi=0.0, t=0.0):
        return self._field("Rzderiv", R, z, phi, 2)

    def _phi2deriv(self, R, z, phi=0.0, t=0.0):
        return self._field("phi2deriv", R, z, phi, 2)

    def _Rphideriv(self, R, z, phi=0.0, t=0.0):
        return self._field("Rphideriv", R, z, phi, 2)

    def _phizderiv(self, R, z, phi=0.0, t=0.0):
        return self._field("phizderiv", R, z, phi, 2)
