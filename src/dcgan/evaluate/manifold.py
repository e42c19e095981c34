"""Fidelity and diversity, separately: k-NN manifold estimates in a feature space.

Improved precision and recall (Kynkaanniemi et al., 2019): precision is the share of generated
samples inside the real manifold (balls to each real point's k-th neighbour), recall the share of
real samples inside the generated one. Density and coverage (Naeem et al., 2020) use only the real
balls, which makes them robust to outliers: density counts how many real balls hold each sample
(1 on average when the two match), coverage is the share of real balls holding any sample.
Mode collapse keeps precision and loses recall and coverage.
"""

from __future__ import annotations

import numpy as np
import torch


def pairwise_blocks(a: torch.Tensor, b: torch.Tensor, chunk: int = 2048):
    """Yield (start, distances of a[start:start+chunk] to all of b): bounded memory for 10k x 10k (the
    manifold scores here, the copy search in copies.py)."""
    for start in range(0, len(a), chunk):
        yield start, torch.cdist(a[start:start + chunk], b)


def kth_neighbour_radii(features: torch.Tensor, *ks: int) -> list[torch.Tensor]:
    """For each k, the distance from each point to its k-th nearest other point (one pass for all)."""
    radii = torch.empty((len(ks), len(features)), dtype=features.dtype)
    for start, distances in pairwise_blocks(features, features):
        nearest = distances.topk(max(ks) + 1, dim=1, largest=False).values  # sorted; column 0 is itself
        radii[:, start:start + len(distances)] = nearest[:, list(ks)].T
    return list(radii)


def real_radii(real: np.ndarray, k_pr: int = 3, k_dc: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """The real k-NN balls, which every image set scored against the same real set shares."""
    return tuple(kth_neighbour_radii(torch.as_tensor(real, dtype=torch.float32), k_pr, k_dc))


def manifold_scores(real: np.ndarray, fake: np.ndarray, k_pr: int = 3, k_dc: int = 5,
                    bootstrap: int = 200, seed: int = 0, radii: tuple | None = None) -> dict:
    """Precision, recall, density, coverage, each with a bootstrap std over the samples it averages
    (the k-NN balls held fixed). `radii`: real_radii(real) when already computed."""
    real_t, fake_t = torch.as_tensor(real, dtype=torch.float32), torch.as_tensor(fake, dtype=torch.float32)
    real_radii_pr, real_radii_dc = radii if radii is not None else real_radii(real, k_pr, k_dc)
    (fake_radii,) = kth_neighbour_radii(fake_t, k_pr)

    in_real_balls = torch.zeros(len(fake_t), dtype=torch.bool)     # precision, per generated sample
    real_balls_hit = torch.zeros(len(fake_t), dtype=torch.float64)  # density, per generated sample
    in_fake_balls = torch.zeros(len(real_t), dtype=torch.bool)     # recall, per real sample
    nearest_fake = torch.full((len(real_t),), torch.inf)            # coverage, per real sample
    for start, distances in pairwise_blocks(fake_t, real_t):  # one pass over the fake x real distances
        rows = slice(start, start + len(distances))
        in_real_balls[rows] = (distances <= real_radii_pr).any(1)
        real_balls_hit[rows] = (distances <= real_radii_dc).sum(1).double()
        in_fake_balls |= (distances <= fake_radii[rows, None]).any(0)
        nearest_fake = torch.minimum(nearest_fake, distances.min(0).values)

    per_sample = {
        "precision": in_real_balls.double().numpy(),
        "recall": in_fake_balls.double().numpy(),
        "density": real_balls_hit.numpy() / k_dc,
        "coverage": (nearest_fake <= real_radii_dc).double().numpy(),
    }
    rng = np.random.default_rng(seed)
    scores = {}
    for name, values in per_sample.items():
        resampled = values[rng.integers(0, len(values), (bootstrap, len(values)))].mean(1)
        scores[name], scores[f"{name}_std"] = float(values.mean()), float(resampled.std())
    return scores
