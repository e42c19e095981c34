"""Distances between two sets of feature vectors: Frechet distance and kernel (MMD) distance.

Both follow the reference definitions used for FID (Heusel et al., 2017) and KID (Binkowski et
al., 2018); only the feature space is ours, hence the names fd_* and kid_*, never fid/kid alone.
"""

from __future__ import annotations

import numpy as np


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(values.clip(min=0))) @ vectors.T


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2) of Gaussians fitted to each set.

    Tr((S_a S_b)^1/2) is computed as the sum of square roots of the eigenvalues of the symmetric
    S_a^1/2 S_b S_a^1/2 (same spectrum as S_a S_b), which stays real and stable when a covariance
    is singular, as it is for features with dead ReLU units.
    """
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root_a = _sqrt_psd(cov_a)
    product = root_a @ cov_b @ root_a
    trace_sqrt = np.sqrt(np.linalg.eigvalsh((product + product.T) / 2).clip(min=0)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt)


def kernel_distance(features_a: np.ndarray, features_b: np.ndarray, subset_size: int = 1000,
                    subsets: int = 100, seed: int = 0) -> tuple[float, float]:
    """Unbiased MMD^2 with the cubic polynomial kernel, mean and std over random subsets.

    Subsets hold at most half of the smaller set, so that they differ and the std means something.
    """
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    size = min(subset_size, len(a) // 2, len(b) // 2)
    dim = a.shape[1]
    rng = np.random.default_rng(seed)
    estimates = []
    for _ in range(subsets):
        x = a[rng.choice(len(a), size, replace=False)]
        y = b[rng.choice(len(b), size, replace=False)]
        k_xx = (x @ x.T / dim + 1) ** 3
        k_yy = (y @ y.T / dim + 1) ** 3
        k_xy = (x @ y.T / dim + 1) ** 3
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (size * (size - 1))
        estimates.append(within - 2 * k_xy.mean())
    return float(np.mean(estimates)), float(np.std(estimates))


def frechet_distance_std(features_a: np.ndarray, features_b: np.ndarray, bootstrap: int = 20,
                         seed: int = 0) -> float:
    """Spread of the Frechet distance: its std over bootstrap resamples of the first set."""
    rng = np.random.default_rng(seed)
    values = [frechet_distance(features_a[rng.integers(0, len(features_a), len(features_a))], features_b)
              for _ in range(bootstrap)]
    return float(np.std(values))
