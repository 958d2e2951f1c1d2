r"""One normalizing flow for the distribution function :math:`f(\vec x, \vec v)`.

The architecture follows Green & Ting (2020): a stack of steps, each

1. a per-axis affine rescaling :math:`y_i \mapsto e^{a_i} y_i + b_i`,
2. an invertible linear map :math:`y \mapsto L U y` (the "1x1 convolution" of Glow,
   LU-parametrised so its log-determinant is :math:`\sum \ln |L_{ii}|`),
3. a rational-quadratic-spline coupling layer (Durkan et al. 2019): half the coordinates pass
   through; the other half go through monotonic splines whose knots an MLP computes from the
   first half,

on a standard normal base, built from zuko's transforms. In front sits the fixed
standardisation of :mod:`deeppot_galpy.phasespace`, so ``log_prob`` is :math:`\ln f` in the
model's units and autograd gives :math:`\nabla \ln f` in those units.

References:
    Green & Ting 2020, arXiv:2011.04673; Kingma & Dhariwal 2018 (Glow);
    Durkan, Bekasov, Murray & Papamakarios 2019 (neural spline flows).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial

import torch
import zuko
from torch import Tensor, nn
from zuko.flows import Flow, GeneralCouplingTransform
from zuko.lazy import UnconditionalDistribution, UnconditionalTransform
from zuko.transforms import LULinearTransform, MonotonicAffineTransform, MonotonicRQSTransform

__all__ = ["FlowConfig", "PhaseSpaceFlow", "build_flow", "position_features", "position_mlp"]


MODELS = ("auto", "joint", "factorised", "mixture")


@dataclass(frozen=True)
class FlowConfig:
    """Architecture of one flow: ``steps`` x (rescale, LU, RQS coupling).

    ``model`` is the form of f: ``"joint"``, one flow on the 6D phase space, or
    ``"factorised"``, f = n(x) p(v | x) (:class:`~deeppot_galpy.df.factorised.FactorisedFlow`)
    with p a conditional flow, or ``"mixture"``, the same with p a mixture of ``components``
    Gaussian velocity ellipsoids (:class:`~deeppot_galpy.df.mixture.VelocityMixture`);
    ``"auto"`` (the presets'), one of the last two chosen from the stars before training
    (:func:`~deeppot_galpy.shape.choose_df_model`). ``axisymmetric`` makes a factorised
    model's p(v | x) exactly invariant under rotations about the z axis
    (:class:`~deeppot_galpy.df.factorised.FactorisedFlow`); ``"auto"`` sets it for a survey
    volume of a disk. ``speed_profile`` puts a spline of the whitened speed in front of the
    factorised model's conditional flow (:class:`~deeppot_galpy.df.factorised.SpeedProfile`);
    the other models have no use for it, and ``"auto"`` sets it for a spherical potential.
    ``radial_context`` gives the factorised model's position-conditioned networks the distance
    from the origin as well (:func:`position_features`), so p(v | x) can change with r as
    steeply as a potential's centre asks. Files written before these existed load without them.
    """

    steps: int = 6  # 6 beat 4 on grad ln f and the core at equal wall time (RESULTS.md)
    bins: int = 8
    hidden: tuple[int, ...] = (128, 128)
    bound: float = 5.0  # spline domain [-bound, bound] in standardised units; identity outside
    model: str = "joint"
    components: int = 8  # velocity ellipsoids of the "mixture" model
    axisymmetric: bool = False
    speed_profile: bool = False
    radial_context: bool = False

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"unknown DF model {self.model!r}; use one of {MODELS}")
        if self.components < 1:
            raise ValueError(f"the mixture needs components >= 1, got {self.components}")
        if self.axisymmetric and not self.factorised:
            raise ValueError("axisymmetric needs a factorised DF model (factorised or mixture)")
        if self.radial_context and self.model in ("joint", "mixture"):
            raise ValueError(
                f"radial_context is read by the factorised model's conditional flow, not by "
                f"model = {self.model!r}"
            )

    @property
    def factorised(self) -> bool:
        """Whether the model is n(x) p(v | x)."""
        return self.model != "joint"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FlowConfig:
        d = dict(d)
        d["hidden"] = tuple(d.get("hidden", cls.hidden))
        d.setdefault("speed_profile", False)
        d.setdefault("radial_context", False)
        return cls(**d)


def _coupling_masks(dim: int, steps: int) -> list[Tensor]:
    """Alternate which half is transformed, so every axis gets a spline every two steps."""
    base = torch.arange(dim) % 2 == 1
    # distinct tensors per step: safetensors refuses buffers that share memory
    return [base.clone() if k % 2 == 0 else ~base for k in range(steps)]


def build_flow(dim: int, config: FlowConfig, context: int = 0) -> Flow:
    """``config.steps`` x (rescale, LU, RQS coupling) on a standard normal base in ``dim`` axes.

    With ``context > 0`` the couplings' MLPs also read a context vector, making a conditional
    density p(y | c); the rescalings and LU maps stay unconditional.
    """
    spline = partial(MonotonicRQSTransform, bound=config.bound)
    transforms = []
    for mask in _coupling_masks(dim, config.steps):
        transforms += [
            UnconditionalTransform(MonotonicAffineTransform, torch.zeros(dim), torch.zeros(dim)),
            UnconditionalTransform(LULinearTransform, torch.eye(dim)),
            GeneralCouplingTransform(
                dim,
                context,
                mask=mask,
                univariate=spline,
                shapes=[(config.bins,), (config.bins,), (config.bins - 1,)],
                hidden_features=config.hidden,
                activation=nn.SiLU,
            ),
        ]
    base = UnconditionalDistribution(
        zuko.distributions.DiagNormal, torch.zeros(dim), torch.ones(dim), buffer=True
    )
    return Flow(transforms, base)


#: the radius, in the standardisation's units, below which :func:`position_features`'s radial
#: input is linear and beyond which it is logarithmic: a core's scored centre is a few
#: hundredths of the stars' spread (1 instead, linear throughout, resolved less: RESULTS.md,
#: section 35)
CENTRE_SCALE = 0.05


def position_features(y: Tensor, origin: Tensor | None = None) -> Tensor:
    r"""What position-conditioned networks read of standardised positions y (N, 3): asinh(y),
    which keeps a cusp's 10^3-wide range in view, and with ``origin`` (the origin's y, (3,))
    also :math:`\operatorname{asinh}(r / c)`, r = |y - origin| and c = :data:`CENTRE_SCALE`.

    asinh(y) is smooth through the centre, and so is whatever reads it, while tracers with a
    core in a halo with a cusp have :math:`d\sigma_r^2/dr = -F_r \neq 0` at r = 0 (their
    Jeans equation): a cone in sigma, whose kink r has."""
    features = torch.asinh(y)
    if origin is None:
        return features
    r = torch.sqrt(((y - origin) ** 2).sum(1, keepdim=True) + 1e-12)
    return torch.cat([features, torch.asinh(r / CENTRE_SCALE)], 1)


def position_mlp(hidden: tuple[int, ...], out_features: int, in_features: int = 3) -> nn.Sequential:
    """A smooth (SiLU) MLP from ``in_features`` :func:`position_features` to ``out_features``."""
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.SiLU()]
        width = h
    return nn.Sequential(*layers, nn.Linear(width, out_features))


class PhaseSpaceFlow(nn.Module):
    """A normalizing flow density on 6D phase space, in the model's units.

    ``mean`` and ``scale`` (6,) are the fixed standardisation y = (eta - mean) / scale.
    """

    def __init__(self, mean: Tensor, scale: Tensor, config: FlowConfig = FlowConfig()):
        super().__init__()
        self.config = config
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))
        self.flow = build_flow(len(mean), config)

    def log_prob(self, eta: Tensor) -> Tensor:
        """ln f(eta) in the model's units, eta (N, 6)."""
        y = (eta - self.mean) / self.scale
        return self.flow().log_prob(y) - torch.log(self.scale).sum()

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        """n phase-space points (n, 6) in the model's units."""
        return self.flow().sample((n,)) * self.scale + self.mean
