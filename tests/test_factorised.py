"""The factorised DF f = n(x) p(v | x): normalisation, sampling, round trip (issue 12)."""

import numpy as np
import pytest
import torch
from scipy import stats

from deeppot_galpy.df import FlowConfig, FlowEnsemble
from deeppot_galpy.df.factorised import _S_MAX, FactorisedFlow, context

SMALL = FlowConfig(steps=2, bins=6, hidden=(16, 16), model="factorised")


def _randomised(flow: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return flow


@pytest.fixture(scope="module")
def flow() -> FactorisedFlow:
    mean = torch.tensor([0.5, -1.0, 0.0, 10.0, 0.0, -5.0])
    scale = torch.tensor([2.0, 1.0, 0.5, 30.0, 20.0, 10.0])
    return _randomised(FactorisedFlow(mean, scale, SMALL)).double()


def test_velocity_distribution_is_normalised_at_each_position(flow):
    """p(v | x) integrates to one over v (3D quadrature) wherever x is, ellipsoid and all."""
    g = torch.linspace(-12, 12, 81, dtype=torch.float64)
    U = torch.stack(torch.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    cell = float(g[1] - g[0]) ** 3
    for x in ([0.5, -1.0, 0.0], [4.0, 1.0, -0.7]):
        eta = torch.cat([torch.tensor(x, dtype=torch.float64).expand(len(U), 3), U], 1)
        eta[:, 3:] = eta[:, 3:] * flow.scale[3:] + flow.mean[3:]
        with torch.no_grad():
            log_n = flow.positions().log_prob((eta[:1, :3] - flow.mean[:3]) / flow.scale[:3])
            log_p = flow.log_prob(eta) - log_n + torch.log(flow.scale[:3]).sum()
        total = torch.exp(log_p).sum().item() * cell * flow.scale[3:].prod().item()
        assert total == pytest.approx(1.0, abs=0.01)


def test_samples_follow_the_density(flow):
    """Samples pushed forward through the model's own maps are standard normal."""
    eta = flow.sample(4000).double()
    z = (eta - flow.mean) / flow.scale
    y, u = z[:, :3], z[:, 3:]
    with torch.no_grad():
        m, s = flow.ellipsoid(y)
        w = (torch.linalg.matrix_exp(-s) @ (u - m)[:, :, None])[:, :, 0]
        base = flow.velocities(context(y)).transform(w)
        base_x = flow.positions().transform(y)
    for axis in torch.cat([base, base_x], 1).T:
        assert stats.kstest(axis.numpy(), "norm").pvalue > 1e-3


def test_ellipsoid_follows_the_radius_vector():
    """With only the radial term switched on, the velocity spread is along x / |x|."""
    flow = FactorisedFlow(torch.zeros(6), torch.ones(6), SMALL).double()
    with torch.no_grad():
        # S = ln 3 * y y^T / (|y|^2 + eps), through the bound on S's elements
        flow.ellipsoid.net[-1].bias[9] = _S_MAX * np.arctanh(np.log(3.0) / _S_MAX)
        eta = torch.zeros(20000, 6, dtype=torch.float64)
        eta[:, :3] = torch.tensor([3.0, 4.0, 0.0], dtype=torch.float64)
        y = eta[:, :3]
        m, s = flow.ellipsoid(y)
        u = (torch.linalg.matrix_exp(s) @ torch.randn(20000, 3, 1, dtype=torch.float64))[..., 0]
    cov = np.cov(u.numpy().T)
    rhat = np.array([0.6, 0.8, 0.0])
    expected = 3.0 ** (25 / (25 + 0.01))
    assert rhat @ cov @ rhat == pytest.approx(expected**2, rel=0.05)
    assert cov[2, 2] == pytest.approx(1.0, rel=0.05)


def test_ensemble_round_trip_keeps_the_model():
    ens = FlowEnsemble.from_metadata(
        {"k": 2, "config": SMALL.to_dict(), "mean": [0.0] * 6, "scale": [1.0] * 6}
    )
    assert all(isinstance(m, FactorisedFlow) for m in ens.members)
    for m in ens.members:
        _randomised(m, 3)
    again = FlowEnsemble.from_metadata(ens.metadata())
    again.load_state_dict(ens.state_dict())
    eta = torch.randn(64, 6)
    torch.testing.assert_close(again.log_prob(eta), ens.log_prob(eta))


def test_unknown_model_is_refused():
    with pytest.raises(ValueError, match="unknown DF model"):
        FlowConfig(model="mixture")
