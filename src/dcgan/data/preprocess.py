"""The preprocess stage: decode once, resize with antialiasing, store compact uint8 tensors.

Training and evaluation read these files and never decode an image again; `normalize` maps them
to [-1, 1] on the device. Data sets of image files (CelebA, a folder) are decoded in parallel
workers and written chunk by chunk into one preallocated uint8 tensor, so memory stays at the size
of the output plus a few batches, whatever the size of the originals.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from dcgan.data.datasets import DATASETS
from dcgan.data.raw import CELEBA_IMAGES, CELEBA_PARTITION, CIFAR10_MD5, image_files, raw_folder
from dcgan.data.normalize import normalize
from dcgan.errors import DataError
from dcgan.io import progress_bar

# Share of a split held out as the real test set where a data set has no test split (folder).
HELD_OUT_SHARE = 0.5


def _missing_raw(raw_root: Path, dataset: str) -> DataError:
    return DataError(f"No raw {dataset} data under {raw_root}. Run the download stage first: dvc repro download")


# --- data sets stored as arrays ------------------------------------------------------------------

def _read_idx(raw_root: Path, dataset: str, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision.datasets import MNIST, FashionMNIST

    if not raw_folder(raw_root, dataset).is_dir():
        raise _missing_raw(raw_root, dataset)
    cls = FashionMNIST if dataset == "fashion_mnist" else MNIST
    try:
        split = cls(root=str(raw_root), train=train, download=False)
    except RuntimeError as exc:
        raise DataError(f"The raw data under {raw_root} is incomplete ({exc}). "
                        "Run the download stage again: dvc repro -f download") from None
    return split.data.unsqueeze(1).contiguous(), split.targets.to(torch.int64)


class _NumpyOnly(pickle.Unpickler):
    """CIFAR-10 batches are pickles; this one rebuilds numpy arrays and nothing else, so a crafted
    file cannot run code."""
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"),
               ("_codecs", "encode")}  # how Python 3 writes bytes at protocol 2

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR-10 batch")


def _read_cifar10(raw_root: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    folder = raw_folder(raw_root, "cifar10")
    if not folder.is_dir():
        raise _missing_raw(raw_root, "cifar10")
    names = [name for name in CIFAR10_MD5 if name.startswith("data_batch") == train]
    images, labels = [], []
    for name in names:
        try:
            with open(folder / name, "rb") as f:
                batch = _NumpyOnly(f, encoding="latin1").load()
        except (OSError, EOFError, pickle.UnpicklingError) as exc:
            raise DataError(f"{folder / name} cannot be read ({exc}). Run the download stage again: "
                            "dvc repro -f download") from None
        images.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.extend(batch["labels"])
    return torch.from_numpy(np.concatenate(images)), torch.tensor(labels, dtype=torch.int64)


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


# --- data sets stored as image files -------------------------------------------------------------

class _ImageFiles(torch.utils.data.Dataset):
    """Decodes one file: resize the shorter side to `size`, then center-crop (the PyTorch tutorial's
    transform). An unreadable file yields ok=False instead of stopping the run."""

    def __init__(self, folder: Path, files: list[Path], size: int, channels: int):
        self.folder, self.files, self.size = folder, files, size
        self.mode = "L" if channels == 1 else "RGB"
        self.channels = channels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, bool]:
        from PIL import Image
        from torchvision.transforms.v2 import functional as TF

        try:
            with Image.open(self.folder / self.files[index]) as image:
                image = image.convert(self.mode)  # decodes the whole file: truncation shows here
            image = TF.center_crop(TF.resize(image, self.size, antialias=True), self.size)
            return TF.pil_to_tensor(image), True
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            return torch.zeros(self.channels, self.size, self.size, dtype=torch.uint8), False


def decode_files(folder: Path, files: list[Path], size: int, channels: int, max_bad_fraction: float,
                 batch_size: int = 256) -> tuple[torch.Tensor, list[str]]:
    """(uint8 [N_good, C, size, size], unreadable files) of `files`; fails if too many are unreadable."""
    dataset = _ImageFiles(folder, files, size, channels)
    workers = min(8, os.cpu_count() or 1) if len(files) >= 2000 else 0  # workers cost more than they save on few
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers)
    out = torch.empty((len(files), channels, size, size), dtype=torch.uint8)
    good = torch.empty(len(files), dtype=torch.bool)
    start = 0
    with progress_bar(total=len(files), desc="decode", unit="img") as progress:
        for images, ok in loader:
            out[start:start + len(images)] = images
            good[start:start + len(images)] = ok
            start += len(images)
            progress.update(len(images))
    bad = [str(files[i]) for i in (~good).nonzero().flatten().tolist()]
    if len(bad) > max_bad_fraction * len(files):
        shown = ", ".join(bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
        raise DataError(f"{len(bad)} of {len(files)} images under {folder} cannot be read ({shown}); more than "
                        f"`max_bad_image_fraction` = {max_bad_fraction} allows. Remove or repair them, or raise "
                        "the threshold in params.yaml.")
    if bad:  # the copy costs one more output's worth of memory, only when files were skipped
        out = out[good]
    return out, bad


def _celeba_files(raw_root: Path, train: bool) -> tuple[Path, list[Path]]:
    folder = raw_folder(raw_root, "celeba")
    partition_file = folder / CELEBA_PARTITION
    if not partition_file.is_file():
        raise _missing_raw(raw_root, "celeba")
    wanted = "0" if train else "2"  # list_eval_partition.txt: 0 train, 1 validation, 2 test
    files = [Path(name) for name, part in (line.split() for line in partition_file.read_text().splitlines()
                                           if line.strip()) if part == wanted]
    return folder / CELEBA_IMAGES, files


# --- one split, whatever the data set -------------------------------------------------------------

def prepare_split(raw_root: str | Path, train: bool, size: int, dataset: str = "fashion_mnist",
                  max_images: int = 0, channels: Optional[int] = None, max_bad_fraction: float = 0.0) -> dict:
    """Decode, subset (first max_images; 0 = all) and resize one split into a storable dict:
    `images` uint8 [N, C, size, size], `labels` int64 [N] for labelled data sets, `unreadable` files.
    For `folder`, both splits are the whole folder (see `held_out_split` for evaluation)."""
    raw_root = Path(raw_root)
    spec = DATASETS[dataset]
    channels = spec.channels or channels
    if dataset in ("fashion_mnist", "mnist", "cifar10"):
        images, labels = (_read_cifar10(raw_root, train) if dataset == "cifar10"
                          else _read_idx(raw_root, dataset, train))
        if max_images:
            images, labels = images[:max_images], labels[:max_images]
        return {"images": resize(images, size), "labels": labels, "unreadable": []}
    if dataset == "celeba":
        folder, files = _celeba_files(raw_root, train)
    else:
        folder = raw_folder(raw_root, "folder")
        if not folder.is_dir():
            raise _missing_raw(raw_root, dataset)
        files = image_files(folder)
    if max_images:
        files = files[:max_images]
    images, unreadable = decode_files(folder, files, size, channels, max_bad_fraction)
    return {"images": images, "unreadable": unreadable}


def held_out_indices(count: int, seed: int, max_test: int = 10_000) -> torch.Tensor:
    """Which of a split's `count` images are held out as the test set, for data sets without one."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    return order[:min(max_test, int(count * HELD_OUT_SHARE))]


def held_out_split(split: dict, seed: int, max_test: int = 10_000) -> tuple[dict, dict]:
    """(real, test) halves of a split, for data sets without a test split: the scores compare samples
    with `test` and the floor compares other real images with `test`, two disjoint sets."""
    test = held_out_indices(len(split["images"]), seed, max_test)
    real = torch.ones(len(split["images"]), dtype=torch.bool)
    real[test] = False
    return {"images": split["images"][real]}, {"images": split["images"][test]}


def summarize(images: torch.Tensor, labels: Optional[torch.Tensor]) -> dict:
    """What reports/data.json says about a preprocessed split, in the normalized [-1, 1] range."""
    # Exact statistics from the 256-bin histogram of each channel, no float copy of the data.
    levels = normalize(torch.arange(256, dtype=torch.uint8)).double()
    means, stds = [], []
    for channel in range(images.shape[1]):
        counts = torch.bincount(images[:, channel].flatten().long(), minlength=256).double()
        mean = (counts * levels).sum() / counts.sum()
        var = (counts * (levels - mean) ** 2).sum() / counts.sum()
        means.append(round(mean.item(), 6))
        stds.append(round(var.sqrt().item(), 6))
    summary = {
        "count": int(images.shape[0]),
        "shape": list(images.shape[1:]),
        "normalized_min": normalize(images.min().reshape(1)).item(),
        "normalized_max": normalize(images.max().reshape(1)).item(),
        "channel_mean": means,
        "channel_std": stds,
    }
    if labels is not None:
        summary["class_counts"] = torch.bincount(labels, minlength=int(labels.max()) + 1).tolist()
    return summary
