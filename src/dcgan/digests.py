"""Digests of files: the one helper every module hashes a file with (checksums of downloads, the
training data in a run's identity, the digest DVC records for MLflow's dataset column)."""

from __future__ import annotations

import hashlib
from pathlib import Path

BLOCK = 1 << 20


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """The hex digest of a file, read in 1 MiB blocks so a data set never sits in memory whole.
    Chunked reads, not hashlib.file_digest: that helper is Python 3.11+, and this runs on 3.10."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_of(path: str | Path) -> str:
    return file_digest(path, "sha256")


def md5_of(path: str | Path) -> str:
    return file_digest(path, "md5")
