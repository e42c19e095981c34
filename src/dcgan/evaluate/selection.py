"""The select_g stage's work: score every G snapshot on validation images, then keep the best G or the last.

A GAN's last G is often not its best: the quality curve can peak mid-way and fall again. Choosing by
the final scores' own test split would pick the reported score by itself, so the snapshots are scored
against validation images: VALIDATION_IMAGES of the training images G learned from (the floor's
pool, at `image_size`, then resized to `eval_image_size` as the samples are), never the test split.
The selection score is fd_classifier where the data set has a domain classifier, else
pixel_intensity_emd. `keep_g: best` (the default) keeps the snapshot that scores best; `last` keeps the
tutorials' choice and records what `best` would pick.
"""

from __future__ import annotations

import torch

from dcgan import paths
from dcgan.config import Config
from dcgan.data.datasets import DATASETS
from dcgan.data.preprocess import resize
from dcgan.evaluate.classifier import load_classifier, predict
from dcgan.evaluate.curve import quality_curve
from dcgan.evaluate.distances import frechet_distance
from dcgan.evaluate.manifold import real_radii
from dcgan.evaluate.pixels import intensity_emd, intensity_histograms
from dcgan.evaluate.real_images import training_pool
from dcgan.io import load_tensors, save_tensors

VALIDATION_IMAGES = 10_000


def selection_score(cfg: Config) -> str:
    return "fd_classifier" if DATASETS[cfg.dataset].labelled else "pixel_intensity_emd"


def best_row(curve: list[dict], score: str) -> dict:
    """The snapshot with the lowest score; on a tie, the later one (it trained longer for the same score)."""
    return min(curve, key=lambda row: (row[score], -row["step"]))


def validation_images(cfg: Config) -> tuple[torch.Tensor, torch.Tensor]:
    """(validation images, the curve floor's real images): disjoint draws from the training pool, at
    eval_image_size, seeded by eval_seed so that every run of a data set shares them."""
    pool = training_pool(cfg)
    order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(cfg.eval_seed + 1))
    count = min(VALIDATION_IMAGES, len(pool) // 2)
    validation, floor = order[:count], order[count:count + min(cfg.curve_samples, len(pool) - count)]
    return resize(pool[validation], cfg.eval_image_size), resize(pool[floor], cfg.eval_image_size)


def select_generator(cfg: Config) -> tuple[dict, list[dict]]:
    """Scores each snapshot against the validation images (the quality curve), keeps the chosen one as
    paths.GENERATOR, and returns what was chosen and the curve's rows."""
    validation, floor_images = validation_images(cfg)
    score = selection_score(cfg)
    if DATASETS[cfg.dataset].labelled:
        classifier = load_classifier(cfg)
        validation_features, _ = predict(classifier, validation, cfg.eval_image_size)
        floor_features, _ = predict(classifier, floor_images, cfg.eval_image_size)
        curve = quality_curve(cfg, classifier, validation_features, real_radii(validation_features), validation)
        curve_floor = frechet_distance(floor_features, validation_features)
    else:
        curve = quality_curve(cfg, None, None, None, validation)
        curve_floor = intensity_emd(intensity_histograms(floor_images), intensity_histograms(validation))
    if not curve:
        raise RuntimeError(f"no G snapshot in {paths.SNAPSHOTS}: the train stage keeps one every eval_every steps "
                           "and at its last step; run `dvc repro train`")
    last, best = curve[-1], best_row(curve, score)
    chosen = best if cfg.keep_g == "best" else last
    snapshot = load_tensors(paths.SNAPSHOTS / f"step_{chosen['step']:07d}.pt")
    save_tensors(paths.GENERATOR, snapshot)
    selection = {"keep_g": cfg.keep_g, "score": score, "chosen_step": chosen["step"],
                 "chosen_validation_score": chosen[score], "last_step": last["step"],
                 "last_validation_score": last[score], "validation_images": len(validation),
                 "curve_floor": curve_floor}
    print(f"G kept: step {chosen['step']} ({cfg.keep_g}), validation {score} {chosen[score]:.4g}; the last step "
          f"{last['step']}: {last[score]:.4g}; the best snapshot: step {best['step']}, {best[score]:.4g} "
          f"({len(validation)} validation images, {len(curve)} snapshots, curve floor {curve_floor:.4g})")
    return selection, curve
