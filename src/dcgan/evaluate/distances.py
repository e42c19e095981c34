"""Distances between two sets of feature vectors: Frechet distance and kernel (MMD) distance.

The math is torchmetrics' FID and KID (Heusel et al., 2017; Binkowski et al., 2018). Their metrics
take a custom feature extractor; ours is the identity, because the features are computed once per
image set (in the classifier's space and in Inception's) and shared by every score, instead of
running InceptionV3 again for each metric. Only the feature space is ours, hence the names fd_* and
kid_* in the classifier's space; this module adds the spreads and fixes the random subsets by seed.
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


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2) of Gaussians fitted to each set."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric = FrechetInceptionDistance(feature=_Precomputed(features_a.shape[1]))
    metric.update(torch.as_tensor(features_b, dtype=torch.float64), real=True)
    metric.update(torch.as_tensor(features_a, dtype=torch.float64), real=False)
    return float(metric.compute())


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
