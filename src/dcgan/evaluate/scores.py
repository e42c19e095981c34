"""The classifier and evaluate stages: train the feature network once, then score samples against it."""

from __future__ import annotations

import numpy as np
import torch

from dcgan import paths
from dcgan.config import Config
from dcgan.errors import CheckpointError
from dcgan.evaluate.classifier import Classifier, predict, train_classifier
from dcgan.evaluate.distances import frechet_distance, kernel_distance
from dcgan.io import load_tensors, save_tensors


def fit_classifier(cfg: Config) -> dict:
    """Train the domain classifier on the real training split; returns its report."""
    train, test = load_tensors(paths.EVAL_TRAIN_DATA), load_tensors(paths.EVAL_TEST_DATA)
    num_classes = int(train["labels"].max()) + 1
    model = train_classifier(train["images"], train["labels"], num_classes, cfg.classifier_epochs, cfg.seed)
    _, probabilities = predict(model, test["images"], cfg.eval_image_size)
    accuracy = float((probabilities.argmax(1) == test["labels"].numpy()).mean())
    save_tensors(paths.CLASSIFIER, {"state_dict": model.state_dict(), "nc": train["images"].shape[1],
                                    "num_classes": num_classes, "image_size": cfg.eval_image_size})
    return {"classifier_test_accuracy": round(accuracy, 4), "train_images": len(train["images"]),
            "test_images": len(test["images"]), "image_size": cfg.eval_image_size,
            "epochs": cfg.classifier_epochs}


def load_classifier(cfg: Config) -> Classifier:
    saved = load_tensors(paths.CLASSIFIER)
    if saved["image_size"] != cfg.eval_image_size:
        raise CheckpointError(f"{paths.CLASSIFIER} works at {saved['image_size']}x{saved['image_size']} but "
                              f"`eval_image_size` is {cfg.eval_image_size}. Re-train it: dvc repro classifier")
    model = Classifier(saved["nc"], saved["num_classes"], saved["image_size"])
    model.load_state_dict(saved["state_dict"])
    return model.eval()


def distance_scores(features: np.ndarray, reference: np.ndarray, cfg: Config, suffix: str = "") -> dict:
    kid_mean, kid_std = kernel_distance(features, reference, cfg.kid_subset_size, cfg.kid_subsets, cfg.seed)
    return {f"fd_classifier{suffix}": frechet_distance(features, reference),
            f"kid_classifier{suffix}": kid_mean, f"kid_classifier{suffix}_std": kid_std}


def evaluate(cfg: Config) -> dict:
    """Scores of the generated samples against the real test split, beside the real-vs-real floor."""
    model = load_classifier(cfg)
    samples = load_tensors(paths.SAMPLES)["images"]
    test = load_tensors(paths.EVAL_TEST_DATA)["images"]
    train = load_tensors(paths.EVAL_TRAIN_DATA)["images"]
    # The floor compares as many real training images as there are samples, since FD depends on N.
    pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(cfg.seed))[:len(samples)]

    size = cfg.eval_image_size
    generated_features, _ = predict(model, samples, size)
    test_features, _ = predict(model, test, size)
    real_features, _ = predict(model, train[pick], size)
    return {
        **distance_scores(generated_features, test_features, cfg),
        **distance_scores(real_features, test_features, cfg, suffix="_floor"),
        "n_generated": len(samples),
        "n_test": len(test),
        "n_floor": len(pick),
    }
