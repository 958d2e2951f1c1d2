"""The flows' symmetry augmentation moves stars by the symmetry's group, and only by it."""

import numpy as np
import pytest
import torch

from deeppot_galpy.df.augment import symmetry_augmentation


def _stars(n: int = 4096) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 6, generator=g, dtype=torch.float64) + torch.tensor(
        [2.0, 0, 0.5, 0, 1, 0.3]
    )


@pytest.mark.parametrize("symmetry", ["spherical", "axisymmetric", "mirror"])
def test_each_star_keeps_what_the_symmetry_conserves(symmetry):
    eta = _stars()
    out = symmetry_augmentation(symmetry, centred=True)(eta, torch.Generator().manual_seed(2))
    x, v, x2, v2 = eta[:, :3], eta[:, 3:], out[:, :3], out[:, 3:]
    # every group element is an isometry (drawn in float32, as the flows train):
    # |x|, |v| and x.v (energy, |L| in a spherical Phi)
    for a, b in ((x, x2), (v, v2)):
        np.testing.assert_allclose(a.norm(dim=1), b.norm(dim=1), rtol=1e-6)
    np.testing.assert_allclose((x * v).sum(1), (x2 * v2).sum(1), rtol=1e-6, atol=1e-5)
    if symmetry != "spherical":  # R, |z|, v_R, |L_z| (about the z axis) are kept too
        for f in (
            lambda x, v: x[:, :2].norm(dim=1),
            lambda x, v: x[:, 2].abs(),
            lambda x, v: (x[:, 0] * v[:, 1] - x[:, 1] * v[:, 0]).abs(),
        ):
            np.testing.assert_allclose(f(x, v), f(x2, v2), rtol=1e-6, atol=1e-5)
    # ... and the stars are spread over the group: the off-axis mean position is gone
    assert abs(float(x2[:, 0].mean())) < 0.1 < float(x[:, 0].mean())
    if symmetry != "axisymmetric":
        assert abs(float(x2[:, 2].mean())) < 0.1 < float(x[:, 2].mean())


def test_an_off_centre_volume_is_only_mirrored():
    eta = _stars()
    assert symmetry_augmentation("spherical", centred=False) is None
    assert symmetry_augmentation("axisymmetric", centred=False) is None
    out = symmetry_augmentation("mirror", centred=False)(eta, torch.Generator().manual_seed(3))
    flipped = out[:, 2] != eta[:, 2]
    assert 0.45 < float(flipped.double().mean()) < 0.55
    np.testing.assert_array_equal(out[:, [0, 1, 3, 4]], eta[:, [0, 1, 3, 4]])
    np.testing.assert_array_equal(out[flipped][:, [2, 5]], -eta[flipped][:, [2, 5]])
