"""The phase-mixed Miyamoto-Nagai disk mock: truth, rotation, and stationarity under galpy."""

import numpy as np
import pytest

from deeppot_galpy.compare import field_errors
from deeppot_galpy.mocks import MiyamotoNagaiDisk, get_mock

N = 2**12
R_EDGES = [0.0, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0, 1.3, 1.7, 3.0]
Z_EDGES = [0.0, 0.01, 0.02, 0.035, 0.05, 0.08, 0.12, 0.2, 1.0]


@pytest.fixture(scope="module")
def mock():
    return MiyamotoNagaiDisk()


@pytest.fixture(scope="module")
def sample(mock):
    return mock.sample(N, seed=2)


def _counts(R, z):
    return np.concatenate([np.histogram(R, R_EDGES)[0], np.histogram(np.abs(z), Z_EDGES)[0]])


def _drift_chi2(mock, cyl, times):
    """sum over (R, |z|) bins of (n(t) - n(0))^2 / (n(t) + n(0)), at each of ``times[1:]``.

    For a stationary sample each term is at most ~1 (the same stars move between bins, so the
    difference varies less than two independent counts would): the sum stays below the
    number of bins.
    """
    from galpy.orbit import Orbit

    orbits = Orbit(cyl)
    orbits.integrate(
        times, mock.galpy_potential(), method="dop853_c", rtol=1e-6, atol=1e-9, progressbar=False
    )
    n0 = _counts(orbits.R(0.0), orbits.z(0.0))
    out = []
    for t in times[1:]:
        nt = _counts(orbits.R(t), orbits.z(t))
        out.append(float(np.sum((nt - n0) ** 2 / (nt + n0 + 1.0))))
    return np.array(out)


def _cylindrical(x, v):
    R = np.hypot(x[:, 0], x[:, 1])
    phi = np.arctan2(x[:, 1], x[:, 0])
    c, s = np.cos(phi), np.sin(phi)
    return np.stack(
        [R, v[:, 0] * c + v[:, 1] * s, -v[:, 0] * s + v[:, 1] * c, x[:, 2], v[:, 2], phi], axis=1
    )


def test_registry_and_truth_matches_galpy(mock, sample):
    assert isinstance(get_mock("mn_disk"), MiyamotoNagaiDisk)
    errs = field_errors(mock, mock.galpy_potential(), sample.x)
    for key in ("phi", "force", "density"):
        assert np.max(errs[key]) < 1e-10
    # v_c(R = 1) = vc_sun sets the mass
    a = mock.acceleration(np.array([[1.0, 0.0, 0.0]]))
    assert np.sqrt(-a[0, 0]) == pytest.approx(mock.vc_sun, rel=1e-12)


def test_disk_is_thin_and_rotating(mock, sample):
    cyl = _cylindrical(sample.x, sample.v)
    near_sun = (cyl[:, 0] > 0.85) & (cyl[:, 0] < 1.15)
    assert near_sun.sum() > 200
    # mean rotation a little below v_c (asymmetric drift), radial motions hotter than vertical
    assert 0.85 < np.mean(cyl[near_sun, 2]) < 1.0
    assert np.std(cyl[near_sun, 1]) > np.std(cyl[near_sun, 4]) > 0.05
    assert np.std(cyl[near_sun, 3]) < 0.1


def test_reproducible(mock):
    a, b = mock.sample(64, seed=4), mock.sample(64, seed=4)
    np.testing.assert_array_equal(a.x, b.x)


def test_phase_mixed_snapshot_is_stationary(mock, sample):
    """Evolving the snapshot for ~2 solar orbits leaves the (R, |z|) counts within noise ...

    ... while the same test flags the (unmixed) initial conditions, so it has teeth.
    """
    times = np.linspace(0.0, 12.0, 7)
    n_bins = len(R_EDGES) + len(Z_EDGES) - 2
    chi2 = _drift_chi2(mock, _cylindrical(sample.x, sample.v), times)
    assert chi2.mean() < n_bins
    assert chi2.max() < n_bins + 3 * np.sqrt(2 * n_bins)
    ic = mock.initial_conditions(N, np.random.default_rng(2))
    assert _drift_chi2(mock, ic, times).mean() > n_bins + 3 * np.sqrt(2 * n_bins)
