"""Scores over training: each G snapshot that train kept, scored against the validation images.

Answers "when did it stop improving" and "how long to reach quality X", and the select_g stage picks
the run's G from it. Each snapshot is scored on `curve_samples` samples (fewer than the final
evaluation, so the curve's FD sits a little higher than the final one: FD is biased by the sample
count); points on one curve compare. Without a domain classifier, only the pixel score is on it.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from dcgan import paths
from dcgan.config import Config
from dcgan.data.preprocess import resize
from dcgan.evaluate.classifier import Classifier, predict
from dcgan.evaluate.distances import frechet_distance, kernel_distance
from dcgan.evaluate.manifold import manifold_scores
from dcgan.evaluate.pixels import intensity_emd, intensity_histograms
from dcgan.io import load_tensors
from dcgan.models import build_generator
from dcgan.sample import generate_images


def quality_curve(cfg: Config, classifier: Optional[Classifier], reference_features: Optional[np.ndarray],
                  reference_radii: Optional[tuple], reference_images: torch.Tensor) -> list[dict]:
    """One row per snapshot: the classifier's scores (with a classifier) and pixel_intensity_emd of its
    samples against the reference images (uint8 at eval_image_size; their features and k-NN radii)."""
    rows = []
    generator = build_generator(cfg)
    reference_histograms = intensity_histograms(reference_images)
    for snapshot_file in sorted(paths.SNAPSHOTS.glob("step_*.pt")):
        snapshot = load_tensors(snapshot_file)
        generator.load_state_dict(snapshot["generator"])
        noise_rng = torch.Generator().manual_seed(cfg.seed + 2)  # the same z for every snapshot
        images = generate_images(generator, cfg.curve_samples, cfg, noise_rng, torch.device("cpu"))
        row = {"step": snapshot["step"], "images_seen": snapshot["images_seen"], "seconds": round(snapshot["seconds"], 2),
               "pixel_intensity_emd": intensity_emd(intensity_histograms(resize(images, cfg.eval_image_size)),
                                                    reference_histograms)}
        if classifier is not None:
            features, _ = predict(classifier, images, cfg.eval_image_size)
            manifold = manifold_scores(reference_features, features, bootstrap=1, seed=cfg.eval_seed,
                                       radii=reference_radii)
            row.update({
                "fd_classifier": frechet_distance(features, reference_features),
                "kid_classifier": kernel_distance(features, reference_features, cfg.kid_subset_size, 10,
                                                  cfg.eval_seed)[0],
                **{f"{name}_classifier": manifold[name] for name in ("precision", "recall", "density", "coverage")},
            })
        rows.append(row)
    return rows
