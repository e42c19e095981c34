"""Atomic file writes: a crash or a full disk leaves the previous file intact, never half of a new one."""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is fsynced and renamed over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    # mkstemp's file is private (0600); the result gets the mode of any new file, so that a shared
    # project's colleagues can read the reports and models as they could with a plain open().
    os.fchmod(fd, _new_file_mode())
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _new_file_mode() -> int:
    umask = os.umask(0o077)  # the only way to read it: set and restore at once (0o077 while in between)
    os.umask(umask)
    return 0o666 & ~umask


def progress_bar(iterable=None, **kwargs):
    """tqdm with an ETA; refreshed twice a second on a terminal, every 30 s in logs (CI, DVC queue)."""
    from tqdm import tqdm

    return tqdm(iterable, dynamic_ncols=True, mininterval=0.5 if sys.stderr.isatty() else 30, **kwargs)


def write_json(path: str | Path, data: object) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_csv(path: str | Path, rows: list[dict], columns: tuple[str, ...]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def save_tensors(path: str | Path, data: dict) -> None:
    """Through a file object: given a path, torch.save names the archive's records after the file, here
    the random temporary name, so the same tensors gave other bytes each time, and DVC saw a changed
    output (and re-ran every stage after it) where nothing had changed."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(data, f)


def load_tensors(path: str | Path) -> dict:
    """Load a file written by save_tensors; weights_only so that a crafted pickle cannot run code."""
    return torch.load(path, map_location="cpu", weights_only=True)
