"""The download stage: get the raw data set files, verified, into the DVC-tracked raw folder.

Sources, in order: a local mirror folder (default: where Debian's `dataset-fashion-mnist` package
puts it), then torchvision's download. Files are verified by the sha256 of their *decompressed*
content, because Debian recompresses the .gz files (their own checksums then differ from upstream,
and torchvision refuses them). Both sources end in the same bytes, so DVC sees the same output.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

from dcgan.errors import DataError
from dcgan.io import atomic_path

# sha256 of the decompressed upstream Fashion-MNIST IDX files (zalandoresearch/fashion-mnist).
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}


def raw_folder(raw_root: Path) -> Path:
    """Where the files go: torchvision's layout, so its FashionMNIST class reads them directly."""
    return Path(raw_root) / "FashionMNIST" / "raw"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _checksum_error(name: str, source: str, actual: str, expected: str) -> DataError:
    return DataError(f"{name} from {source} does not match the known Fashion-MNIST checksum "
                     f"(sha256 {actual}, expected {expected}). The file is corrupt, truncated or another "
                     "data set; it was not used. Replace it with a good copy and run again.")


def _copy_verified(source: Path, target: Path, expected_sha256: str) -> None:
    """Decompress (if .gz) `source` to `target`; the file appears only if its checksum matches."""
    opener = gzip.open if source.suffix == ".gz" else open
    with atomic_path(target) as tmp:
        try:
            with opener(source, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except (OSError, EOFError) as exc:  # gzip raises these for truncated or garbled files
            raise DataError(f"{source} cannot be read ({exc}). The mirror file is damaged: reinstall it "
                            "(apt-get install --reinstall dataset-fashion-mnist) or point `data_mirror` "
                            "in params.yaml at a good copy.") from None
        actual = sha256_of(tmp)
        if actual != expected_sha256:
            raise _checksum_error(target.name, f"the mirror {source.parent}", actual, expected_sha256)


def verify(folder: Path, expected: dict[str, str], source: str) -> None:
    """Check files already in place; a bad one is deleted so that it can never be used."""
    for name, sha in expected.items():
        actual = sha256_of(folder / name)
        if actual != sha:
            (folder / name).unlink()
            raise _checksum_error(name, source, actual, sha)


def _mirror_files(mirror: Path, names: list[str]) -> dict[str, Path] | None:
    """The mirror's file for each name (plain or .gz), or None if the mirror lacks any of them."""
    found = {}
    for name in names:
        candidates = [mirror / name, mirror / f"{name}.gz"]
        existing = [c for c in candidates if c.is_file()]
        if not existing:
            return None
        found[name] = existing[0]
    return found


def _download_with_torchvision(raw_root: Path) -> None:
    from torchvision.datasets import FashionMNIST

    FashionMNIST(root=str(raw_root), train=True, download=True)
    FashionMNIST(root=str(raw_root), train=False, download=True)


def fetch_fashion_mnist(mirror: str | Path, raw_root: str | Path) -> str:
    """Put the four verified, decompressed IDX files under raw_root; return where they came from."""
    raw_root, mirror = Path(raw_root), Path(mirror)
    target = raw_folder(raw_root)
    target.mkdir(parents=True, exist_ok=True)
    names = list(FASHION_MNIST_SHA256)

    files = _mirror_files(mirror, names) if mirror.is_dir() else None
    if files is not None:
        for name, source in files.items():
            _copy_verified(source, target / name, FASHION_MNIST_SHA256[name])
        return f"mirror {mirror}"

    try:
        _download_with_torchvision(raw_root)
    except Exception as exc:  # urllib, socket and torchvision's own errors all mean "could not download"
        raise DataError(
            f"Fashion-MNIST is not available: no complete mirror at {mirror}, and the download failed "
            f"({type(exc).__name__}: {exc}).\nTwo ways to fix it:\n"
            "  1. Offline: install the Debian package (as root: apt-get update && apt-get install "
            "dataset-fashion-mnist), or set `data_mirror` in params.yaml to a folder holding the four "
            "IDX files (plain or .gz).\n"
            "  2. Online: connect this machine to the internet and run again; torchvision downloads the files."
        ) from None
    verify(target, FASHION_MNIST_SHA256, "the torchvision download")
    for leftover in target.glob("*.gz"):  # keep the output identical to the mirror path's
        leftover.unlink()
    return "torchvision download"
