"""near_copy_share: samples that reproduce training images score near 1, new draws from the same
distribution near the floor (0.01 by construction), on point sets whose answer is known."""

import numpy as np
import pytest
import torch

from dcgan.evaluate.copies import QUANTILE, copy_scores, figure_rows, nearest_training_images, pixel_vectors

RNG = np.random.default_rng(0)
TRAIN = RNG.normal(size=(2000, 8))
TEST = RNG.normal(size=(2000, 8))  # real images G never saw: the same distribution


def test_nearest_training_images_match_a_brute_force_search():
    queries = RNG.normal(size=(50, 8))
    distances, indices = nearest_training_images(queries, TRAIN, k=3, chunk=16)
    brute = np.linalg.norm(queries[:, None] - TRAIN[None], axis=2)
    assert np.array_equal(indices, np.argsort(brute, axis=1)[:, :3])
    assert np.allclose(distances, np.sort(brute, axis=1)[:, :3], atol=1e-4)


def test_copies_of_training_images_score_near_one_and_new_draws_near_the_floor():
    copies = TRAIN[RNG.integers(0, len(TRAIN), 1000)] + RNG.normal(scale=1e-3, size=(1000, 8))
    copied, floor, details = copy_scores(copies, TEST, TRAIN, "classifier", seed=0)
    assert copied["near_copy_share_classifier"] == 1.0
    assert floor["near_copy_share_classifier"] == pytest.approx(QUANTILE, abs=0.01)
    fresh, _, _ = copy_scores(RNG.normal(size=(1000, 8)), TEST, TRAIN, "classifier", seed=0)
    assert fresh["near_copy_share_classifier"] < 0.04
    assert 0 < fresh["near_copy_share_classifier_std"] < 0.01  # binomial: sqrt(p (1 - p) / 1000)
    # A G that copies a tenth of its samples scores about a tenth.
    mixed = np.concatenate([copies[:100], RNG.normal(size=(900, 8))])
    partly, _, _ = copy_scores(mixed, TEST, TRAIN, "pixels", seed=0)
    assert partly["near_copy_share_pixels"] == pytest.approx(0.1, abs=0.03)


def test_the_figure_shows_the_likeliest_copies_first_then_others():
    samples = np.concatenate([RNG.normal(size=(20, 8)), TRAIN[:2]])  # the last two are exact copies
    _, _, details = copy_scores(samples, TEST, TRAIN, "classifier", seed=0)
    shown, neighbours = figure_rows(details, seed=0, closest=2, random=3)
    assert set(shown[:2]) == {20, 21} and len(set(shown)) == 5
    assert set(neighbours[:2, 0]) == {0, 1} and neighbours.shape == (5, 3)


def test_pixel_vectors_are_flat_and_in_the_unit_range():
    images = torch.tensor([[[[0, 255], [51, 102]]]], dtype=torch.uint8)
    assert np.allclose(pixel_vectors(images), [[0.0, 1.0, 0.2, 0.4]])
