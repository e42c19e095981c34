"""Peak memory and speed of preprocessing a folder of CelebA-sized JPEGs.

Image files are decoded in DataLoader workers and written chunk by chunk into one preallocated
uint8 tensor, so memory should follow the size of the output, not of the decoded originals. This
makes a folder of N synthetic 178x218 RGB JPEGs (CelebA's aligned size), preprocesses it as the
preprocess stage does, and prints the figures.

    .venv/bin/python benchmarks/preprocess_memory.py [--images 20000] [--size 64]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dcgan.data.preprocess import prepare_split

MB = 1024 * 1024


def make_folder(root: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:218, :178]
    folder = root / "folder"
    for i in range(count):
        (folder / f"{i // 1000:03d}").mkdir(parents=True, exist_ok=True)
        base = (np.sin(xx / rng.uniform(5, 30)) + np.cos(yy / rng.uniform(5, 30))) * 60 + 128
        image = np.clip(base[..., None] + rng.normal(0, 20, (218, 178, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(folder / f"{i // 1000:03d}" / f"{i:06d}.jpg", quality=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        make_folder(root, args.images)
        print(f"made {args.images} JPEGs of 178x218 in {time.perf_counter() - started:.0f} s")
        before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        split = prepare_split(root, train=True, size=args.size, dataset="folder", channels=3)
        seconds = time.perf_counter() - started
        peak_main = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        peak_worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    output = split["images"].numel() / MB
    originals = args.images * 3 * 218 * 178 / MB
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"images: {args.images} -> {tuple(split['images'].shape)} in {seconds:.1f} s "
          f"({args.images / seconds:.0f} images/s)")
    print(f"output tensor: {output:.0f} MB; all originals decoded would be: {originals:.0f} MB")
    print(f"peak RSS, main process: {peak_main:.0f} MB (before preprocessing: {before_kb / 1024:.0f} MB); "
          f"largest decode worker: {peak_worker:.0f} MB")


if __name__ == "__main__":
    main()
