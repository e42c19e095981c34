"""Where each data set's raw files lie under data/raw/: torchvision's layout, so its classes read them.
The download stage writes this layout (download.py) and the preprocessing stages read it (preprocess.py)."""

from __future__ import annotations

from pathlib import Path

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")
CELEBA_IMAGES = "img_align_celeba"
CELEBA_PARTITION = "list_eval_partition.txt"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def raw_folder(raw_root: str | Path, dataset: str = "fashion_mnist") -> Path:
    """Where a data set's files go under the raw root."""
    return Path(raw_root) / {"fashion_mnist": "FashionMNIST/raw", "mnist": "MNIST/raw", "cifar10": CIFAR10_FOLDER,
                             "celeba": "celeba", "folder": "folder"}[dataset]


def image_files(folder: Path) -> list[Path]:
    """Image files under `folder`, recursively, by suffix, in a fixed order (paths relative to it)."""
    return sorted(p.relative_to(folder) for p in folder.rglob("*")
                  if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
