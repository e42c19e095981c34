"""Checksums and archive extraction that cannot write outside its target folder."""

from __future__ import annotations

import hashlib
import tarfile
import zipfile
from pathlib import Path

from dcgan.errors import DataError


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_of(path: str | Path) -> str:
    return file_digest(path, "sha256")


def md5_of(path: str | Path) -> str:
    return file_digest(path, "md5")


def require_checksum(path: Path, expected: str, what: str, algorithm: str = "md5") -> None:
    """Refuse a file whose checksum is not the known one (truncated download, another file)."""
    actual = file_digest(path, algorithm)
    if actual != expected:
        raise DataError(f"{path} does not match the known checksum of {what} ({algorithm} {actual}, expected "
                        f"{expected}). It is truncated, corrupt or another file; it was not used. Replace it with "
                        "a good copy (or delete it to download again) and run again.")


def safe_extract(archive: Path, target: Path) -> None:
    """Extract a tar or zip archive into `target`. Every member is checked first: one that would land
    outside `target` (absolute path, `..`, a link pointing out) stops it before anything is written."""
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for member in members:
                try:
                    tarfile.data_filter(member, str(root))  # the stdlib's own "safe for data" rules
                except tarfile.FilterError as exc:
                    raise DataError(f"{archive} is unsafe: member {member.name!r} would be written outside "
                                    f"{target} ({exc}). Nothing was extracted.") from None
            tar.extractall(root, members=members, filter="data")
    elif zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                if not (root / name).resolve().is_relative_to(root):
                    raise DataError(f"{archive} is unsafe: member {name!r} would be written outside {target}. "
                                    "Nothing was extracted.")
            zf.extractall(root)
    else:
        raise DataError(f"{archive} is neither a tar nor a zip archive (or it is truncated).")
