"""Shared fixtures: small potential networks with known answers, built once per session.

* ``plummer_fit``: a PotentialNet fitted to the CBE with the Plummer sphere's exact grad ln f
  (the paper's pipeline minus the flows), with its accuracy measured against the truth.
* ``hernquist_galactic``, ``miyamoto_nagai_fit``: networks regressed to an analytic potential's
  forces, in kpc and km/s (a spherical Hernquist halo) and N-body units (a flattened disk).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from deeppot_galpy.compare import field_errors, summarize
from deeppot_galpy.mocks import Plummer
from deeppot_galpy.potential import (
    CBEPoints,
    PotentialConfig,
    PotentialNet,
    PotentialTraining,
    fit_potential,
)
from deeppot_galpy.units import Units

torch.set_num_threads(1)


@dataclass
class FittedNet:
    """A network with what a DeepPotential needs and how accurate it is."""

    net: PotentialNet
    units: Units
    region: dict
    accuracy: dict  # compare.summarize against the truth on check points
    truth: object  # a compare.Field in the model's units


def shell_points(n: int, r_min: float, r_max: float, seed: int) -> np.ndarray:
    """n points log-uniform in radius between r_min and r_max, isotropic directions."""
    rng = np.random.default_rng(seed)
    r = np.exp(rng.uniform(np.log(r_min), np.log(r_max), n))
    u = rng.normal(size=(n, 3))
    return r[:, None] * u / np.linalg.norm(u, axis=1, keepdims=True)


def region_of(x: np.ndarray) -> dict:
    from deeppot_galpy.phasespace import PhaseSpace

    return PhaseSpace(x, np.zeros_like(x)).region()


def regress(field, x: np.ndarray, steps: int = 1000, seed: int = 0) -> PotentialNet:
    """A 3x64 SiLU PotentialNet fitted to ``field``'s forces (and loosely its potential) at x.

    Loss: relative squared force error plus a 0.1-weighted potential term that pins the
    constant, so potential values are comparable too.
    """
    torch.manual_seed(seed)
    phi_t, acc_t = field.potential(x), field.acceleration(x)
    center = np.median(x, axis=0)
    r = np.linalg.norm(x - center, axis=1)
    net = PotentialNet(
        torch.as_tensor(center),
        float(np.median(r)),
        float(np.median(np.abs(phi_t))),
        PotentialConfig(hidden=(64, 64, 64)),
    )
    xt, at, pt = (torch.as_tensor(a, dtype=torch.float32) for a in (x, acc_t, phi_t))
    a_norm = at.norm(dim=1, keepdim=True)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (512,), generator=gen)
        xb = xt[idx].requires_grad_(True)
        phi = net(xb)
        (g,) = torch.autograd.grad(phi.sum(), xb, create_graph=True)
        loss = (((g + at[idx]) / a_norm[idx]) ** 2).sum(1).mean()
        loss = loss + 0.1 * (((phi - pt[idx]) / net.phi_scale) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return net.eval()


@pytest.fixture(scope="session")
def plummer_fit() -> FittedNet:
    """PotentialNet from the CBE with exact DF gradients (~10 s): ~1-2% median force error."""
    m = Plummer()
    ps = m.sample(2**12, seed=1)
    gx, gv = m.grad_log_df(ps.x, ps.v)
    pts = CBEPoints(ps.x, ps.v, gx, gv, m.log_df(ps.x, ps.v))
    cfg = PotentialTraining(steps=300, batch_size=512, config=PotentialConfig((64, 64, 64)))
    net, _ = fit_potential(pts, cfg, seed=0, progress=False)
    region = ps.region()
    check = m.sample(2048, seed=2).x
    inside = np.linalg.norm(check, axis=1) < region["r_max"]
    accuracy = summarize(field_errors(net, m, check[inside]))
    return FittedNet(net, Units.nbody(), region, accuracy, m)


@pytest.fixture(scope="session")
def plummer_run_dir(plummer_fit, tmp_path_factory):
    from deeppot_galpy.rundir import RunDir

    path = tmp_path_factory.mktemp("plummer_run")
    RunDir(path, create=True).save_potential(plummer_fit.net, plummer_fit.units, plummer_fit.region)
    return path


class HernquistKpc:
    """A Hernquist sphere in kpc, km/s, Msun: Phi = -GM/(r + a)."""

    def __init__(self, mass: float = 1e12, a: float = 20.0):
        self.G = Units.galactic().G
        self.mass, self.a = mass, a

    def potential(self, x):
        return -self.G * self.mass / (np.linalg.norm(x, axis=1) + self.a)

    def acceleration(self, x):
        r = np.linalg.norm(x, axis=1, keepdims=True)
        return -self.G * self.mass * x / (r * (r + self.a) ** 2)

    def density(self, x):
        r = np.linalg.norm(x, axis=1)
        return self.mass * self.a / (2 * np.pi * r * (r + self.a) ** 3)


@pytest.fixture(scope="session")
def hernquist_galactic() -> FittedNet:
    """A kpc / km/s network of a 1e12 Msun, a = 20 kpc Hernquist halo, 1-100 kpc."""
    truth = HernquistKpc()
    x = shell_points(8192, 1.0, 100.0, seed=3)
    net = regress(truth, x)
    check = shell_points(1024, 2.0, 80.0, seed=4)
    accuracy = summarize(field_errors(net, truth, check, G=truth.G))
    return FittedNet(net, Units.galactic(), region_of(x), accuracy, truth)


@pytest.fixture(scope="session")
def miyamoto_nagai_fit() -> FittedNet:
    """N-body-unit network of MiyamotoNagaiPotential(amp=1, a=1, b=0.2): a flattened case.

    Training points fill a sphere of radius 5 but crowd towards the plane, where the
    potential bends fastest.
    """
    from galpy.potential import MiyamotoNagaiPotential

    from deeppot_galpy.compare import as_field

    truth = as_field(MiyamotoNagaiPotential(amp=1.0, a=1.0, b=0.2))
    x = shell_points(8192, 0.05, 5.0, seed=5)
    x[::2, 2] *= 0.2
    net = regress(truth, x)
    check = shell_points(1024, 0.2, 4.0, seed=6)
    accuracy = summarize(field_errors(net, truth, check))
    return FittedNet(net, Units.nbody(), region_of(x), accuracy, truth)


# network architectures the derivative checks run on: every activation without a symmetry,
# and each symmetry once
NETS = [
    ("silu", "none"),
    ("tanh", "none"),
    ("softplus", "none"),
    ("silu", "spherical"),
    ("tanh", "axisymmetric"),
    ("softplus", "mirror"),
]


@pytest.fixture
def random_net():
    """A random-init PotentialNet off the origin: derivative checks must hold for ANY weights."""

    def make(activation: str = "silu", seed: int = 0, symmetry: str = "none") -> PotentialNet:
        torch.manual_seed(seed)
        cfg = PotentialConfig(hidden=(32, 32), activation=activation, symmetry=symmetry)
        return PotentialNet(torch.tensor([0.3, -0.2, 0.1]), 2.0, 0.7, cfg).eval()

    return make
