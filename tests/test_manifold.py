import numpy as np
import pytest

from dcgan.evaluate.classes import class_scores, class_shares
from dcgan.evaluate.distances import frechet_distance_std
from dcgan.evaluate.manifold import kth_neighbour_radii, manifold_scores


def test_kth_neighbour_radii_on_a_line():
    import torch
    points = torch.tensor([[0.0], [1.0], [3.0], [6.0]])
    first, second = kth_neighbour_radii(points, 1, 2)
    assert first.tolist() == [1.0, 1.0, 2.0, 3.0]
    assert second.tolist() == [3.0, 2.0, 3.0, 5.0]


def test_same_distribution_scores_high_and_density_near_one():
    rng = np.random.default_rng(0)
    scores = manifold_scores(rng.normal(size=(2000, 8)), rng.normal(size=(2000, 8)))
    assert scores["precision"] > 0.6 and scores["recall"] > 0.6 and scores["coverage"] > 0.9
    assert scores["density"] == pytest.approx(1.0, abs=0.15)
    assert 0 < scores["precision_std"] < 0.05


def test_a_collapsed_generator_keeps_precision_and_loses_recall():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(2000, 2))
    collapsed = rng.normal(0, 0.1, size=(2000, 2))  # all samples in the real centre
    scores = manifold_scores(real, collapsed)
    assert scores["precision"] > 0.95 and scores["recall"] < 0.2 and scores["coverage"] < 0.2


def test_far_away_samples_have_no_precision_or_density():
    rng = np.random.default_rng(2)
    scores = manifold_scores(rng.normal(size=(1000, 4)), rng.normal(10, 1, size=(1000, 4)))
    assert scores["precision"] == scores["density"] == scores["recall"] == scores["coverage"] == 0


def test_class_scores():
    uniform = np.eye(4)[np.arange(400) % 4]  # confident, all four classes equally
    scores = class_scores(uniform, class_shares(uniform))
    assert scores["class_entropy_ratio"] == pytest.approx(1) and scores["classes_covered"] == 4
    assert scores["is_classifier"] == pytest.approx(4, rel=1e-6)  # the maximum: exp(log 4)
    one_class = np.eye(4)[np.zeros(400, dtype=int)]
    scores = class_scores(one_class, class_shares(uniform))
    assert scores["class_entropy_ratio"] == 0 and scores["classes_covered"] == 1
    assert scores["is_classifier"] == pytest.approx(1, rel=1e-6)


def test_frechet_distance_spread_shrinks_with_more_samples():
    rng = np.random.default_rng(3)
    reference = rng.normal(size=(4000, 4))
    small = frechet_distance_std(rng.normal(size=(200, 4)), reference)
    large = frechet_distance_std(rng.normal(size=(4000, 4)), reference)
    assert 0 < large < small
