r"""Fit :math:`\Phi_\theta` so that the flows' distribution function is stationary.

Inputs are points :math:`(\vec x, \vec v)` drawn from the fitted DF with the DF's gradients
precomputed there (:class:`CBEPoints`); the potential network is then trained with Adam and a
cosine learning-rate decay on the loss of :mod:`deeppot_galpy.potential.cbe`. Force and
Laplacian come from one forward-Laplacian pass (:meth:`PotentialNet.derivatives`), so the
positivity penalty is evaluated on every point for ~2.5x the cost of the force alone.

Training can be checkpointed every few hundred steps and resumed exactly
(:mod:`deeppot_galpy.checkpoint`), and runs data-parallel in a distributed job
(:mod:`deeppot_galpy.distributed`): every rank draws the same batch indices and takes a
disjoint share of them, and DistributedDataParallel averages the gradients, so N processes
follow the single-process optimisation up to floating-point summation order.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from .. import distributed
from ..checkpoint import Checkpoint, restore_training_state, training_state
from .cbe import LOSSES, negative_density_penalty, stationarity_loss
from .jeans import JEANS_STARS, JeansMoments, fraction_range
from .network import PotentialConfig, PotentialNet

__all__ = [
    "CBEPoints",
    "CORE_SLOPE",
    "CORE_TIME_POWER",
    "JEANS_WEIGHT_STARS",
    "PotentialTraining",
    "cbe_time_power",
    "cbe_time_scales",
    "jeans_temper_power",
    "jeans_weight",
    "fit_potential",
    "inner_density_slope",
    "point_scales",
]


@dataclass
class CBEPoints:
    """Phase-space points with grad ln f there: x, v, gx, gv (N, 3); logf (N,).

    ``gx_b``, ``gv_b`` are an optional second, independent estimate of the gradients (from
    other flow members), used by the ``crossfit`` loss.
    """

    x: np.ndarray
    v: np.ndarray
    gx: np.ndarray
    gv: np.ndarray
    logf: np.ndarray
    gx_b: np.ndarray | None = None
    gv_b: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x)

    def __post_init__(self) -> None:
        arrays = {k: v for k, v in vars(self).items() if v is not None}
        bad = ~np.all([np.isfinite(a.reshape(len(a), -1)).all(1) for a in arrays.values()], 0)
        if bad.any():
            raise ValueError(f"{int(bad.sum())} CBE points have non-finite values or gradients")

    @property
    def has_second_estimate(self) -> bool:
        return self.gx_b is not None and self.gv_b is not None

    def tensors(self, device: torch.device | str) -> dict[str, torch.Tensor]:
        return {
            k: torch.as_tensor(a, dtype=torch.float32, device=device)
            for k, a in vars(self).items()
            if a is not None
        }


@dataclass(frozen=True)
class PotentialTraining:
    """How the potential is trained."""

    steps: int = 4000
    batch_size: int = 1024
    lr: float = 3e-3
    lam: float = 2.0  # weight of the negative-density penalty (paper: 2)
    loss: str = "lnf"  # lnf | f | crossfit
    time_budget_s: float | None = None
    config: PotentialConfig = PotentialConfig()
    # weak-form Jeans moments of the stars (potential/jeans.py): weight (0 = off), test
    # functions, their width as a star-neighbour fraction, and stars per step
    # None: 100 in a spherical fit (growing with the stars beyond 2^17: jeans_weight()), 10
    # otherwise (below)
    jeans_weight: float | None = None
    jeans_functions: int = 384
    jeans_neighbours: float | tuple[float, float] = (0.002, 0.02)  # (min, max): mixed scales
    jeans_batch: int = 512
    # stars the moments are summed over (a random subsample of a larger catalog): their noise
    # falls as 1 / sqrt(stars), and all 10^6 stars of An et al.'s sphere in place of 2^17 cut
    # its force error from 1.4% to 0.6% on the same flows (RESULTS.md, section 21)
    jeans_stars: int = JEANS_STARS
    # take the stars' measurement errors out of the moments: by simulation-extrapolation from
    # the stars observed once more (PhaseSpace.reobserved, positions too), else by subtracting
    # their velocity covariances (PhaseSpace.v_cov)
    jeans_deconvolve: bool = True
    # in a spherical fit, the test functions' thickness along the radius over their length
    # across it (shells), or a (min, max) range of it (1: round; potential/jeans.py): 0.3
    # cut the anisotropic spheres' force errors by 22-38% (RESULTS.md, section 10)
    jeans_shells: float | tuple[float, float] = 0.3
    # each Jeans equation's weight in the loss: its Monte Carlo variance to this power, negated
    # (0: every equation alike, so those with large moments dominate; 1: a chi^2). None: 0.5
    # in a spherical fit, 0 otherwise (below)
    jeans_noise_weight: float | None = None
    # how the Jeans functions' centres spread in radius about a spherical fit's centre: stars
    # drawn with odds (dN / d ln r)^-t (potential/jeans.py; 0: as the stars, 1: uniform in
    # ln r). None: 0.5 in a spherical fit of a cusp, 0 otherwise (jeans_temper_power)
    jeans_temper: float | None = None
    # bootstrap replicates for error bars (potential/replicates.py): how many (0 = none), and
    # the steps each is refitted for, starting from the main fit
    replicates: int = 0
    replicate_steps: int = 500
    # the CBE residual's time scale at radius r in a spherical fit: L / sigma times
    # (r / median r)^q, softened at 0.05 L (cbe_time_scales). None: q = gamma / 2 from the
    # stars' inner density slope gamma (inner_density_slope), the dynamical time's power in a
    # rho ~ r^-gamma cusp, and -0.3 in a core, whose centre's points then weigh more (section
    # 33); 0: one time scale for all, as in any fit that is not spherical
    cbe_time_slope: float | None = None

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; use one of {LOSSES}")
        if self.replicates == 1 or self.replicates < 0 or self.replicate_steps < 1:
            raise ValueError(
                "replicates must be 0 (no error bars) or >= 2 (a spread needs two), and "
                f"replicate_steps >= 1 (got {self.replicates}, {self.replicate_steps})"
            )
        fraction_range(self.jeans_neighbours, "jeans_neighbours")
        if self.jeans_stars < 1:
            raise ValueError(f"jeans_stars must be >= 1, got {self.jeans_stars}")
        fraction_range(self.jeans_shells, "jeans_shells")
        if self.jeans_noise_weight is not None and not 0 <= self.jeans_noise_weight <= 1:
            raise ValueError(f"jeans_noise_weight must be in [0, 1], got {self.jeans_noise_weight}")
        if self.jeans_temper is not None and not 0 <= self.jeans_temper <= 1:
            raise ValueError(f"jeans_temper must be in [0, 1], got {self.jeans_temper}")
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(
                f"potential training needs steps and batch_size >= 1 (got {self.steps}, "
                f"{self.batch_size})"
            )
        if not self.lr > 0 or not self.lam >= 0:
            raise ValueError(
                f"potential training needs lr > 0 and lam >= 0 (got {self.lr}, {self.lam})"
            )
        if self.cbe_time_slope is not None and not -1 <= self.cbe_time_slope <= 1:
            raise ValueError(f"cbe_time_slope must be in [-1, 1], got {self.cbe_time_slope}")
        budget = self.time_budget_s
        if budget is not None and not (isinstance(budget, int | float) and budget >= 0):
            raise ValueError(f"time_budget_s must be >= 0 (0: no limit), got {self.time_budget_s}")

    @property
    def jeans_strength(self) -> float:
        """The Jeans term's weight: ``jeans_weight`` if set, else 100 in a spherical fit, whose
        shells carry the radial force the flows get wrong (against 30 it halved the anisotropic
        spheres' force errors; RESULTS.md, section 11), and 10 otherwise (100-1000 made the
        local disk worse; section 7). A fit weighs it by :func:`jeans_weight`, which lets a
        sphere's grow with the number of stars."""
        if self.jeans_weight is not None:
            return self.jeans_weight
        return 100.0 if self.config.symmetry == "spherical" else 10.0

    @property
    def jeans_noise_power(self) -> float:
        """The power of the Jeans equations' noise weights: ``jeans_noise_weight`` if set,
        else 0.5 in a spherical fit, where the outer shells' small moments otherwise leave the
        radial orbits to the flows (RESULTS.md, section 19), and 0 otherwise."""
        if self.jeans_noise_weight is not None:
            return self.jeans_noise_weight
        return 0.5 if self.config.symmetry == "spherical" else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["config"] = self.config.to_dict()
        return d


#: stars at which a spherical fit's default Jeans weight was set (:func:`jeans_weight`)
JEANS_WEIGHT_STARS = 2**17


def jeans_weight(cfg: PotentialTraining, n_stars: int) -> float:
    """The Jeans term's weight in a fit whose moments are summed over ``n_stars`` stars.

    ``cfg.jeans_strength``, except that a spherical fit's default (``jeans_weight`` unset)
    grows as ``n_stars / 2^17`` beyond 2^17 stars: the moments' variance falls as 1 / n_stars
    while the flows' error in the CBE term does not, so weighed alike the stars' moments of a
    large catalog would be outpulled by errors they could correct. On An et al.'s beta = 1/2
    sphere from 10^6 stars (the same flows), 763 in place of 100 took their metric from 0.82 /
    1.11% to 0.77 / 0.92% on two seeds and the median force error from 0.81 / 1.25% to 0.68 /
    0.84% (RESULTS.md, section 37). A disk keeps its 10 whatever its size: a stronger
    term pulled the local disk's K_z toward its sample's lean (section 36)."""
    if cfg.jeans_weight is not None or cfg.config.symmetry != "spherical":
        return cfg.jeans_strength
    return cfg.jeans_strength * max(1.0, n_stars / JEANS_WEIGHT_STARS)


def point_scales(points: CBEPoints) -> tuple[np.ndarray, float, float]:
    """Centre, length scale and velocity dispersion of the points (robust statistics)."""
    center = np.median(points.x, axis=0)
    lo, hi = np.percentile(points.x, [15.87, 84.13], axis=0)
    length = float(np.exp(np.mean(np.log(0.5 * (hi - lo)))))
    vlo, vhi = np.percentile(points.v, [15.87, 84.13], axis=0)
    sigma = float(np.sqrt(np.mean((0.5 * (vhi - vlo)) ** 2)))
    return center, length, sigma


def inner_density_slope(x: np.ndarray, fractions: tuple[float, float] = (0.005, 0.02)) -> float:
    r"""The stars' inner density slope :math:`\gamma = -d\ln\nu / d\ln r` about the origin,
    from the radii :math:`r_a, r_b` holding the ``fractions`` :math:`a < b` of them: with
    :math:`N(<r) \propto r^{3-\gamma}`, :math:`\gamma = 3 - \ln(b / a) / \ln(r_b / r_a)`.

    An enclosed fraction is an integral, robust to the noise a local slope would have; at
    0.5% and 2% it reads 1.2 on a Hernquist sphere (whose cusp is 1) and 0.14 on a Plummer
    core (RESULTS.md, section 33).
    """
    a, b = fractions
    r_a, r_b = np.quantile(np.linalg.norm(x, axis=1), [a, b])
    return float(3.0 - math.log(b / a) / math.log(r_b / r_a))


#: inner slopes below this are a core, whose dynamical time does not follow the radius: the
#: stars' 0.5-2% radii read 0.09-0.15 on cores and 1.16-1.20 on cusps (RESULTS.md, section 33)
CORE_SLOPE = 0.5
#: q in a core. There the force and grad_x ln f vanish as r, so the centre's residuals sit in
#: the asinh's linear part and pull little; a longer time scale there gives them back weight.
#: Measured on Plummer (q = 0.17, 0.06, 0, -0.15, -0.3, four draws each): the innermost bin
#: went -12, -9, -7, -3, -0.4% on average. On a held-out Osipkov-Merritt Plummer sphere it
#: went from -23 / -14% to -1.5 / +2.4% (section 33).
CORE_TIME_POWER = -0.3


def cbe_time_power(cfg: PotentialTraining, x: np.ndarray) -> float:
    """The power q of the CBE time scale's radius dependence (:func:`cbe_time_scales`):
    ``cfg.cbe_time_slope`` if set, else, in a spherical fit, gamma / 2 (at most 1) of the
    stars' inner density slope gamma if it is a cusp (gamma >= :data:`CORE_SLOPE`) and
    :data:`CORE_TIME_POWER` if a core, and 0 in any other fit, which has no centre to follow."""
    if cfg.cbe_time_slope is not None:
        return cfg.cbe_time_slope
    if cfg.config.symmetry != "spherical":
        return 0.0
    gamma = inner_density_slope(x)
    return min(0.5 * gamma, 1.0) if gamma >= CORE_SLOPE else CORE_TIME_POWER


#: the spread of a cusp's Jeans functions in ln r (jeans_temper_power)
CUSP_TEMPER = 0.5


def jeans_temper_power(cfg: PotentialTraining, x: np.ndarray) -> float:
    """The spread of the Jeans functions' centres in radius (:class:`~.jeans.JeansMoments`'s
    ``temper``): ``cfg.jeans_temper`` if set, else :data:`CUSP_TEMPER` in a spherical fit whose
    stars show a cusp (:func:`inner_density_slope` >= :data:`CORE_SLOPE`) and 0 otherwise.

    Centres drawn as the stars leave a cusp's innermost radii to the flows' CBE term, which
    smooths the cusp: on the same flows the held-out Hernquist spheres' innermost radial bin
    went from -8 / -11% to -1 / -4% at 0.5 (RESULTS.md, section 36). In a core the inner
    functions average a force that changes sign, and Plummer's inner bins went 9-16% low."""
    if cfg.jeans_temper is not None:
        return cfg.jeans_temper
    if cfg.config.symmetry != "spherical":
        return 0.0
    return CUSP_TEMPER if inner_density_slope(x) >= CORE_SLOPE else 0.0


def cbe_time_scales(x: Tensor, length: float, sigma: float, power: float) -> Tensor | float:
    r"""The time scale of each point's CBE residual (:func:`~.cbe.stationarity_loss`).

    .. math:: t_i = \frac{L}{\sigma} \left(\frac{\rho_i}{\mathrm{median}\,\rho}\right)^q,
       \quad \rho_i = \sqrt{|\vec x_i|^2 + (0.05 L)^2},

    with q = gamma / 2 the dynamical time :math:`r / v_c \propto r^{\gamma / 2}` of a
    :math:`\rho \propto r^{-\gamma}` cusp (:func:`cbe_time_power`). One scale for all would
    saturate the asinh at a cusp's centre, whose points would then pull with little weight; with
    q = gamma / 2 the Osipkov-Merritt Hernquist sphere's second radial bin came from -5.7 to
    -3.8% and its density error from 10.2 to 8.7% over four draws, NFW's median force error
    from 0.88 to 0.79% (RESULTS.md, section 33). A float (no radius dependence) when q = 0.
    """
    if power == 0:
        return length / sigma
    rho = torch.sqrt((x**2).sum(1) + (0.05 * length) ** 2)
    return length / sigma * (rho / rho.median()) ** power


class _Derivatives(nn.Module):
    """(Phi, grad Phi, lap Phi) as a forward pass, the call DistributedDataParallel wraps.

    Phi itself is returned detached: the loss uses only its derivatives, so the output bias
    never gets a gradient, and DDP must not wait for one.
    """

    def __init__(self, net: PotentialNet):
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        phi, grad_phi, lap = self.net.derivatives(x)
        return phi.detach(), grad_phi, lap


def fit_potential(
    points: CBEPoints,
    cfg: PotentialTraining = PotentialTraining(),
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    checkpoint: Checkpoint | None = None,
    jeans: JeansMoments | None = None,
    init: PotentialNet | None = None,
) -> tuple[PotentialNet, dict]:
    """Train a :class:`PotentialNet` on ``points``; returns it (in eval mode) and its history.

    With a ``checkpoint``, training starts from its saved state (a finished fit is just
    loaded) and saves its state when :meth:`Checkpoint.due` says so. In a distributed job
    every rank calls this with the same points; rank 0 alone writes the checkpoint.
    ``jeans`` (the stars' weak-form Jeans moments) adds :func:`jeans_weight` times their
    violation to the loss, evaluated in the same network pass as the CBE points. ``init``
    starts from a copy of that network (and its scales) instead of a fresh one.
    """
    if cfg.loss == "crossfit" and not points.has_second_estimate:
        raise ValueError("loss='crossfit' needs points with a second gradient estimate")
    torch.manual_seed(seed)
    if init is None:
        center, length, sigma = point_scales(points)
        net = PotentialNet(torch.as_tensor(center), length, sigma**2, cfg.config).to(device)
    else:
        net = copy.deepcopy(init).to(device).train().requires_grad_(True)
        length, sigma = float(init.length_scale), math.sqrt(float(init.phi_scale))
    t = points.tensors(device)
    # the stars' slope where the Jeans moments carry them: the flows' points smooth a cusp
    # (0.5 where the stars read 1.2; RESULTS.md, section 33)
    stars = points.x if jeans is None else jeans.x.cpu().numpy()
    time_power = cbe_time_power(cfg, stars)
    time_scale = cbe_time_scales(t["x"], length, sigma, time_power)
    lap_scale = sigma**2 / length**2
    f_scale = torch.exp(t["logf"]) * (length * sigma) ** 3 if cfg.loss == "f" else None

    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    history: dict = {"step": [], "loss": [], "penalty": [], "cbe_time_power": time_power}
    if jeans is not None:
        history["jeans_temper"] = jeans.temper
    first_step, elapsed, running = 0, 0.0, np.zeros(2)
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:
        restore_training_state(*saved, net, opt, gen)
        state = saved[1]
        history = state["history"]
        if state["done"]:
            return net.eval(), history
        first_step, elapsed, running = state["step"], state["elapsed"], np.array(state["running"])

    strength = 0.0 if jeans is None else jeans_weight(cfg, len(jeans.x))
    use_jeans = strength > 0
    if use_jeans:
        history["jeans_weight"] = strength
    job = distributed.current()
    derivatives = net.derivatives
    if job.world > 1:
        derivatives = DistributedDataParallel(
            _Derivatives(net),
            device_ids=[net.center.device] if net.center.device.type == "cuda" else None,
            static_graph=True,  # the same parameters (all but the output bias) every step
        )
    # each rank's loss is its share's sum over the whole batch size, times the number of ranks
    # because DDP averages gradients: together, the mean over the configured batch
    weight = job.world / cfg.batch_size

    def save(done: bool, next_step: int) -> None:
        tensors, state = training_state(net, opt, gen)
        state.update(
            done=done,
            step=next_step,
            elapsed=time.perf_counter() - t0,
            running=running.tolist(),
            history=history,
        )
        checkpoint.save(tensors, state)

    t0 = time.perf_counter() - elapsed
    bar = tqdm(range(first_step, cfg.steps), desc="potential", disable=not progress, leave=False)
    for step in bar:
        frac = step / cfg.steps
        if cfg.time_budget_s:
            frac = max(frac, (time.perf_counter() - t0) / cfg.time_budget_s)
            # ranks must agree on when to stop, or the others wait forever in a collective
            frac = distributed.broadcast_json(frac)
            if frac >= 1.0:
                break
        for group in opt.param_groups:
            group["lr"] = cfg.lr * 0.5 * (1.0 + math.cos(math.pi * frac))
        idx = torch.randint(0, len(points), (cfg.batch_size,), generator=gen)
        idx = idx.tensor_split(job.world)[job.rank].to(device)
        x = t["x"][idx]
        if use_jeans:
            jdx = jeans.draw(cfg.jeans_batch, gen)
            x = torch.cat([x, jeans.points(jdx)])
        _, grad_phi, lap = derivatives(x)
        if use_jeans:
            jeans_term = jeans.loss(grad_phi[len(idx) :], jdx)
            grad_phi, lap = grad_phi[: len(idx)], lap[: len(idx)]
        term = (
            stationarity_loss(
                cfg.loss,
                t["v"][idx],
                grad_phi,
                t["gx"][idx],
                t["gv"][idx],
                time_scale if isinstance(time_scale, float) else time_scale[idx],
                f_scale=None if f_scale is None else f_scale[idx],
                gx_b=t["gx_b"][idx] if "gx_b" in t else None,
                gv_b=t["gv_b"][idx] if "gv_b" in t else None,
            ).sum()
            * weight
        )
        penalty = negative_density_penalty(lap, lap_scale).sum() * weight
        loss = term + cfg.lam * penalty
        if use_jeans:
            # DDP averages over ranks; each rank's estimate is unbiased on its own
            loss = loss + strength * jeans_term
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        terms = torch.stack([term.detach(), penalty.detach()])
        if job.world > 1:
            dist.all_reduce(terms)  # the whole batch's values, equal on every rank
            terms /= job.world
        running += terms.tolist()
        if (step + 1) % 100 == 0:
            history["step"].append(step + 1)
            history["loss"].append(running[0] / 100)
            history["penalty"].append(running[1] / 100)
            bar.set_postfix(loss=f"{running[0] / 100:.4f}")
            running[:] = 0
        if checkpoint is not None and job.is_main and checkpoint.due(step + 1):
            save(done=False, next_step=step + 1)
    history["seconds"] = time.perf_counter() - t0
    if checkpoint is not None and job.is_main:
        save(done=True, next_step=cfg.steps)
    return net.eval(), history
