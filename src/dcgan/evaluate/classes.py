"""Mode collapse in plain words: which classes the domain classifier sees in the samples."""

from __future__ import annotations

import numpy as np

# A class counts as covered when it gets at least this fraction of its share among real images.
COVERED_FRACTION = 0.25


def class_shares(probabilities: np.ndarray) -> np.ndarray:
    """Share of samples assigned to each class (the classifier's argmax)."""
    counts = np.bincount(probabilities.argmax(1), minlength=probabilities.shape[1])
    return counts / counts.sum()


def class_scores(probabilities: np.ndarray, real_shares: np.ndarray) -> dict:
    """Entropy of the class histogram against its maximum, classes covered, and the domain
    classifier's Inception-Score analogue exp(E_x KL(p(y|x) || p(y))): high when each sample is
    clearly one class and the classes are varied."""
    shares = class_shares(probabilities)
    nonzero = shares[shares > 0]
    entropy = float(-(nonzero * np.log(nonzero)).sum()) + 0.0  # + 0.0: no "-0" for a single class
    marginal = probabilities.mean(0)
    kl = (probabilities * (np.log(probabilities + 1e-12) - np.log(marginal + 1e-12))).sum(1)
    return {
        "class_entropy_ratio": entropy / float(np.log(len(shares))),
        "classes_covered": int((shares >= COVERED_FRACTION * real_shares).sum()),
        "is_classifier": float(np.exp(kl.mean())),
    }
