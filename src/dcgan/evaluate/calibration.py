"""Calibration: what each score says about image sets whose quality is known.

Run after the pipeline (it uses the trained classifier and the prepared evaluation data):

    python -m dcgan.evaluate.calibration              # the domain classifier's space
    python -m dcgan.evaluate.calibration --inception --n 1000   # the Inception space (slow on a CPU)

and it prints a markdown table: real images (the floor), this run's samples, and known failure
modes (half the classes, one image repeated, blur, a grey background, an untrained G, noise), scored exactly like
the evaluate stage scores a run.
"""

from __future__ import annotations

import argparse

import torch
from torchvision.transforms.v2.functional import gaussian_blur

from dcgan import paths
from dcgan.config import Config, load_config
from dcgan.data.normalize import denormalize
from dcgan.data.preprocess import resize
from dcgan.evaluate.classes import class_shares
from dcgan.evaluate.classifier import load_classifier, predict
from dcgan.evaluate.inception import inception_features, load_inception
from dcgan.evaluate.pixels import pixel_scores
from dcgan.evaluate.scores import classifier_scores, distance_scores
from dcgan.io import load_tensors
from dcgan.metric_keys import CALIBRATED_SCORES
from dcgan.models import build_models
from dcgan.device import pick_device

GREY_LEVEL = 16  # the background of the first 64-px default runs (docs/studies.md)


def reference_sets(images: torch.Tensor, labels: torch.Tensor, cfg: Config, n: int) -> dict[str, torch.Tensor]:
    """Image sets of known quality, n each, at the resolution of `images`."""
    generator = torch.Generator().manual_seed(cfg.seed)
    pick = torch.randperm(len(images), generator=generator)[:n]
    real = images[pick]
    half = images[labels < labels.max() // 2 + 1]
    torch.manual_seed(cfg.seed)
    untrained, _ = build_models(cfg.model_copy(update={"image_size": images.shape[-1]}))
    with torch.no_grad():
        untrained_images = torch.cat([denormalize(untrained.eval()(torch.randn(min(500, n - i), cfg.nz, 1, 1)))
                                      for i in range(0, n, 500)])
    return {
        "real (the floor)": real,
        "half of the classes": half[torch.randperm(len(half), generator=generator)[:n]],
        "one image repeated": real[:1].expand(n, -1, -1, -1).contiguous(),
        "blurred real (Gaussian, sigma 2)": gaussian_blur(real, kernel_size=[7, 7], sigma=[2.0, 2.0]),
        f"grey background (dark pixels lifted to {GREY_LEVEL})": real.clamp(min=GREY_LEVEL),
        "untrained G": untrained_images,
        "uniform noise": torch.randint(0, 256, real.shape, dtype=torch.uint8, generator=generator),
    }


def print_row(name: str, scores: dict, columns: tuple[str, ...]) -> None:
    cells = [f"{scores[c]:.3g} ± {scores[c + '_std']:.2g}" if c + "_std" in scores else f"{scores[c]:.3g}"
             for c in columns]
    print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inception", action="store_true",
                        help="score in the Inception space instead (slow on a CPU: about 10 images/s)")
    parser.add_argument("--n", type=int, default=None, help="images per set (default: n_samples)")
    args = parser.parse_args()
    cfg = load_config()
    n = args.n or cfg.n_samples
    size = cfg.eval_image_size
    train, test = load_tensors(paths.EVAL_TRAIN_DATA), load_tensors(paths.EVAL_TEST_DATA)
    sets = reference_sets(train["images"], train["labels"], cfg, n)
    if paths.SAMPLES.is_file():
        sets = {"this run's samples": resize(load_tensors(paths.SAMPLES)["images"][:n], size), **sets}
    test_images = test["images"][:n]

    if args.inception:
        device = pick_device(cfg.device)
        model = load_inception(device)
        test_features = inception_features(model, test_images, device)
        # The classifier's distance and manifold scores have Inception twins; the pixel score needs no features.
        columns = (*(c.replace("classifier", "inception").replace("fd_", "fid_") for c in CALIBRATED_SCORES[:6]),
                   CALIBRATED_SCORES[-1])
    else:
        classifier = load_classifier(cfg)
        test_features, test_probabilities = predict(classifier, test_images, size)
        test_shares = class_shares(test_probabilities)
        columns = CALIBRATED_SCORES

    print(f"| image set ({n} images vs {len(test_images)} test images) | " + " | ".join(columns) + " |")
    print("| --- " * (len(columns) + 1) + "|")
    for name, images in sets.items():
        if args.inception:
            scores = distance_scores(inception_features(model, images, device), test_features, "inception", cfg)
        else:
            features, probabilities = predict(classifier, images, size)
            scores = classifier_scores(features, probabilities, test_features, test_shares, cfg)
        print_row(name, {**scores, **pixel_scores(images, test_images, cfg.eval_seed)}, columns)


if __name__ == "__main__":
    main()
