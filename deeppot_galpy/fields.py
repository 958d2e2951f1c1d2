r"""Gravitational fields in a model's units: the common input of every metric in
:mod:`deeppot_galpy.compare`.

A field gives :math:`\Phi`, :math:`\vec a = -\nabla\Phi` and :math:`\rho = \nabla^2\Phi / 4\pi G`
at positions (N, 3) in the model's units. :func:`as_field` makes one from

* a :class:`~deeppot_galpy.potential.PotentialNet` (density from its Laplacian),
* a galpy ``Potential`` or list of them, which works in natural units (:math:`G = 1`, length
  ``ro`` kpc, velocity ``vo`` km/s): in model units with length factor :math:`\ell` and velocity
  factor :math:`\nu` (:meth:`Units.natural_scales <deeppot_galpy.units.Units.natural_scales>`)
  it is evaluated at :math:`\vec x / \ell` and gives :math:`\nu^2\Phi_{nat}`,
  :math:`(\nu^2/\ell)\,\vec a_{nat}` and :math:`\nu^2\rho_{nat} / (\ell^2 G)`,
* an object with ``potential``, ``force`` and ``density`` methods (Agama's interface, e.g. an
  ``agama.Potential``, in Agama's current units; :class:`MethodField`),
* a Python callable :math:`\Phi(\vec x)` (:class:`CallableField`),
* or any object that already has ``potential``, ``acceleration`` and ``density`` methods (a
  mock, an :class:`~deeppot_galpy.agama.AgamaField`), used as it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from .units import Units

__all__ = ["Field", "CallableField", "MethodField", "as_field"]


class Field(Protocol):
    """A gravitational field evaluated at positions x (N, 3) in the model's units."""

    def potential(self, x: np.ndarray) -> np.ndarray: ...
    def acceleration(self, x: np.ndarray) -> np.ndarray: ...
    def density(self, x: np.ndarray) -> np.ndarray: ...


class _NetworkField:
    """A PotentialNet as a Field (density from the autograd Laplacian).

    The last evaluation is kept, with a reference to its input so the cache cannot be matched
    by a new array that happens to reuse a freed one's id.
    """

    def __init__(self, net: Any, G: float):
        self.net, self.G = net, G
        self._cache: tuple[np.ndarray, dict] | None = None

    def _eval(self, x: np.ndarray, laplacian: bool) -> dict:
        if (
            self._cache is None
            or self._cache[0] is not x
            or (laplacian and "lap" not in self._cache[1])
        ):
            self._cache = (x, self.net.evaluate(x, laplacian=laplacian))
        return self._cache[1]

    def potential(self, x):
        return self._eval(x, False)["phi"]

    def acceleration(self, x):
        return self._eval(x, False)["acc"]

    def density(self, x):
        return self._eval(x, True)["lap"] / (4.0 * np.pi * self.G)


class _GalpyField:
    """A galpy Potential (natural units) in the units of a model (module docstring)."""

    def __init__(self, pot: Any, units: Units | None = None):
        from galpy.util.conversion import get_physical

        self.pot = pot
        self.length, self.velocity, self.G = 1.0, 1.0, 1.0
        if units is not None:
            phys = get_physical(pot)
            self.length, self.velocity = units.natural_scales(phys["ro"], phys["vo"])
            self.G = units.G

    def _cyl(self, x):
        x = np.asarray(x) / self.length
        R = np.hypot(x[:, 0], x[:, 1])
        return R, x[:, 2], np.arctan2(x[:, 1], x[:, 0])

    def potential(self, x):
        from galpy.potential import evaluatePotentials

        R, z, phi = self._cyl(x)
        phi_nat = np.asarray(evaluatePotentials(self.pot, R, z, phi=phi, use_physical=False))
        return phi_nat * self.velocity**2

    def acceleration(self, x):
        from galpy.potential import evaluatephitorques, evaluateRforces, evaluatezforces

        R, z, phi = self._cyl(x)
        kw = {"phi": phi, "use_physical": False}
        fR = np.asarray(evaluateRforces(self.pot, R, z, **kw))
        fz = np.asarray(evaluatezforces(self.pot, R, z, **kw))
        with np.errstate(divide="ignore", invalid="ignore"):
            fphi = np.where(R > 0, np.asarray(evaluatephitorques(self.pot, R, z, **kw)) / R, 0.0)
        c, s = np.cos(phi), np.sin(phi)
        a_nat = np.stack([fR * c - fphi * s, fR * s + fphi * c, fz], axis=1)
        return a_nat * (self.velocity**2 / self.length)

    def density(self, x):
        from galpy.potential import evaluateDensities

        R, z, phi = self._cyl(x)
        rho_nat = np.asarray(evaluateDensities(self.pot, R, z, phi=phi, use_physical=False))
        return rho_nat * self.velocity**2 / (self.length**2 * self.G)


class MethodField:
    """A Field from an object with ``potential``, ``force`` and ``density`` methods of (N, 3)
    float64 positions, Agama's interface (an ``agama.Potential`` in Agama's current units)."""

    def __init__(self, obj: Any):
        self.obj = obj

    def _call(self, method: str, x: np.ndarray) -> np.ndarray:
        return np.asarray(getattr(self.obj, method)(np.ascontiguousarray(x, dtype=np.float64)))

    def potential(self, x: np.ndarray) -> np.ndarray:
        return self._call("potential", x)

    def acceleration(self, x: np.ndarray) -> np.ndarray:
        return self._call("force", x)

    def density(self, x: np.ndarray) -> np.ndarray:
        return self._call("density", x)


class CallableField:
    r"""A Field from a Python function :math:`\Phi(\vec x)`, (N, 3) -> (N,), in model units.

    With ``autograd=True`` the function takes and returns torch tensors, and the force and the
    Laplacian come from torch autograd (exact; the function must be twice differentiable, so
    no ReLU). Otherwise it takes numpy float64 arrays and the derivatives are second-order
    central differences with step :math:`h = 10^{-4}\max(|\vec x|, \ell)` per point,
    ``length_scale`` :math:`\ell` keeping the step finite at the origin: for a float64
    :math:`\Phi`, relative errors ~1e-8 on the force and ~1e-7 (median) on the density, more
    in far tails where :math:`\rho` is a small difference of large second derivatives
    (1e-4 at 40 scale radii of a Plummer sphere). ``autograd=None``
    picks autograd for a ``torch.nn.Module`` or a function that returns a tensor needing grad
    when given one.
    """

    def __init__(
        self, fn: Any, autograd: bool | None = None, G: float = 1.0, length_scale: float = 1.0
    ):
        self.fn, self.G, self.length_scale = fn, float(G), float(length_scale)
        self.autograd = self._detect(fn) if autograd is None else bool(autograd)
        self._cache: tuple[np.ndarray, tuple] | None = None  # last autograd input and outputs

    @staticmethod
    def _detect(fn: Any) -> bool:
        import torch

        if isinstance(fn, torch.nn.Module):
            return True
        probe = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
        try:
            out = fn(probe)
        except Exception:  # a numpy function given a tensor may fail in any way
            return False
        return isinstance(out, torch.Tensor) and out.requires_grad

    def _torch(self, x: np.ndarray, order: int) -> tuple[np.ndarray, ...]:
        """(Phi, grad Phi[, lap Phi]) by autograd; reuses the last call's on the same x."""
        import torch

        if self._cache is not None and self._cache[0] is x and len(self._cache[1]) > order:
            return self._cache[1]
        dtype = torch.float64
        if isinstance(self.fn, torch.nn.Module):
            dtype = next(self.fn.parameters(), torch.zeros((), dtype=dtype)).dtype
        xt = torch.as_tensor(x, dtype=dtype).requires_grad_(True)
        phi = self.fn(xt)
        (g,) = torch.autograd.grad(phi.sum(), xt, create_graph=order > 1)
        out = [phi.detach().double().numpy(), g.detach().double().numpy()]
        if order > 1:
            lap = sum(
                torch.autograd.grad(g[:, i].sum(), xt, retain_graph=True)[0][:, i] for i in range(3)
            )
            out.append(lap.detach().double().numpy())
        self._cache = (x, tuple(out))
        return self._cache[1]

    def _step(self, x: np.ndarray) -> np.ndarray:
        return 1e-4 * np.maximum(np.linalg.norm(x, axis=1), self.length_scale)

    def potential(self, x: np.ndarray) -> np.ndarray:
        if self.autograd:
            return self._torch(x, 0)[0]
        return np.asarray(self.fn(x), dtype=np.float64)

    def acceleration(self, x: np.ndarray) -> np.ndarray:
        if self.autograd:
            return -self._torch(x, 1)[1]
        h = self._step(x)
        g = np.empty_like(x, dtype=np.float64)
        for k in range(3):
            d = np.zeros_like(x, dtype=np.float64)
            d[:, k] = h
            g[:, k] = (self.potential(x + d) - self.potential(x - d)) / (2.0 * h)
        return -g

    def density(self, x: np.ndarray) -> np.ndarray:
        if self.autograd:
            return self._torch(x, 2)[2] / (4.0 * np.pi * self.G)
        h = self._step(x)
        lap = -6.0 * self.potential(x)
        for k in range(3):
            d = np.zeros_like(x, dtype=np.float64)
            d[:, k] = h
            lap = lap + self.potential(x + d) + self.potential(x - d)
        return lap / h**2 / (4.0 * np.pi * self.G)


def model_G(G: float, units: Units | None) -> float:
    """G of the model: ``units.G`` when ``units`` is given (``G`` must then be its default 1 or
    agree), else ``G``."""
    if units is None:
        return float(G)
    if G != 1.0 and not np.isclose(G, units.G, rtol=1e-12):
        raise ValueError(f"G = {G} disagrees with the units' G = {units.G}")
    return float(units.G)


def as_field(obj: Any, G: float = 1.0, units: Units | None = None) -> Field:
    """Wrap ``obj`` as a Field in the model's units (see the module docstring for the kinds).

    ``units`` are the model's :class:`~deeppot_galpy.units.Units`: a galpy Potential is
    converted from its natural units into them, and their G is the model's. Without
    ``units`` a galpy Potential is taken as it is (the model is in galpy's natural units) and
    ``G`` is the model's G.
    """
    import torch

    from .potential import PotentialNet

    G = model_G(G, units)
    if isinstance(obj, PotentialNet):
        # PotentialNet.evaluate works in float32; a float64 copy (DeepPotential.network) goes
        # through autograd in its own precision
        if obj.center.dtype == torch.float64:
            return CallableField(obj, autograd=True, G=G)
        return _NetworkField(obj, G)
    if all(hasattr(obj, m) for m in ("potential", "acceleration", "density")):
        return obj
    from galpy.potential import Potential

    if isinstance(obj, Potential) or (
        isinstance(obj, list) and obj and all(isinstance(p, Potential) for p in obj)
    ):
        return _GalpyField(obj, units)
    if all(callable(getattr(obj, m, None)) for m in ("potential", "force", "density")):
        return MethodField(obj)
    if callable(obj):
        return CallableField(obj, G=G)
    raise TypeError(
        f"cannot use {type(obj).__name__} as a reference field: give a mock, a galpy Potential, "
        "an agama.Potential, a PotentialNet, a callable Phi(x) or an object with "
        "potential/acceleration/density methods"
    )
