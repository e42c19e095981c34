import gzip
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from dcgan.config import Config

ROOT = Path(__file__).resolve().parents[1]
DEBIAN_MIRROR = Path("/usr/share/datasets/fashion-mnist")


def project_params() -> dict:
    """The keys of the workspace's params.yaml with their committed values: `dvc exp run` leaves an
    experiment's values in the workspace, and the tests must not change with them (a key that is
    not committed yet takes its workspace value)."""
    workspace = yaml.safe_load((ROOT / "params.yaml").read_text())
    committed = subprocess.run(["git", "show", "HEAD:params.yaml"], cwd=ROOT, capture_output=True, text=True)
    head = yaml.safe_load(committed.stdout) if committed.returncode == 0 else {}
    return {key: head.get(key, value) for key, value in workspace.items()}


def make_config(**overrides) -> Config:
    """The project's params.yaml with overrides, validated like the stages do."""
    return Config(**{**project_params(), **overrides})


def write_idx_images(path: Path, images: np.ndarray, compress: bool = False) -> None:
    """IDX3 as in the MNIST family: magic 2051, count, rows, cols, then uint8 pixels."""
    payload = struct.pack(">IIII", 2051, *images.shape) + images.astype(np.uint8).tobytes()
    (gzip.open if compress else open)(path, "wb").write(payload)


def write_idx_labels(path: Path, labels: np.ndarray, compress: bool = False) -> None:
    payload = struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes()
    (gzip.open if compress else open)(path, "wb").write(payload)


@pytest.fixture
def tiny_mirror(tmp_path):
    """A four-file mirror in the real IDX format (gzipped like Debian's), with random images."""
    rng = np.random.default_rng(0)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    write_idx_images(mirror / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (60, 28, 28)), compress=True)
    write_idx_labels(mirror / "train-labels-idx1-ubyte.gz", np.arange(60) % 10, compress=True)
    write_idx_images(mirror / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (20, 28, 28)), compress=True)
    write_idx_labels(mirror / "t10k-labels-idx1-ubyte.gz", np.arange(20) % 10, compress=True)
    return mirror


requires_fashion_mnist = pytest.mark.skipif(
    not DEBIAN_MIRROR.is_dir(),
    reason="needs Debian's dataset-fashion-mnist (the setup installs it: apt-get install dataset-fashion-mnist)")
