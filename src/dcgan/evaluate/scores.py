"""The evaluate stage: every score of the samples, beside the real-vs-real floor, in each feature space."""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from dcgan import paths
from dcgan.config import Config
from dcgan.data.datasets import DATASETS
from dcgan.data.preprocess import resize
from dcgan.evaluate.classes import class_scores, class_shares
from dcgan.evaluate.classifier import load_classifier, predict
from dcgan.evaluate.copies import copy_scores, figure_rows, pixel_vectors, pool_indices
from dcgan.evaluate.distances import frechet_distance, frechet_distance_std, kernel_distance
from dcgan.evaluate.inception import inception_features, load_inception
from dcgan.evaluate.manifold import manifold_scores, real_radii
from dcgan.evaluate.pixels import pixel_scores
from dcgan.evaluate.real_images import training_pool
from dcgan.io import load_tensors, progress_bar
from dcgan.metric_keys import FLOOR, FLOOR_SAMPLE_SPREAD, NOTES, SCORES, SETUP, SAMPLE_SPREAD
from dcgan.device import pick_device


def distance_scores(features: np.ndarray, test_features: np.ndarray, space: str, cfg: Config,
                    test_radii: tuple | None = None) -> dict:
    """Distances and manifold scores of one image set against the real test split in one feature space
    (`test_radii`: the test set's k-NN balls, computed once for every set scored against it)."""
    kid_mean, kid_std = kernel_distance(features, test_features, cfg.kid_subset_size, cfg.kid_subsets, cfg.eval_seed)
    manifold = manifold_scores(test_features, features, seed=cfg.eval_seed, radii=test_radii)
    fd = "fid_inception" if space == "inception" else f"fd_{space}"  # the standard name where it is the standard
    scores = {
        fd: frechet_distance(features, test_features),
        f"{fd}_std": frechet_distance_std(features, test_features, seed=cfg.eval_seed),
        f"kid_{space}": kid_mean,
        f"kid_{space}_std": kid_std,
    }
    for name in ("precision", "recall", "density", "coverage"):
        scores[f"{name}_{space}"] = manifold[name]
        scores[f"{name}_{space}_std"] = manifold[f"{name}_std"]
    return scores


def classifier_scores(features: np.ndarray, probabilities: np.ndarray, test_features: np.ndarray,
                      test_shares: np.ndarray, cfg: Config, test_radii: tuple | None = None) -> dict:
    """Every score in the domain classifier's space, named as in reports/metrics.json."""
    return {**distance_scores(features, test_features, "classifier", cfg, test_radii),
            **class_scores(probabilities, test_shares)}


def inception_wanted(cfg: Config) -> tuple[bool, str]:
    """Whether to compute the Inception scores, and why (about 50 min on a 2-core CPU, ~10 images/s)."""
    if cfg.inception == "auto":
        on = torch.cuda.is_available()
        return on, "on: a CUDA device is present (inception: auto)" if on else \
            "off: no CUDA device (inception: auto); set `inception: on` to compute them on the CPU"
    return cfg.inception == "on", f"{cfg.inception}: set in params.yaml"


FLOOR_PATH = "real training images at {image_size} px (data/processed/train.pt, the images G learns from), {then}"


def floor_path(cfg: Config) -> str:
    """What metrics.json's notes.floor_path says: the resize the floor's real images took."""
    then = (f"resized to {cfg.eval_image_size} px as the samples are" if cfg.image_size != cfg.eval_image_size
            else "the samples' size and eval_image_size both")
    return FLOOR_PATH.format(image_size=cfg.image_size, then=then)


def floor_images(cfg: Config, count: int, pool: torch.Tensor | None = None) -> torch.Tensor:
    """The real images of the floor: `count` of the training images G learned from, at `image_size`, so that
    they reach `eval_image_size` by the samples' path. Real images taken straight from the raw size would
    skip the resize the samples go through, and set a floor lower than a perfect G could reach (on
    Fashion-MNIST at 64 px, fd_classifier 0.24 instead of about 5). As many as there are samples: FD
    depends on N."""
    pool = training_pool(cfg) if pool is None else pool
    pick = torch.randperm(len(pool), generator=torch.Generator().manual_seed(cfg.eval_seed))[:count]
    return pool[pick]


def _sections(generated: dict, floor: dict) -> dict[str, dict]:
    """Flat score names (fd_classifier, fd_classifier_std, ...) -> the sections of dcgan.metrics."""
    def split(scores: dict, spread: bool) -> dict:
        return {name.removesuffix("_std"): value for name, value in scores.items() if name.endswith("_std") == spread}

    return {SCORES: split(generated, False), SAMPLE_SPREAD: split(generated, True), FLOOR: split(floor, False),
            FLOOR_SAMPLE_SPREAD: split(floor, True)}


def evaluate(cfg: Config) -> tuple[dict[str, dict], Optional[dict], dict]:
    """Scores of the generated samples against the real test split, beside the real-vs-real floor;
    the class shares of generated, real-train and real-test images (for the histogram); and samples
    beside their nearest training images (for that figure). The metrics come in the sections of
    dcgan.metrics. Without labels there is no domain classifier: its scores and the shares are
    skipped, the metrics say why, and the copy search runs in pixels."""
    samples = load_tensors(paths.SAMPLES)["images"]
    test = load_tensors(paths.EVAL_TEST_DATA)
    pool = training_pool(cfg)
    real = floor_images(cfg, len(samples), pool)
    generated, floor, notes, counts = {}, {}, {}, {}
    notes["floor_path"] = floor_path(cfg)
    counts.update({"floor_image_size": cfg.image_size, "eval_image_size": cfg.eval_image_size})
    shares = None

    # At eval_image_size, as the test images are: both sets by the same resize.
    samples_at_eval, real_at_eval = resize(samples, cfg.eval_image_size), resize(real, cfg.eval_image_size)
    # In pixels, every data set.
    generated.update(pixel_scores(samples_at_eval, test["images"], cfg.eval_seed))
    floor.update(pixel_scores(real_at_eval, test["images"], cfg.eval_seed))

    if DATASETS[cfg.dataset].labelled:
        model = load_classifier(cfg)
        size = cfg.eval_image_size
        generated_features, generated_probabilities = predict(model, samples, size)
        test_features, test_probabilities = predict(model, test["images"], size)
        real_features, real_probabilities = predict(model, real, size)
        test_shares = class_shares(test_probabilities)
        radii = real_radii(test_features)
        generated.update(classifier_scores(generated_features, generated_probabilities, test_features, test_shares,
                                           cfg, radii))
        floor.update(classifier_scores(real_features, real_probabilities, test_features, test_shares, cfg, radii))
        shares = {"generated": class_shares(generated_probabilities).tolist(),
                  "real_train": class_shares(real_probabilities).tolist(), "real_test": test_shares.tolist()}
        notes["classifier_scores"] = f"on: {cfg.dataset} has labels"
        counts["max_classes"] = len(test_shares)
    else:
        notes["classifier_scores"] = (f"skipped: {cfg.dataset} has no labels, so there is no domain classifier "
                                      "(no fd/kid/precision/recall_classifier or class statistics); "
                                      "the Inception scores apply")

    # Copies: each sample's nearest training images, against how near unseen real (test) images come.
    pool_size, searched = len(pool), pool_indices(len(pool), cfg.eval_seed)
    pool = resize(pool[torch.as_tensor(searched)], cfg.eval_image_size)
    if DATASETS[cfg.dataset].labelled:
        space, pool_features = "classifier", predict(model, pool, cfg.eval_image_size)[0]
        sample_space, test_space = generated_features, test_features
    else:
        space, pool_features = "pixels", pixel_vectors(pool)
        sample_space, test_space = pixel_vectors(samples_at_eval), pixel_vectors(test["images"])
    copy, copy_floor, details = copy_scores(sample_space, test_space, pool_features, space, cfg.eval_seed)
    generated.update(copy)
    floor.update(copy_floor)
    shown, neighbours = figure_rows(details, cfg.eval_seed)
    nearest = {"samples": samples_at_eval[torch.as_tensor(shown)],
               "training": pool[torch.as_tensor(neighbours)], "space": space}
    notes["near_copies"] = f"searched in {space} space: {len(searched)} of the {pool_size} training images"

    use_inception, notes["inception"] = inception_wanted(cfg)
    print(f"Inception scores: {notes['inception']}")
    if use_inception:
        device = pick_device(cfg.device)
        inception = load_inception(device)
        sets = {"generated": samples_at_eval, "test": test["images"], "real": real_at_eval}
        with progress_bar(total=sum(map(len, sets.values())), desc="inception", unit="img") as progress:
            features = {name: inception_features(inception, images, device, progress=progress)
                        for name, images in sets.items()}
        radii = real_radii(features["test"])
        generated.update(distance_scores(features["generated"], features["test"], "inception", cfg, radii))
        floor.update(distance_scores(features["real"], features["test"], "inception", cfg, radii))
    counts.update({"n_generated": len(samples), "n_test": len(test["images"]), "n_floor": len(real),
                   "n_copy_search": len(searched)})
    return {**_sections(generated, floor), SETUP: counts, NOTES: notes}, shares, nearest
