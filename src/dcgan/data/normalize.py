"""The one map between stored pixels and the generator's range: uint8 [0, 255] <-> float [-1, 1].

Images are stored as uint8 and normalized on the device at training time, so this is the only
place the affine map is written down.
"""

from __future__ import annotations

import torch


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float32 in [-1, 1], matching G's tanh: 0 -> -1, 255 -> 1, exactly."""
    if images.dtype != torch.uint8:
        raise TypeError(f"normalize expects uint8 pixels, got {images.dtype}")
    return images.to(torch.float32) / 127.5 - 1.0


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """float in [-1, 1] -> uint8 pixels (rounded, clamped); the exact inverse of normalize on its image."""
    return ((images.detach().float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
