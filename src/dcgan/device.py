"""Where a stage runs: the `device` param, checked against what PyTorch sees."""

from __future__ import annotations

import torch

from dcgan.errors import ConfigError


def pick_device(requested: str) -> torch.device:
    """`auto` picks CUDA, then MPS, then the CPU, and says which."""
    if requested == "auto":
        if torch.cuda.is_available():
            requested = "cuda"
        elif torch.backends.mps.is_available():
            requested = "mps"
        else:
            requested = "cpu"
        print(f"device: auto -> {requested}")
    elif requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("`device` = 'cuda' but PyTorch sees no CUDA device. Use `device: auto` or `cpu`.")
    elif requested == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("`device` = 'mps' but PyTorch sees no MPS device. Use `device: auto` or `cpu`.")
    return torch.device(requested)
