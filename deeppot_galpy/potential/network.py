r"""The potential model: a smooth MLP :math:`\Phi_\theta(\vec x)`.

.. math:: \Phi(\vec x) = \Phi_0 \, \mathrm{MLP}\!\left(\frac{\vec x - \vec x_0}{L}\right)

with a fixed centre :math:`\vec x_0`, length scale :math:`L` and potential scale
:math:`\Phi_0 = \sigma_v^2` taken from the data, so the MLP works on O(1) numbers in any unit
system. The activation must have a non-vanishing second derivative (SiLU by default; tanh and
softplus are options), because the density is the Laplacian,
:math:`\rho = \nabla^2\Phi / 4\pi G`, obtained with autograd like the force
:math:`\vec a = -\nabla\Phi`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["PotentialConfig", "PotentialNet"]

_ACTIVATIONS = {"silu": nn.SiLU, "tanh": nn.Tanh, "softplus": nn.Softplus}


@dataclass(frozen=True)
class PotentialConfig:
    """Architecture of the potential MLP."""

    hidden: tuple[int, ...] = (128, 128, 128)
    activation: str = "silu"

    def __post_init__(self) -> None:
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
        act = _ACTIVATIONS[config.activation]
        layers: list[nn.Module] = []
        width = 3
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

    def forward(self, x: Tensor) -> Tensor:
        return self.phi_scale * self.mlp((x - self.center) / self.length_scale).squeeze(-1)

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
        dev = self.center.device
        out: dict[str, list] = {"phi": [], "acc": [], "lap": []}
        for i in range(0, len(x), batch_size):
            xb = torch.as_tensor(x[i : i + batch_size], dtype=torch.float32, device=dev)
            if laplacian:
                phi, g, hess = self.hessian(xb)
                out["lap"].append(torch.diagonal(hess, dim1=1, dim2=2).sum(-1))
            else:
                phi, g = self.gradient(xb)
            out["phi"].append(phi)
            out["acc"].append(-g)
        return {k: torch.cat(v).cpu().double().numpy() for k, v in out.items() if v}
