"""The preprocess stage: decode once, resize with antialiasing, store compact uint8 tensors.

Training and evaluation read these files and never decode an image again; `normalize` maps them
to [-1, 1] on the device.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from dcgan.data.download import raw_folder
from dcgan.data.normalize import normalize
from dcgan.errors import DataError

CLASS_NAMES = {
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
}


def read_split(raw_root: str | Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 [N, C, H, W], labels int64 [N]) of one split, decoded by torchvision."""
    from torchvision.datasets import FashionMNIST

    if not raw_folder(Path(raw_root)).is_dir():
        raise DataError(f"No raw data under {raw_root}. Run the download stage first: dvc repro download")
    try:
        dataset = FashionMNIST(root=str(raw_root), train=train, download=False)
    except RuntimeError as exc:
        raise DataError(f"The raw data under {raw_root} is incomplete ({exc}). "
                        "Run the download stage again: dvc repro -f download") from None
    return dataset.data.unsqueeze(1).contiguous(), dataset.targets.to(torch.int64)


def resize(images: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """Bilinear resize with antialiasing (so downscaling does not alias), uint8 in and out."""
    if images.shape[-2:] == (size, size):
        return images
    out = torch.empty((images.shape[0], images.shape[1], size, size), dtype=torch.uint8)
    for start in range(0, images.shape[0], chunk):  # bounded memory: float copies of one chunk only
        block = images[start:start + chunk].float()
        block = F.interpolate(block, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[start:start + chunk] = block.round().clamp_(0, 255).to(torch.uint8)
    return out


def summarize(images: torch.Tensor, labels: torch.Tensor) -> dict:
    """What reports/data.json says about a preprocessed split, in the normalized [-1, 1] range."""
    channels = images.shape[1]
    per_channel = images.transpose(0, 1).reshape(channels, -1)
    # Exact statistics from the 256-bin histogram of each channel, no float copy of the data.
    levels = normalize(torch.arange(256, dtype=torch.uint8)).double()
    means, stds = [], []
    for values in per_channel:
        counts = torch.bincount(values.long(), minlength=256).double()
        mean = (counts * levels).sum() / counts.sum()
        var = (counts * (levels - mean) ** 2).sum() / counts.sum()
        means.append(round(mean.item(), 6))
        stds.append(round(var.sqrt().item(), 6))
    return {
        "count": int(images.shape[0]),
        "shape": list(images.shape[1:]),
        "normalized_min": normalize(images.min().reshape(1)).item(),
        "normalized_max": normalize(images.max().reshape(1)).item(),
        "channel_mean": means,
        "channel_std": stds,
        "class_counts": torch.bincount(labels, minlength=int(labels.max()) + 1).tolist(),
    }


def prepare_split(raw_root: str | Path, train: bool, size: int, max_images: int = 0) -> dict:
    """Decode, subset (first max_images; 0 = all) and resize one split into a storable dict."""
    images, labels = read_split(raw_root, train)
    if max_images:
        images, labels = images[:max_images], labels[:max_images]
    return {"images": resize(images, size), "labels": labels}
