"""The data sets the pipeline knows: what each one is, in one table.

Channels and class names are read from here (never typed twice); `folder` takes its channels from
params.yaml and has no labels, so its classifier scores are skipped with a stated reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    channels: Optional[int]           # None: the `channels` param says (folder)
    class_names: Optional[tuple[str, ...]]  # None: no labels
    default_mirror: Optional[str]     # where `data_mirror: auto` looks first
    has_test_split: bool              # False: evaluation holds out part of the training images
    about: str

    @property
    def labelled(self) -> bool:
        return self.class_names is not None


DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (
    DatasetSpec("fashion_mnist", 1, ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                                     "Sneaker", "Bag", "Ankle boot"),
                "/usr/share/datasets/fashion-mnist", True,
                "Fashion-MNIST, 60k + 10k 28x28 grayscale, 10 classes (IDX files)"),
    DatasetSpec("mnist", 1, tuple(str(digit) for digit in range(10)), None, True,
                "MNIST digits, 60k + 10k 28x28 grayscale, 10 classes (IDX files)"),
    DatasetSpec("cifar10", 3, ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                               "truck"), None, True,
                "CIFAR-10, 50k + 10k 32x32 RGB, 10 classes (the python archive)"),
    DatasetSpec("celeba", 3, None, None, True,
                "CelebA aligned faces, 178x218 RGB JPEGs; train/test from list_eval_partition.txt, no labels used"),
    DatasetSpec("folder", None, None, None, False,
                "any folder of images (PNG, JPEG, BMP, GIF, WebP, TIFF), searched recursively; no labels"),
)}
