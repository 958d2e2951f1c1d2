r"""The potential model: a smooth MLP :math:`\Phi_\theta(\vec x)`.

.. math:: \Phi(\vec x) = \Phi_0 \, \mathrm{MLP}\!\left(\frac{\vec x - \vec x_0}{L}\right)

with a fixed centre :math:`\vec x_0`, length scale :math:`L` and potential scale
:math:`\Phi_0 = \sigma_v^2` taken from the data, so the MLP works on O(1) numbers in any unit
system. The activation must have a non-vanishing second derivative (SiLU by default; tanh and
softplus are options), because the density is the Laplacian,
:math:`\rho = \nabla^2\Phi / 4\pi G`, obtained with autograd like the force
:math:`\vec a = -\nabla\Phi`.

Training needs :math:`\nabla\Phi` and :math:`\nabla^2\Phi` at every step, differentiable in the
weights. Nested autograd (a backward pass per axis, each building a graph) makes a step several
times dearer than a forward pass. :meth:`PotentialNet.derivatives` instead carries the Jacobian
:math:`J` (3 x width) and the Laplacian :math:`\ell` of each layer's output forward through the
network (the "forward Laplacian", Li et al. 2023): for :math:`h = \sigma(z)`, :math:`z = W a + b`,

.. math:: J_z = J_a W^T, \quad \ell_z = \ell_a W^T, \quad
          J_h = \sigma'(z) J_z, \quad \ell_h = \sigma''(z) \textstyle\sum_i J_{z,i}^2
          + \sigma'(z)\, \ell_z ,

which gives :math:`\Phi, \nabla\Phi, \nabla^2\Phi` in one pass and one backward pass for the
loss (measured: ~3x faster per step than nested autograd on a quarter of the batch).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor, nn

from .symmetry import SYMMETRIES, SYMMETRY_CHOICES, VERTICAL_INPUTS, invariant_inputs, n_inputs

__all__ = ["PotentialConfig", "PotentialNet"]

_ACTIVATIONS = {"silu": nn.SiLU, "tanh": nn.Tanh, "softplus": nn.Softplus}


def _silu(z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    s = torch.sigmoid(z)
    return z * s, s * (1 + z * (1 - s)), s * (1 - s) * (2 + z * (1 - 2 * s))


def _tanh(z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    t = torch.tanh(z)
    d1 = 1 - t * t
    return t, d1, -2 * t * d1


def _softplus(z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    s = torch.sigmoid(z)
    return nn.functional.softplus(z), s, s * (1 - s)


# activation -> (sigma, sigma', sigma'') for the forward Laplacian
_WITH_DERIVATIVES = {"silu": _silu, "tanh": _tanh, "softplus": _softplus}


@dataclass(frozen=True)
class PotentialConfig:
    """Architecture of the potential MLP. ``symmetry`` (``none``, ``axisymmetric`` about the
    z axis, ``mirror``: that and even in z, ``spherical`` about the origin) makes the network
    read only that symmetry's invariants (:mod:`.symmetry`), softened within ``softening``
    length scales of the axis or centre; ``vertical`` is a mirror fit's input across the
    plane (``square``: z^2; ``softened``: the softened abs(z) of files saved before this
    setting existed, which load with it). ``auto`` (the presets') is chosen from the stars
    before a network is built (:func:`~deeppot_galpy.shape.choose_symmetry`)."""

    hidden: tuple[int, ...] = (128, 128, 128)
    activation: str = "silu"
    symmetry: str = "none"
    # within the softening a cusp's force falls to zero: at 0.1 length scales (the default
    # before RESULTS.md section 18; saved files keep theirs) the NFW and Hernquist mocks'
    # force was 27% weak at r = 0.1a and 60% at 0.05a; at 0.003 it is within 2-4% down to
    # 0.05a on NFW, about where 2^17 stars stop
    softening: float = 0.003
    vertical: str = "square"

    def __post_init__(self) -> None:
        if self.symmetry not in SYMMETRY_CHOICES:
            raise ValueError(
                f"symmetry {self.symmetry!r} not supported; use one of {SYMMETRY_CHOICES}"
            )
        if not self.softening > 0:
            raise ValueError(f"softening must be > 0 (got {self.softening})")
        if self.vertical not in VERTICAL_INPUTS:
            raise ValueError(
                f"vertical {self.vertical!r} not supported; use one of {list(VERTICAL_INPUTS)}"
            )
        if self.activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation {self.activation!r} not supported; use one of {sorted(_ACTIVATIONS)} "
                "(ReLU-like activations have a zero Laplacian)"
            )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PotentialConfig:
        d = dict(d)
        d["hidden"] = tuple(d.get("hidden", cls.hidden))
        d.setdefault("vertical", "softened")  # saved before mirror fits read z^2
        return cls(**d)


class PotentialNet(nn.Module):
    """Phi(x) for x (N, 3) in the model's units; see the module docstring for the scaling."""

    def __init__(
        self,
        center: Tensor,
        length_scale: float,
        phi_scale: float,
        config: PotentialConfig = PotentialConfig(),
    ):
        super().__init__()
        self.config = config
        self.register_buffer("center", torch.as_tensor(center, dtype=torch.float32).reshape(3))
        self.register_buffer("length_scale", torch.tensor(float(length_scale)))
        self.register_buffer("phi_scale", torch.tensor(float(phi_scale)))
        if config.symmetry == "auto":
            raise ValueError(
                "symmetry 'auto' is chosen from the stars (deeppot_galpy.shape.choose_symmetry, "
                "as pipeline.fit does) before a network is built; give one of " + str(SYMMETRIES)
            )
        act = _ACTIVATIONS[config.activation]
        layers: list[nn.Module] = []
        width = n_inputs(config.symmetry)
        for h in config.hidden:
            layers += [nn.Linear(width, h), act()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def metadata(self) -> dict:
        return {
            "center": self.center.tolist(),
            "length_scale": float(self.length_scale),
            "phi_scale": float(self.phi_scale),
            "config": self.config.to_dict(),
        }

    @classmethod
    def from_metadata(cls, meta: dict) -> PotentialNet:
        return cls(
            torch.tensor(meta["center"]),
            meta["length_scale"],
            meta["phi_scale"],
            PotentialConfig.from_dict(meta["config"]),
        )

    def inputs(self, x: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """The MLP's inputs at x, about the data centre's, with their Jacobian and Laplacian
        in the scaled position x / L (:func:`~.symmetry.invariant_inputs`)."""
        cfg = self.config
        a, jac, lap = invariant_inputs(
            x / self.length_scale, cfg.symmetry, cfg.softening, cfg.vertical
        )
        a0 = invariant_inputs(
            self.center[None] / self.length_scale, cfg.symmetry, cfg.softening, cfg.vertical
        )
        return a - a0[0], jac, lap

    def forward(self, x: Tensor) -> Tensor:
        return self.phi_scale * self.mlp(self.inputs(x)[0]).squeeze(-1)

    def derivatives(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(Phi, grad Phi, lap Phi) at x (N, 3) by the forward Laplacian, differentiable."""
        act = _WITH_DERIVATIVES[self.config.activation]
        linears = [m for m in self.mlp if isinstance(m, nn.Linear)]
        # d a / d u (N, 3, width) and lap_u a (N, width), u = x / L; None: the identity
        a, jac, lap = self.inputs(x)
        for lin in linears[:-1]:
            z = lin(a)
            if jac is None:
                jz, lz = lin.weight.T.expand(len(x), 3, -1), 0.0
            else:
                jz, lz = jac @ lin.weight.T, lap @ lin.weight.T
            a, d1, d2 = act(z)
            lap = d2 * (jz * jz).sum(1) + d1 * lz
            jac = d1.unsqueeze(1) * jz
        w = linears[-1].weight[0]
        phi = linears[-1](a).squeeze(-1)
        scale = self.phi_scale
        return (
            scale * phi,
            scale * (jac @ w) / self.length_scale,
            scale * (lap @ w) / self.length_scale**2,
        )

    def gradient(self, x: Tensor, create_graph: bool = False) -> tuple[Tensor, Tensor]:
        """(Phi, grad Phi) at x; ``create_graph`` to differentiate further (training)."""
        x = x if x.requires_grad else x.detach().requires_grad_(True)
        phi = self(x)
        (g,) = torch.autograd.grad(phi.sum(), x, create_graph=True)
        if not create_graph:
            phi, g = phi.detach(), g.detach()
        return phi, g

    def hessian(self, x: Tensor, create_graph: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """(Phi, grad Phi, Hessian (N, 3, 3)) by autograd, one backward pass per axis."""
        x = x.detach().requires_grad_(True)
        phi = self(x)
        (g,) = torch.autograd.grad(phi.sum(), x, create_graph=True)
        rows = [
            torch.autograd.grad(g[:, i].sum(), x, create_graph=create_graph, retain_graph=True)[0]
            for i in range(3)
        ]
        hess = torch.stack(rows, dim=1)
        if not create_graph:
            phi, g = phi.detach(), g.detach()
        return phi, g, hess

    def laplacian(self, x: Tensor, create_graph: bool = False) -> Tensor:
        """nabla^2 Phi at x (N,)."""
        return torch.diagonal(self.hessian(x, create_graph)[2], dim1=1, dim2=2).sum(-1)

    def evaluate(
        self, x: np.ndarray, laplacian: bool = True, batch_size: int = 8192
    ) -> dict[str, np.ndarray]:
        """Phi, acceleration -grad Phi and (optionally) lap Phi at x (N, 3), as float64 numpy."""
        dev, dtype = self.center.device, self.center.dtype
        out: dict[str, list] = {"phi": [], "acc": [], "lap": []}
        for i in range(0, len(x), batch_size):
            xb = torch.as_tensor(x[i : i + batch_size], dtype=dtype, device=dev)
            if laplacian:
                phi, g, hess = self.hessian(xb)
                out["lap"].append(torch.diagonal(hess, dim1=1, dim2=2).sum(-1))
            else:
                phi, g = self.gradient(xb)
            out["phi"].append(phi)
            out["acc"].append(-g)
        return {k: torch.cat(v).cpu().double().numpy() for k, v in out.items() if v}
