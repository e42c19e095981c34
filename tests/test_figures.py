"""The grid layout of the figures is torchvision's make_grid (which the train stage no longer imports)."""

import pytest
import torch
from torchvision.utils import make_grid

from dcgan.figures import grid_image, tile


@pytest.mark.parametrize("shape", [(64, 1, 16, 16), (10, 3, 8, 8), (5, 1, 28, 28)])
def test_tile_lays_images_out_as_make_grid_does(shape):
    images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    expected = make_grid(images, nrow=8, padding=2, pad_value=255)  # gray comes back as 3 equal channels
    assert torch.equal(tile(images, nrow=8), expected[:shape[1]])
    image = grid_image(images, scale=2)
    assert image.mode == ("L" if shape[1] == 1 else "RGB") and image.size == (expected.shape[2] * 2, expected.shape[1] * 2)
