"""pixel_intensity_emd: the earth mover's distance between pooled pixel-intensity histograms, in
grey levels, checked on image sets whose distance is known by construction."""

import numpy as np
import pytest
import torch

from dcgan.evaluate.pixels import corner_mean, intensity_emd, intensity_histograms, pixel_scores


def constant(value: int, count: int = 4, channels: int = 1, size: int = 8) -> torch.Tensor:
    return torch.full((count, channels, size, size), value, dtype=torch.uint8)


def emd(a: torch.Tensor, b: torch.Tensor) -> float:
    return intensity_emd(intensity_histograms(a), intensity_histograms(b))


def test_histograms_count_every_pixel_of_each_image_and_channel():
    images = torch.randint(0, 256, (5, 3, 7, 7), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    histograms = intensity_histograms(images)
    assert histograms.shape == (5, 3, 256) and (histograms.sum(axis=2) == 49).all()
    assert histograms[2, 1, images[2, 1, 0, 0]] >= 1
    assert np.array_equal(histograms[3, 0], np.bincount(images[3, 0].flatten().numpy(), minlength=256))


def test_the_distance_is_how_far_intensities_move_in_grey_levels():
    assert emd(constant(0), constant(0)) == 0
    assert emd(constant(0), constant(10)) == pytest.approx(10)
    assert emd(constant(200), constant(10)) == pytest.approx(190)
    # A grey background: 3/4 of the pixels lifted from 1 to 16, the object (255) unchanged -> 0.75 * 15.
    real = constant(1)
    real[:, :, :4, :4] = 255  # a quarter of the pixels
    grey = real.clone()
    grey[grey == 1] = 16
    assert emd(grey, real) == pytest.approx(0.75 * 15)


def test_colour_channels_count_alike_and_pool_over_images():
    red_shift = constant(0, channels=3)
    red_shift[:, 0] = 30  # one channel of three moved by 30
    assert emd(red_shift, constant(0, channels=3)) == pytest.approx(10)
    # Pooled, not per image: half the images at 0 and half at 20 against all at 10 is 10 apart.
    half_and_half = torch.cat([constant(0), constant(20)])
    assert emd(half_and_half, constant(10, count=8)) == pytest.approx(10)


def test_scores_carry_a_bootstrap_spread_that_vanishes_for_identical_images():
    scores = pixel_scores(constant(5), constant(0), seed=0)
    assert scores == {"pixel_intensity_emd": pytest.approx(5), "pixel_intensity_emd_std": 0.0}
    mixed = torch.cat([constant(0), constant(40)])
    assert pixel_scores(mixed, constant(0), seed=0)["pixel_intensity_emd_std"] > 0


def test_the_corner_mean_reads_the_four_corner_squares_only():
    images = torch.zeros((2, 1, 64, 64), dtype=torch.uint8)
    images[:, :, 10:54, 10:54] = 255  # the object, away from the 6x6 corners
    assert corner_mean(images) == 0
    images[0, :, :6, :6] = 40  # one corner of one image
    assert corner_mean(images) == pytest.approx(40 / 8)
    assert corner_mean(torch.full((1, 3, 32, 32), 9, dtype=torch.uint8)) == 9  # 3x3 at 32 px, any channels
