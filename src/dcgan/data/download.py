"""The download stage: get the raw data set files, verified, into the DVC-tracked raw folder.

Sources, in order: a local mirror (`data_mirror`: a folder, or for CIFAR-10 the archive itself),
then torchvision's own download with its checksums. Every file is checked against a known checksum
before it is used; a bad one is never kept in the raw folder. The raw folder follows torchvision's
layout for each data set, so both sources give the same bytes and DVC sees the same output.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path
from typing import Callable, Optional

from dcgan.data.archives import require_checksum, safe_extract
from dcgan.digests import md5_of, sha256_of
from dcgan.data.datasets import DATASETS
from dcgan.data.raw import (CELEBA_IMAGES, CELEBA_PARTITION, CIFAR10_FOLDER, CIFAR10_MD5, IMAGE_SUFFIXES, image_files,
                            raw_folder)
from dcgan.errors import DataError
from dcgan.io import atomic_path

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

# Fashion-MNIST: sha256 of the *decompressed* upstream IDX files (zalandoresearch/fashion-mnist), because
# Debian recompresses the .gz files, so their own checksums differ from torchvision's.
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
# MNIST: md5 of the upstream .gz files, as torchvision.datasets.MNIST.resources lists them.
MNIST_GZ_MD5 = {
    "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
}
# CIFAR-10: torchvision.datasets.CIFAR10's md5 of the archive (of each extracted file: raw.CIFAR10_MD5).
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
# CelebA: torchvision.datasets.CelebA's md5 of the aligned-faces zip and of the partition list.
CELEBA_ZIP = "img_align_celeba.zip"
CELEBA_ZIP_MD5 = "00d2c5bc6d35e252742224ab0c1e8fcb"
CELEBA_PARTITION_MD5 = "d32c9cbf5e040fd4025c592c306e6668"

def _download_or_explain(raw_root: Path, dataset: str, mirror: Optional[str], how_to_mirror: str) -> None:
    """torchvision's download; if it fails (offline, say), an error that names both ways to get the data."""
    try:
        _download_with_torchvision(raw_root, dataset)
    except Exception as exc:  # urllib, socket and torchvision's own errors all mean "could not download"
        where = f"no usable mirror at {mirror}" if mirror else "no mirror set (`data_mirror`)"
        raise DataError(
            f"{dataset} is not available: {where}, and the download failed ({type(exc).__name__}: {exc}).\n"
            f"Two ways to fix it:\n  1. Offline: {how_to_mirror}\n"
            "  2. Online: connect this machine to the internet and run again; torchvision downloads the files."
        ) from None


# --- MNIST and Fashion-MNIST: four IDX files -------------------------------------------------------

def _copy_idx(source: Path, target: Path, dataset: str) -> None:
    """Decompress (if .gz) one mirror file into place; it appears only if its checksum matches."""
    if dataset == "mnist":
        if source.suffix != ".gz":
            raise DataError(f"{source}: an MNIST mirror must hold the upstream .gz files (their md5 is known; "
                            "the decompressed files' is not), e.g. train-images-idx3-ubyte.gz.")
        require_checksum(source, MNIST_GZ_MD5[target.name], f"MNIST's {source.name}")
    opener = gzip.open if source.suffix == ".gz" else open
    with atomic_path(target) as tmp:
        try:
            with opener(source, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except (OSError, EOFError) as exc:  # gzip raises these for truncated or garbled files
            raise DataError(f"{source} cannot be read ({exc}). The mirror file is damaged: replace it (for "
                            "Fashion-MNIST: apt-get install --reinstall dataset-fashion-mnist) or point "
                            "`data_mirror` in params.yaml at a good copy.") from None
        if dataset == "fashion_mnist":
            actual, expected = sha256_of(tmp), FASHION_MNIST_SHA256[target.name]
            if actual != expected:
                raise _checksum_error(target.name, f"the mirror {source.parent}", actual, expected)


def _checksum_error(name: str, source: str, actual: str, expected: str) -> DataError:
    return DataError(f"{name} from {source} does not match the known Fashion-MNIST checksum "
                     f"(sha256 {actual}, expected {expected}). The file is corrupt, truncated or another "
                     "data set; it was not used. Replace it with a good copy and run again.")


def verify(folder: Path, expected: dict[str, str], source: str) -> None:
    """Check files already in place; a bad one is deleted so that it can never be used."""
    for name, sha in expected.items():
        actual = sha256_of(folder / name)
        if actual != sha:
            (folder / name).unlink()
            raise _checksum_error(name, source, actual, sha)


def _mirror_files(mirror: Path, names) -> dict[str, Path] | None:
    """The mirror's file for each name (.gz or plain), or None if the mirror lacks any of them."""
    found = {}
    for name in names:
        existing = [c for c in (mirror / f"{name}.gz", mirror / name) if c.is_file()]
        if not existing:
            return None
        found[name] = existing[0]
    return found


def _download_with_torchvision(raw_root: Path, dataset: str) -> None:
    """torchvision's own download, which checks its md5 list (CelebA comes from Google Drive)."""
    from torchvision import datasets

    if dataset in ("fashion_mnist", "mnist"):
        cls = datasets.FashionMNIST if dataset == "fashion_mnist" else datasets.MNIST
        cls(root=str(raw_root), train=True, download=True)
        cls(root=str(raw_root), train=False, download=True)
    elif dataset == "cifar10":
        datasets.CIFAR10(root=str(raw_root), train=True, download=True)
    elif dataset == "celeba":
        datasets.CelebA(root=str(raw_root), split="all", target_type=[], download=True)


def fetch_idx(dataset: str, mirror: Optional[str], raw_root: Path) -> str:
    target = raw_folder(raw_root, dataset)
    target.mkdir(parents=True, exist_ok=True)
    files = _mirror_files(Path(mirror), IDX_FILES) if mirror and Path(mirror).is_dir() else None
    if files is not None:
        for name, source in files.items():
            _copy_idx(source, target / name, dataset)
        return f"mirror {mirror}"
    how = ("install the Debian package (as root: apt-get update && apt-get install dataset-fashion-mnist), "
           "or set" if dataset == "fashion_mnist" else "set")
    _download_or_explain(raw_root, dataset, mirror, f"{how} `data_mirror` in params.yaml to a folder holding the "
                         f"four IDX files ({', '.join(IDX_FILES)}, "
                         f"{'plain or .gz' if dataset == 'fashion_mnist' else 'as the upstream .gz'}).")
    if dataset == "fashion_mnist":  # torchvision checked the .gz; this checks what is kept
        verify(target, FASHION_MNIST_SHA256, "the torchvision download")
    for leftover in target.glob("*.gz"):  # keep the output identical to the mirror path's
        leftover.unlink()
    return "torchvision download"


def fetch_fashion_mnist(mirror: str | Path, raw_root: str | Path) -> str:
    return fetch_idx("fashion_mnist", str(mirror), Path(raw_root))


# --- CIFAR-10: the python archive ------------------------------------------------------------------

def _verify_cifar10(folder: Path) -> None:
    for name, md5 in CIFAR10_MD5.items():
        if not (folder / name).is_file():
            raise DataError(f"{folder} lacks {name}: the CIFAR-10 archive is incomplete. Replace it with a good copy.")
        if md5_of(folder / name) != md5:
            shutil.rmtree(folder)
            raise DataError(f"{folder / name} does not match CIFAR-10's known md5 {md5}: the archive is corrupt "
                            "or another data set; its files were removed. Replace it with a good copy.")


def fetch_cifar10(mirror: Optional[str], raw_root: Path) -> str:
    target = raw_folder(raw_root, "cifar10")
    shutil.rmtree(target, ignore_errors=True)
    source = Path(mirror) if mirror else None
    if source is not None and source.is_dir():
        if (source / CIFAR10_FOLDER).is_dir():  # already extracted
            shutil.copytree(source / CIFAR10_FOLDER, target)
            _verify_cifar10(target)
            return f"mirror {source / CIFAR10_FOLDER}"
        source = source / CIFAR10_ARCHIVE
    if source is not None and source.is_file():
        require_checksum(source, CIFAR10_ARCHIVE_MD5, "the CIFAR-10 python archive")
        safe_extract(source, raw_root)
        _verify_cifar10(target)
        return f"mirror {source}"
    _download_or_explain(raw_root, "cifar10", mirror, f"set `data_mirror` to {CIFAR10_ARCHIVE} (or the folder "
                         f"holding it, or holding the extracted {CIFAR10_FOLDER}/).")
    (raw_root / CIFAR10_ARCHIVE).unlink(missing_ok=True)
    _verify_cifar10(target)
    return "torchvision download"


# --- CelebA: aligned faces and the partition list --------------------------------------------------

def fetch_celeba(mirror: Optional[str], raw_root: Path) -> str:
    target = raw_folder(raw_root, "celeba")
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    source = Path(mirror) if mirror else None
    if source is not None and source.is_dir() and (source / CELEBA_PARTITION).is_file():
        require_checksum(source / CELEBA_PARTITION, CELEBA_PARTITION_MD5, f"CelebA's {CELEBA_PARTITION}")
        if (source / CELEBA_IMAGES).is_dir():  # already extracted: each image is checked when decoded
            shutil.copytree(source / CELEBA_IMAGES, target / CELEBA_IMAGES)
        elif (source / CELEBA_ZIP).is_file():
            require_checksum(source / CELEBA_ZIP, CELEBA_ZIP_MD5, f"CelebA's {CELEBA_ZIP}")
            safe_extract(source / CELEBA_ZIP, target)
        else:
            raise DataError(f"{source} has {CELEBA_PARTITION} but neither {CELEBA_ZIP} nor {CELEBA_IMAGES}/.")
        shutil.copy2(source / CELEBA_PARTITION, target / CELEBA_PARTITION)
        return f"mirror {source}"
    _download_or_explain(raw_root, "celeba", mirror, f"set `data_mirror` to a folder holding {CELEBA_PARTITION} "
                         f"and {CELEBA_ZIP} (or the extracted {CELEBA_IMAGES}/).")
    for extra in target.iterdir():  # keep what the mirror path keeps: the images and the partition list
        if extra.name not in (CELEBA_IMAGES, CELEBA_PARTITION):
            extra.unlink() if extra.is_file() else shutil.rmtree(extra)
    return "torchvision download"


# --- folder: any directory of images ---------------------------------------------------------------

def fetch_folder(path: str, raw_root: Path) -> str:
    """Copy the folder's image files (only those), keeping their relative paths, so that DVC versions them."""
    source = Path(path).expanduser()
    if not source.is_dir():
        raise DataError(f"`path` = {path!r} is not a folder. Point `path` in params.yaml at a folder of images.")
    files = image_files(source)
    if not files:
        raise DataError(f"No images under {source} (looked recursively for {', '.join(IMAGE_SUFFIXES)}).")
    target = raw_folder(raw_root, "folder")
    shutil.rmtree(target, ignore_errors=True)
    for relative in files:
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / relative, target / relative)
    return f"folder {source} ({len(files)} image files)"


def fetch(cfg, raw_root: str | Path) -> str:
    """Put the configured data set's verified raw files under raw_root; return where they came from."""
    raw_root = Path(raw_root)
    fetchers: dict[str, Callable[[], str]] = {
        "fashion_mnist": lambda: fetch_idx("fashion_mnist", cfg.mirror, raw_root),
        "mnist": lambda: fetch_idx("mnist", cfg.mirror, raw_root),
        "cifar10": lambda: fetch_cifar10(cfg.mirror, raw_root),
        "celeba": lambda: fetch_celeba(cfg.mirror, raw_root),
        "folder": lambda: fetch_folder(cfg.path, raw_root),
    }
    assert set(fetchers) == set(DATASETS)
    return fetchers[cfg.dataset]()
