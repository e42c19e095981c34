"""Where each data set's raw files lie under data/raw/: torchvision's layout, so its classes read them.
The download stage writes this layout (download.py) and the preprocessing stages read it (preprocess.py)."""

from __future__ import annotations

from pathlib import Path

CIFAR10_FOLDER = "cifar-10-batches-py"
# torchvision.datasets.CIFAR10's md5 of each extracted batch file (download.py checks them).
CIFAR10_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
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
