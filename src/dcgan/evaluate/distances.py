"""Distances between two sets of feature vectors: Frechet distance and kernel (MMD) distance.

The definitions are FID's and KID's (Heusel et al., 2017; Binkowski et al., 2018); only the
feature space is ours, hence the names fd_* and kid_* in the classifier's space.
- KID is torchmetrics' KernelInceptionDistance, given a custom feature extractor that is the
  identity: each image set's features are extracted once and shared by every score, instead of
  running InceptionV3 again per metric. This module fixes its random subsets by seed.
- FD is computed here in the symmetric form (below) and tested against torchmetrics' FID: theirs
  takes the general eigenvalues of the non-symmetric S_a S_b, which at Inception's 2048
  dimensions is about 6x slower on a CPU (and the bootstrap spread needs 21 of them per image
  set), and can turn complex when a covariance is singular.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class _Precomputed(nn.Module):
    """A 'feature extractor' for features that are already extracted."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


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
    import warnings

    from torchmetrics.image.kid import KernelInceptionDistance

    size = min(subset_size, len(features_a) // 2, len(features_b) // 2)
    with warnings.catch_warnings():  # "will save all extracted features": they are in memory already
        warnings.simplefilter("ignore", UserWarning)
        metric = KernelInceptionDistance(feature=_Precomputed(features_a.shape[1]), subsets=subsets, subset_size=size)
    metric.update(torch.as_tensor(features_b, dtype=torch.float64), real=True)
    metric.update(torch.as_tensor(features_a, dtype=torch.float64), real=False)
    with torch.random.fork_rng(devices=[]):  # its subsets come from torch's global RNG: seed it, then restore
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


def frechet_distance_std(features_a: np.ndarray, features_b: np.ndarray, bootstrap: int = 20,
                         seed: int = 0) -> float:
    """Spread of the Frechet distance: its std over bootstrap resamples of the first set."""
    rng = np.random.default_rng(seed)
    values = [frechet_distance(features_a[rng.integers(0, len(features_a), len(features_a))], features_b)
              for _ in range(bootstrap)]
    return float(np.std(values))
