"""The domain feature network: a small CNN trained on the real training images and their labels.

Its penultimate layer is the feature space for fd_classifier and kid_classifier. It sees every
image at `eval_image_size`, whatever size the GAN was trained at, so scores stay comparable across
image sizes and the classifier is trained once per data set.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dcgan import paths
from dcgan.config import Config
from dcgan.data.datasets import DATASETS
from dcgan.data.normalize import normalize
from dcgan.data.preprocess import resize
from dcgan.errors import CheckpointError
from dcgan.io import load_tensors, progress_bar, save_tensors

FEATURES = 128


class Classifier(nn.Module):
    def __init__(self, nc: int, num_classes: int, image_size: int):
        super().__init__()

        def block(c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, kernel, stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
                    nn.ReLU(True)]

        # A strided first layer keeps it fast on a CPU (about 3,000 training images/s on 2 cores);
        # the flatten keeps where things are, which global pooling would throw away (~90% vs ~80%
        # test accuracy on Fashion-MNIST).
        self.features = nn.Sequential(
            *block(nc, 32, kernel=4, stride=2),
            *block(32, 64), nn.MaxPool2d(2),
            *block(64, 64), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * (image_size // 8) ** 2, FEATURES), nn.ReLU(True),
        )
        self.head = nn.Linear(FEATURES, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def train_classifier(images_u8: torch.Tensor, labels: torch.Tensor, num_classes: int, epochs: int,
                     seed: int, batch_size: int = 128) -> Classifier:
    torch.manual_seed(seed)
    model = Classifier(images_u8.shape[1], num_classes, images_u8.shape[-1])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    steps_per_epoch = len(images_u8) // batch_size
    progress = progress_bar(total=epochs * steps_per_epoch, desc="classifier", unit="step")
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(images_u8))
        for i in range(steps_per_epoch):
            batch = order[i * batch_size:(i + 1) * batch_size]
            loss = F.cross_entropy(model(normalize(images_u8[batch])), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            progress.update()
            if i % 50 == 0:
                progress.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    progress.close()
    return model.eval()


@torch.no_grad()
def predict(model: Classifier, images_u8: torch.Tensor, size: int, batch_size: int = 1000
            ) -> tuple[np.ndarray, np.ndarray]:
    """(features [N, FEATURES], class probabilities [N, classes]) of uint8 images, resized to `size`."""
    model.eval()
    features, probabilities = [], []
    for start in range(0, len(images_u8), batch_size):
        batch = normalize(resize(images_u8[start:start + batch_size], size))
        feature = model.features(batch)
        features.append(feature.double().numpy())
        probabilities.append(torch.softmax(model.head(feature), 1).double().numpy())
    return np.concatenate(features), np.concatenate(probabilities)


def fit_classifier(cfg: Config) -> dict:
    """Train the domain classifier on the real training split; returns its report. A data set
    without labels gets no classifier: the file and the report say so, and evaluate skips its scores."""
    if not DATASETS[cfg.dataset].labelled:
        reason = f"skipped: {cfg.dataset} has no labels"
        save_tensors(paths.CLASSIFIER, {"skipped": reason})
        return {"classifier": reason}
    train, test = load_tensors(paths.EVAL_TRAIN_DATA), load_tensors(paths.EVAL_TEST_DATA)
    num_classes = int(train["labels"].max()) + 1
    model = train_classifier(train["images"], train["labels"], num_classes, cfg.classifier_epochs, cfg.eval_seed)
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
