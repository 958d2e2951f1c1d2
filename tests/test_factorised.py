"""The factorised DF f = n(x) p(v | x): normalisation, sampling, round trip (issue 12)."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy import stats
from torch import Tensor

from deeppot_galpy.df import FlowConfig, FlowEnsemble, FlowTraining
from deeppot_galpy.df.factorised import _S_MAX, FactorisedFlow
from deeppot_galpy.df.flows import CENTRE_SCALE
from deeppot_galpy.mocks import Plummer

SMALL = FlowConfig(steps=2, bins=6, hidden=(16, 16), model="factorised")


def _randomised(flow: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return flow


def _factorised(config: FlowConfig) -> FactorisedFlow:
    torch.manual_seed(0)  # initial weights independent of the tests run before
    mean = torch.tensor([0.5, -1.0, 0.0, 10.0, 0.0, -5.0])
    scale = torch.tensor([2.0, 1.0, 0.5, 30.0, 20.0, 10.0])
    return _randomised(FactorisedFlow(mean, scale, config)).double()


@pytest.fixture(scope="module")
def flow() -> FactorisedFlow:
    return _factorised(SMALL)


@pytest.fixture(scope="module")
def speed_flow() -> FactorisedFlow:
    return _factorised(replace(SMALL, speed_profile=True))


@pytest.fixture(scope="module")
def radial_flow() -> FactorisedFlow:
    return _factorised(replace(SMALL, radial_context=True))


@pytest.fixture(scope="module")
def radial_speed_flow() -> FactorisedFlow:
    return _factorised(replace(SMALL, speed_profile=True, radial_context=True))


@pytest.mark.parametrize("name", ["flow", "radial_flow"])
def test_velocity_distribution_is_normalised_at_each_position(name, request):
    """p(v | x) integrates to one over v wherever x is, ellipsoid and all.

    Importance sampling from a Gaussian three times wider than the model's own ellipsoid at x.
    """
    flow = request.getfixturevalue(name)
    torch.manual_seed(0)
    n = 2**15
    for x in ([0.5, -1.0, 0.0], [4.0, 1.0, -0.7], [0.0, 0.0, 0.0]):
        x = torch.tensor(x, dtype=torch.float64)
        with torch.no_grad():
            y = ((x - flow.mean[:3]) / flow.scale[:3])[None]
            m, s = flow.ellipsoid(y, flow.context(y))
            chol = 3.0 * torch.linalg.matrix_exp(s[0])
            cov = chol @ chol.T
            proposal = torch.distributions.MultivariateNormal(m[0], covariance_matrix=cov)
            u = proposal.sample((n,))
            eta = torch.cat([x.expand(n, 3), u * flow.scale[3:] + flow.mean[3:]], 1)
            log_n, log_p = flow.log_prob_parts(eta)
            torch.testing.assert_close(log_n + log_p, flow.log_prob(eta))
            log_g = proposal.log_prob(u) - torch.log(flow.scale[3:]).sum()
            w = torch.exp(log_p - log_g)
        assert w.mean().item() == pytest.approx(1.0, abs=max(0.02, 4 * w.std().item() / n**0.5))


@pytest.mark.parametrize("name", ["flow", "speed_flow", "radial_speed_flow"])
def test_samples_follow_the_density(name, request):
    """Samples pushed forward through the model's own maps are standard normal."""
    flow = request.getfixturevalue(name)
    eta = flow.sample(4000).double()
    z = (eta - flow.mean) / flow.scale
    y, u = z[:, :3], z[:, 3:]
    with torch.no_grad():
        features = flow.context(y)
        m, s = flow.ellipsoid(y, features)
        w = (torch.linalg.matrix_exp(-s) @ (u - m)[:, :, None])[:, :, 0]
        if flow.config.speed_profile:
            w, _ = flow.speed(w, features)
        base = flow.velocities(features).transform(w)
        base_x = flow.positions().transform(y)
    for axis in torch.cat([base, base_x], 1).T:
        assert stats.kstest(axis.numpy(), "norm").pvalue > 1e-3


def test_the_radial_context_has_a_kink_at_the_origin(radial_flow):
    """With ``radial_context`` what p(v | x) reads turns its slope across the origin (a cone in
    sigma is possible), and without it is smooth there: d/dx of each feature along x at
    +-1e-4 of the origin."""
    origin = -radial_flow.mean[:3] / radial_flow.scale[:3]
    step = torch.tensor([1e-4, 0.0, 0.0], dtype=torch.float64)

    def slope(flow: FactorisedFlow, sign: int) -> Tensor:
        at = origin + sign * step
        return torch.autograd.functional.jacobian(lambda a: flow.context(a[None])[0], at)[:, 0]

    above, below = slope(radial_flow, 1), slope(radial_flow, -1)
    assert above[3].item() == pytest.approx(1 / CENTRE_SCALE, rel=1e-3)
    assert below[3].item() == pytest.approx(-1 / CENTRE_SCALE, rel=1e-3)
    torch.testing.assert_close(above[:3], below[:3], rtol=1e-3, atol=1e-6)
    smooth = _factorised(SMALL)
    torch.testing.assert_close(slope(smooth, 1), slope(smooth, -1), rtol=1e-3, atol=1e-6)


def test_ellipsoid_follows_the_radius_vector():
    """With only the radial term switched on, the velocity spread is along x / |x|."""
    flow = FactorisedFlow(torch.zeros(6), torch.ones(6), SMALL).double()
    with torch.no_grad():
        # S = ln 3 * y y^T / (|y|^2 + eps), through the bound on S's elements
        flow.ellipsoid.net[-1].bias[9] = _S_MAX * np.arctanh(np.log(3.0) / _S_MAX)
        eta = torch.zeros(20000, 6, dtype=torch.float64)
        eta[:, :3] = torch.tensor([3.0, 4.0, 0.0], dtype=torch.float64)
        y = eta[:, :3]
        m, s = flow.ellipsoid(y, flow.context(y))
        u = (torch.linalg.matrix_exp(s) @ torch.randn(20000, 3, 1, dtype=torch.float64))[..., 0]
    cov = np.cov(u.numpy().T)
    rhat = np.array([0.6, 0.8, 0.0])
    expected = 3.0 ** (25 / (25 + 0.01))
    assert rhat @ cov @ rhat == pytest.approx(expected**2, rel=0.05)
    assert cov[2, 2] == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize("model", ["factorised", "mixture", "speed_profile", "radial_context"])
def test_ensemble_round_trip_keeps_the_model(model):
    config = (
        replace(SMALL, **{model: True})
        if model in ("speed_profile", "radial_context")
        else replace(SMALL, model=model)
    )
    ens = FlowEnsemble.from_metadata(
        {"k": 2, "config": config.to_dict(), "mean": [0.0] * 6, "scale": [1.0] * 6}
    )
    assert all(isinstance(m, FactorisedFlow) for m in ens.members)
    for m in ens.members:
        _randomised(m, 3)
    again = FlowEnsemble.from_metadata(ens.metadata())
    again.load_state_dict(ens.state_dict())
    eta = torch.randn(64, 6)
    torch.testing.assert_close(again.log_prob(eta), ens.log_prob(eta))


@pytest.mark.parametrize("name", ["speed_flow", "radial_speed_flow"])
def test_the_speed_profile_is_invertible_and_old_files_load_without_it(name, request):
    """Its inverse, and its ln |det| against autograd's (with the base density's normalisation
    and the ellipsoid's, which the importance-sampling test above checks, p stays normalised)."""
    flow = request.getfixturevalue(name)
    torch.manual_seed(2)
    w, y = 2.0 * torch.randn(256, 3, dtype=torch.float64), torch.randn(256, 3, dtype=torch.float64)
    y = flow.context(y)
    reshaped, ladj = flow.speed(w, y)
    assert (reshaped - w).abs().max() > 0.05  # it does something
    torch.testing.assert_close(flow.speed.inverse(reshaped, y), w)
    for i in range(4):  # ln |det| against autograd's Jacobian
        jac = torch.autograd.functional.jacobian(
            lambda a, at=y[i : i + 1]: flow.speed(a[None], at)[0][0], w[i]
        )
        torch.testing.assert_close(ladj[i], torch.linalg.slogdet(jac)[1])
    old = {k: v for k, v in SMALL.to_dict().items() if k not in ("speed_profile", "radial_context")}
    assert not FlowConfig.from_dict(old).speed_profile
    assert not FlowConfig.from_dict(old).radial_context


def test_unknown_model_is_refused():
    with pytest.raises(ValueError, match="unknown DF model"):
        FlowConfig(model="banana")
    with pytest.raises(ValueError, match="radial_context is read by"):
        FlowConfig(model="mixture", radial_context=True)
    with pytest.raises(ValueError, match="chosen from the stars first"):
        FlowEnsemble.from_metadata(
            {"k": 1, "config": {"model": "auto"}, "mean": [0.0] * 6, "scale": [1.0] * 6}
        )


def test_a_spatial_selection_changes_the_density_not_the_velocities():
    """Stars at x < 0 kept with probability 0.3: ln n(x) drops there, p(v | x) stays.

    Compared with a random subsample of the same size trained the same way, so training
    noise is the yardstick.
    """
    stars = Plummer().sample(2**12, 0)
    rng = np.random.default_rng(1)
    selected = np.flatnonzero((stars.x[:, 0] > 0) | (rng.uniform(size=len(stars)) < 0.3))
    random = rng.choice(len(stars), len(selected), replace=False)
    held = torch.as_tensor(Plummer().sample(2**12, 2).eta, dtype=torch.float32)
    held = held[torch.linalg.norm(held[:, :3], dim=1) < 1.5]
    left = held[:, 0] < 0

    def gaps(rows: np.ndarray) -> tuple[float, float]:
        ens = FlowEnsemble(stars.standardization(), 1, SMALL)
        ens.fit(stars.eta[rows], FlowTraining(epochs=8, batch_size=256), seed=0, progress=False)
        with torch.no_grad():
            log_n, log_p = ens.members[0].log_prob_parts(held)
        return (
            (log_n[left].mean() - log_n[~left].mean()).item(),
            (log_p[left].mean() - log_p[~left].mean()).item(),
        )

    (n_sel, p_sel), (n_rand, p_rand) = gaps(selected), gaps(random)
    # the flows smooth the step at x = 0, so the mean gap falls short of ln 0.3 = -1.2
    assert n_sel - n_rand < 0.5 * np.log(0.3)
    assert abs(p_sel - p_rand) < 0.15


@pytest.fixture(scope="module")
def mixture() -> FactorisedFlow:
    torch.manual_seed(1)
    mean = torch.tensor([0.5, -1.0, 0.0, 10.0, 0.0, -5.0])
    scale = torch.tensor([2.0, 1.0, 0.5, 30.0, 20.0, 10.0])
    config = replace(SMALL, model="mixture", components=3)
    return _randomised(FactorisedFlow(mean, scale, config)).double()


def _mixture_moments(flow: FactorisedFlow, y: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Weights, means and covariances of the ellipsoids at y (1, 3), and the mixture's mean."""
    with torch.no_grad():
        log_w, mean, chol = flow.mixture(y)
        w, mean = log_w[0].exp(), mean[0]
        cov = torch.linalg.inv(chol[0] @ chol[0].transpose(1, 2))
    return w, mean, cov, (w[:, None] * mean).sum(0)


def test_velocity_mixture_is_normalised_at_each_position(mixture):
    """p(v | x) integrates to one over v, importance-sampled from a Gaussian three times wider
    than the mixture's own spread at x."""
    torch.manual_seed(0)
    n = 2**15
    for x in ([0.5, -1.0, 0.0], [4.0, 1.0, -0.7]):
        x = torch.tensor(x, dtype=torch.float64)
        y = ((x - mixture.mean[:3]) / mixture.scale[:3])[None]
        w, mean, cov, centre = _mixture_moments(mixture, y)
        spread = (w[:, None, None] * (cov + mean[:, :, None] * mean[:, None, :])).sum(0)
        spread = spread - torch.outer(centre, centre)
        proposal = torch.distributions.MultivariateNormal(centre, covariance_matrix=9 * spread)
        u = proposal.sample((n,))
        eta = torch.cat([x.expand(n, 3), u * mixture.scale[3:] + mixture.mean[3:]], 1)
        with torch.no_grad():
            log_p = mixture.log_prob_parts(eta)[1]
        ratio = torch.exp(log_p - proposal.log_prob(u) + torch.log(mixture.scale[3:]).sum())
        tol = max(0.02, 4 * ratio.std().item() / n**0.5)
        assert ratio.mean().item() == pytest.approx(1.0, abs=tol)


def test_velocity_mixture_samples_follow_it(mixture):
    """Velocities drawn at one place, projected on any axis, follow the mixture's projection
    (a 1D mixture of the ellipsoids' projected Gaussians)."""
    torch.manual_seed(2)
    y = torch.tensor([[0.3, -0.4, 1.2]], dtype=torch.float64)
    u = mixture.mixture.sample(y.expand(4000, 3))
    w, mean, cov, _ = _mixture_moments(mixture, y)
    for axis in torch.eye(3, dtype=torch.float64).unbind() + (torch.ones(3) / 3**0.5,):
        axis = axis.double()
        mu, sd = mean @ axis, torch.sqrt(axis @ cov @ axis)

        def cdf(t, mu=mu, sd=sd):
            return (w.numpy() * stats.norm.cdf((t[:, None] - mu.numpy()) / sd.numpy())).sum(1)

        assert stats.kstest((u @ axis).numpy(), cdf).pvalue > 1e-3


def _turn(a: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Vectors a (N, 3) rotated about the z axis by angle (N,)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([c * a[:, 0] - s * a[:, 1], s * a[:, 0] + c * a[:, 1], a[:, 2]], 1)


@pytest.fixture(scope="module")
def disk_mixture() -> FactorisedFlow:
    """An axisymmetric mixture about a data centre 8 kpc from the axis, at azimuth 2.5."""
    torch.manual_seed(3)
    mean = torch.tensor([8.0 * np.cos(2.5), 8.0 * np.sin(2.5), 0.0, -150.0, -120.0, 0.0])
    scale = torch.tensor([0.5, 0.5, 0.3, 30.0, 30.0, 20.0])
    config = replace(SMALL, model="mixture", components=3, axisymmetric=True)
    return _randomised(FactorisedFlow(mean, scale, config)).double()


def test_an_axisymmetric_velocity_model_is_the_same_at_every_azimuth(disk_mixture):
    """ln p(v | x) is unchanged when the star and its velocity turn about the z axis, and
    the same network read in Cartesian axes is not."""
    rng = np.random.default_rng(0)
    eta = disk_mixture.sample(256).numpy()
    angle = rng.uniform(-np.pi, np.pi, len(eta))
    turned = np.hstack([_turn(eta[:, :3], angle), _turn(eta[:, 3:], angle)])
    config = replace(disk_mixture.config, axisymmetric=False)
    cartesian = FactorisedFlow(disk_mixture.mean, disk_mixture.scale, config).double()
    cartesian.load_state_dict(disk_mixture.state_dict())
    with torch.no_grad():
        for model, same in ((disk_mixture, True), (cartesian, False)):
            before, after = (model.log_prob_parts(torch.as_tensor(e))[1] for e in (eta, turned))
            assert torch.allclose(before, after, atol=1e-9) is same


def test_an_axisymmetric_velocity_model_samples_and_normalises_at_any_azimuth(disk_mixture):
    """Velocities sampled at a star's azimuth are the centre's mixture turned there (each
    axis against draws made in the centre's frame and turned here), and p(v | x) integrates
    to one half a turn away from the centre."""
    torch.manual_seed(4)
    eta = disk_mixture.sample(4000).numpy()
    angle = np.arctan2(eta[:, 1], eta[:, 0]) - 2.5  # each star's azimuth from the centre's
    y = (_turn(eta[:, :3], -angle) - disk_mixture.mean[:3].numpy()) / disk_mixture.scale[:3].numpy()
    with torch.no_grad():
        u = disk_mixture.mixture.sample(torch.as_tensor(y)).numpy()
    v = _turn(u * disk_mixture.scale[3:].numpy() + disk_mixture.mean[3:].numpy(), angle)
    for axis in range(3):
        assert stats.ks_2samp(eta[:, 3 + axis], v[:, axis]).pvalue > 1e-3
    n = 2**15
    x = torch.tensor([8.0 * np.cos(2.5 + np.pi), 8.0 * np.sin(2.5 + np.pi), 0.1]).double()
    centre = -disk_mixture.mean[3:]  # the mean velocity turned half a turn
    proposal = torch.distributions.MultivariateNormal(
        centre, 9 * torch.diag(disk_mixture.scale[3:]) ** 2
    )
    vel = proposal.sample((n,))
    with torch.no_grad():
        log_p = disk_mixture.log_prob_parts(torch.cat([x.expand(n, 3), vel], 1))[1]
    ratio = torch.exp(log_p - proposal.log_prob(vel))
    assert ratio.mean().item() == pytest.approx(1.0, abs=max(0.03, 4 * ratio.std().item() / n**0.5))
