import numpy as np
import pytest
from scipy import linalg

from dcgan.evaluate.distances import frechet_distance, kernel_distance


def reference_frechet(a, b):
    """The pytorch-fid formula, with scipy's general matrix square root."""
    mu_a, mu_b, cov_a, cov_b = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(cov_a @ cov_b).real
    return ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * covmean)


def test_frechet_distance_matches_the_reference_formula():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2000, 16)) @ rng.normal(size=(16, 16))
    b = rng.normal(0.3, 1.5, size=(2000, 16)) @ rng.normal(size=(16, 16))
    assert frechet_distance(a, b) == pytest.approx(reference_frechet(a, b), rel=1e-8)


def test_frechet_distance_of_known_gaussians():
    # N(0, I) vs N(m, s^2 I) in d dims: |m|^2 + d (1 - s)^2
    rng = np.random.default_rng(1)
    a = rng.normal(0, 1, size=(200_000, 4))
    b = rng.normal(2, 3, size=(200_000, 4))
    assert frechet_distance(a, b) == pytest.approx(4 * 4 + 4 * (1 - 3) ** 2, rel=0.01)


def test_frechet_distance_is_zero_for_identical_sets_even_if_singular():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(500, 8))
    a[:, 3] = 0  # a dead feature: singular covariance, which made scipy's sqrtm warn and wobble
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-6)  # sqrt of ~1e-16 eigenvalues


def test_kernel_distance_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(3000, 8)), rng.normal(size=(3000, 8))
    same_mean, same_std = kernel_distance(a, b, subset_size=500, subsets=20)
    shifted_mean, _ = kernel_distance(a, b + 0.5, subset_size=500, subsets=20)
    assert abs(same_mean) < 3 * same_std + 1e-3
    assert shifted_mean > 20 * max(same_std, 1e-3)


def test_kernel_distance_is_deterministic_for_a_seed():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    assert kernel_distance(a, b, 100, 5, seed=7) == kernel_distance(a, b, 100, 5, seed=7)


def test_frechet_distance_matches_torchmetrics_fid_on_the_same_features():
    import torch
    from torchmetrics.image.fid import FrechetInceptionDistance

    from dcgan.evaluate.distances import _Precomputed

    rng = np.random.default_rng(5)
    a = rng.normal(size=(3000, 32)) @ rng.normal(size=(32, 32))
    b = rng.normal(0.2, 1.2, size=(3000, 32)) @ rng.normal(size=(32, 32))
    fid = FrechetInceptionDistance(feature=_Precomputed(32))
    fid.update(torch.as_tensor(b), real=True)
    fid.update(torch.as_tensor(a), real=False)
    assert frechet_distance(a, b) == pytest.approx(float(fid.compute()), rel=1e-6)
