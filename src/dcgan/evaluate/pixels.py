"""A score in pixel space: how far the samples' pixel intensities are from the real images'.

The classifier's features forgive what does not change a garment's class: a grey background, a
tint, a texture. Pixels do not. `pixel_intensity_emd` is the earth mover's distance between the
intensity histograms of two image sets, pooled over every pixel of every image, per channel and
then averaged over channels: how many grey levels (0-255), on average, each pixel's intensity must
move to turn one histogram into the other. A background at 16 instead of 1 on 80% of the pixels
moves it by about 12; two sets of real images from the same data stay near 0. It ignores where a
pixel is, so it works for any data set, black background or not.
"""

from __future__ import annotations

import numpy as np
import torch

LEVELS = 256


def intensity_histograms(images_u8: torch.Tensor) -> np.ndarray:
    """uint8 [N, C, H, W] -> [N, C, 256]: each image's count of pixels at each intensity, per channel."""
    count, channels = images_u8.shape[:2]
    flat = images_u8.reshape(count * channels, -1).long()
    offsets = torch.arange(count * channels).unsqueeze(1) * LEVELS
    histograms = torch.bincount((flat + offsets).flatten(), minlength=count * channels * LEVELS)
    return histograms.reshape(count, channels, LEVELS).numpy().astype(np.float64)


def intensity_emd(histograms_a: np.ndarray, histograms_b: np.ndarray) -> float:
    """The earth mover's distance between two sets' pooled intensity histograms ([N, C, 256] each),
    in grey levels: in one dimension, the area between the two cumulative distributions."""
    def cdf(histograms: np.ndarray) -> np.ndarray:
        pooled = histograms.sum(axis=0)  # [C, 256]
        return np.cumsum(pooled / pooled.sum(axis=1, keepdims=True), axis=1)

    return float(np.abs(cdf(histograms_a) - cdf(histograms_b)).sum(axis=1).mean())


def corner_mean(images_u8: torch.Tensor, fraction: float = 6 / 64) -> float:
    """The mean intensity (0-255) of each image's four corner squares, each `fraction` of the side
    (6x6 at 64 px, 3x3 at 32 px): a diagnostic, not a score. Where the data's background is black
    (Fashion-MNIST: 1.4 on the real training images at 64 px), a grey or textured one shows here."""
    side = max(1, round(images_u8.shape[-1] * fraction))
    corners = (images_u8[..., :side, :side], images_u8[..., :side, -side:], images_u8[..., -side:, :side],
               images_u8[..., -side:, -side:])
    return float(torch.stack([corner.float().mean() for corner in corners]).mean())


def pixel_scores(images_u8: torch.Tensor, test_u8: torch.Tensor, seed: int, bootstrap: int = 50) -> dict:
    """pixel_intensity_emd of an image set against the real test images, and its spread over
    bootstrap resamples of the set (the test set held fixed)."""
    histograms, test_histograms = intensity_histograms(images_u8), intensity_histograms(test_u8)
    rng = np.random.default_rng(seed)
    resampled = [intensity_emd(histograms[rng.integers(0, len(histograms), len(histograms))], test_histograms)
                 for _ in range(bootstrap)]
    return {"pixel_intensity_emd": intensity_emd(histograms, test_histograms),
            "pixel_intensity_emd_std": float(np.std(resampled))}
