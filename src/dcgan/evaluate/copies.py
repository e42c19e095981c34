"""Does G reproduce its training images? Each sample's distance to its nearest training image,
against how near real images that G never saw (the test split) come to theirs.

`near_copy_share_<space>` is the share of samples nearer to some training image than 99% of real
test images are to theirs: the threshold is the 1st percentile of the test images' nearest-training-
image distances, taken on one half of the test split. Its floor is the same share for the other
half, which by construction sits near 0.01. A G that reproduces training images pushes the share
towards 1; one that draws new images stays near the floor. The space is the domain classifier's
features where the data set has labels, else pixels. A share's spread is its binomial standard
error over the samples.
"""

from __future__ import annotations

import numpy as np
import torch

from dcgan.evaluate.manifold import pairwise_blocks

QUANTILE = 0.01  # "nearer than 99% of real test images are"
MAX_POOL = 60_000  # training images searched (a random subset above this): 10k x 60k distances stay seconds


def pixel_vectors(images_u8: torch.Tensor) -> np.ndarray:
    """Images as points in pixel space (values 0-1), for data sets without a classifier."""
    return images_u8.reshape(len(images_u8), -1).float().div_(255).numpy()


def nearest_training_images(queries: np.ndarray, pool: np.ndarray, k: int = 1, chunk: int = 1024
                            ) -> tuple[np.ndarray, np.ndarray]:
    """(distances [N, k], indices [N, k]) of each query's k nearest rows of `pool` (Euclidean)."""
    queries_t, pool_t = (torch.as_tensor(points, dtype=torch.float32) for points in (queries, pool))
    distances, indices = [], []
    for _, block in pairwise_blocks(queries_t, pool_t, chunk):
        nearest = block.topk(k, dim=1, largest=False)
        distances.append(nearest.values.numpy())
        indices.append(nearest.indices.numpy())
    return np.concatenate(distances), np.concatenate(indices)


def pool_indices(count: int, seed: int) -> np.ndarray:
    """Which training images are searched: all of them, or MAX_POOL at random."""
    if count <= MAX_POOL:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, MAX_POOL, replace=False))


def copy_scores(sample_features: np.ndarray, test_features: np.ndarray, train_features: np.ndarray,
                space: str, seed: int) -> tuple[dict, dict, dict]:
    """(scores of the samples, the floor's, details for the figure): near_copy_share_<space> and its
    spread; the details hold each sample's nearest distances and training indices (k = 3)."""
    sample_distances, sample_indices = nearest_training_images(sample_features, train_features, k=3)
    test_distances, _ = nearest_training_images(test_features, train_features)
    order = np.random.default_rng(seed).permutation(len(test_features))
    threshold_half, floor_half = order[:len(order) // 2], order[len(order) // 2:]
    threshold = float(np.quantile(test_distances[threshold_half, 0], QUANTILE))

    def share(distances: np.ndarray) -> dict:
        value = float((distances < threshold).mean())
        return {f"near_copy_share_{space}": value,
                f"near_copy_share_{space}_std": float(np.sqrt(value * (1 - value) / len(distances)))}

    details = {"distances": sample_distances, "indices": sample_indices, "threshold": threshold}
    return share(sample_distances[:, 0]), share(test_distances[floor_half, 0]), details


def figure_rows(details: dict, seed: int, closest: int = 4, random: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Which samples the figure shows: the `closest` nearest to a training image (the likeliest copies),
    then `random` others; and their training images' indices (k = 3 each)."""
    nearest = details["distances"][:, 0]
    chosen = list(np.argsort(nearest)[:closest])
    rest = np.setdiff1d(np.arange(len(nearest)), chosen)
    chosen += list(np.random.default_rng(seed).choice(rest, min(random, len(rest)), replace=False))
    chosen = np.array(chosen)
    return chosen, details["indices"][chosen]
