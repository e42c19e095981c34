"""The real training images that evaluation draws from: the floor's, the validation images the select_g
stage scores snapshots on, and the pool the copy search looks in."""

from __future__ import annotations

import torch

from dcgan import paths
from dcgan.config import Config
from dcgan.data.datasets import DATASETS
from dcgan.data.preprocess import held_out_indices
from dcgan.io import load_tensors


def training_pool(cfg: Config) -> torch.Tensor:
    """The training images G learned from, at `image_size`, less any that the evaluation holds out as
    its test set (a data set without a test split): the floor's images and the copy search's pool."""
    pool = load_tensors(paths.TRAIN_DATA)["images"]
    if not DATASETS[cfg.dataset].has_test_split:
        split_size = sum(len(load_tensors(path)["images"]) for path in (paths.EVAL_TRAIN_DATA, paths.EVAL_TEST_DATA))
        keep = torch.ones(split_size, dtype=torch.bool)
        keep[held_out_indices(split_size, cfg.eval_seed)] = False
        # train.pt holds the first max_train_images of the same files, in the same order.
        pool = pool[keep[:len(pool)]]
    return pool
