"""The flow and the flow ensemble: normalisation, invertibility, gradients, training."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy import stats

from deeppot_galpy.df import FlowConfig, FlowEnsemble, FlowTraining, PhaseSpaceFlow
from deeppot_galpy.mocks import Plummer

SMALL = FlowConfig(steps=2, bins=6, hidden=(16, 16))


def _randomised(flow: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Perturb every parameter so the flow is far from the identity it starts as."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen))
    return flow


def test_log_density_integrates_to_one_in_2d():
    torch.manual_seed(0)  # the flow's initial weights: independent of the tests run before
    flow = _randomised(PhaseSpaceFlow(torch.tensor([0.5, -1.0]), torch.tensor([2.0, 0.5]), SMALL))
    g = torch.linspace(-25, 25, 1001, dtype=torch.float64)
    X, Y = torch.meshgrid(g, g * 0.25 - 1.0, indexing="ij")
    pts = torch.stack([X.ravel(), Y.ravel()], 1)
    flow = flow.double()
    with torch.no_grad():
        dens = torch.exp(flow.log_prob(pts)).reshape(X.shape)
    total = torch.trapezoid(torch.trapezoid(dens, g * 0.25 - 1.0, dim=1), g).item()
    assert total == pytest.approx(1.0, abs=0.01)


def test_flow_is_invertible():
    torch.manual_seed(0)  # the flow's initial weights: independent of the tests run before
    flow = _randomised(PhaseSpaceFlow(torch.zeros(6), torch.ones(6), SMALL)).double()
    y = torch.randn(500, 6, dtype=torch.float64) * 2
    t = flow.flow().transform
    torch.testing.assert_close(t.inv(t(y)), y, atol=1e-8, rtol=1e-8)


@pytest.mark.parametrize("model", ["joint", "factorised", "mixture", "radial_context"])
def test_grad_log_f_matches_finite_differences(model):
    ps = Plummer().sample(500, 0)
    config = (
        replace(SMALL, model="factorised", speed_profile=True, radial_context=True)
        if model == "radial_context"
        else replace(SMALL, model=model)
    )
    ens = FlowEnsemble(ps.standardization(), k=2, config=config)
    for m in ens.members:
        _randomised(m, 1)
    ens = ens.double()
    eta = ps.eta[:50]
    _, grad = ens.log_prob_and_grad(eta)
    h = 1e-5
    fd = np.stack(
        [
            (ens.log_prob_and_grad(eta + h * e)[0] - ens.log_prob_and_grad(eta - h * e)[0])
            / (2 * h)
            for e in np.eye(6)
        ],
        axis=1,
    )
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-6)


def test_ensemble_density_is_mean_of_members():
    torch.manual_seed(0)  # initial weights independent of the tests run before
    ps = Plummer().sample(200, 0)
    ens = FlowEnsemble(ps.standardization(), k=3, config=SMALL)
    for i, m in enumerate(ens.members):
        _randomised(m, i)
    # double: a float32 density far in a randomised flow's tail underflows to a denormal
    ens = ens.double()
    eta = torch.as_tensor(ps.eta, dtype=torch.float64)
    with torch.no_grad():
        members = torch.stack([torch.exp(m.log_prob(eta)) for m in ens.members]).mean(0)
        torch.testing.assert_close(torch.exp(ens.log_prob(eta)), members, rtol=1e-5, atol=0)


def test_standardisation_reports_physical_units():
    # ln f must not depend on the units the data are given in, except by the Jacobian
    ps = Plummer().sample(300, 0)
    ens = FlowEnsemble(ps.standardization(), k=1, config=SMALL)
    _randomised(ens.members[0])
    ens = ens.double()
    scaled = FlowEnsemble(ps.standardization(), k=1, config=SMALL).double()
    # the same weights, with the standardisation in units 10x smaller (exact in float64)
    scaled.load_state_dict(
        {k: v * 10 if k.endswith(("mean", "scale")) else v for k, v in ens.state_dict().items()}
    )
    lf, g = ens.log_prob_and_grad(ps.eta)
    lf10, g10 = scaled.log_prob_and_grad(ps.eta * 10)
    np.testing.assert_allclose(lf10, lf - 6 * np.log(10), rtol=1e-10)
    np.testing.assert_allclose(g10, g / 10, rtol=1e-8, atol=1e-10)


def test_training_improves_likelihood_and_is_seeded():
    ps = Plummer().sample(4096, 1)
    cfg = FlowTraining(epochs=6, batch_size=512, lr=3e-3)
    runs = []
    for _ in range(2):
        ens = FlowEnsemble(ps.standardization(), k=1, config=SMALL)
        (hist,) = ens.fit(ps, cfg, seed=4, progress=False)
        runs.append((ens, hist))
    hist = runs[0][1]
    assert hist["val_nll"][-1] < hist["val_nll"][0]
    assert hist["best_val_nll"] == min(hist["val_nll"])
    eta = torch.as_tensor(ps.eta[:100], dtype=torch.float32)
    with torch.no_grad():
        torch.testing.assert_close(runs[0][0].log_prob(eta), runs[1][0].log_prob(eta))


def test_samples_follow_the_density():
    # mapping samples through the flow's transform must give the standard-normal base
    ps = Plummer().sample(2000, 2)
    ens = FlowEnsemble(ps.standardization(), k=1, config=SMALL)
    _randomised(ens.members[0])
    s = ens.sample(4000, seed=0)
    m = ens.members[0]
    y = (torch.as_tensor(s, dtype=torch.float32) - m.mean) / m.scale
    with torch.no_grad():
        z = m.flow().transform(y).numpy()
    for j in range(6):
        assert stats.kstest(z[:, j], "norm").pvalue > 1e-3
    np.testing.assert_array_equal(ens.sample(10, 0), ens.sample(10, 0))
    assert not np.allclose(ens.sample(10, 0), ens.sample(10, 1))
