"""Training checkpoints: written atomically, loaded without unpickling code, checked against params."""

from __future__ import annotations

from pathlib import Path

import torch

from dcgan.errors import CheckpointError
from dcgan.io import load_tensors, save_tensors

FORMAT_VERSION = 1


def save_checkpoint(path: str | Path, *, spec: dict, generator, discriminator, opt_g, opt_d,
                    step: int, epoch: int, mlflow_run_id: str | None, generator_ema=None) -> None:
    """`generator_ema`: the moving average of G's weights (ema_decay > 0), which sampling uses."""
    save_tensors(path, {
        "format_version": FORMAT_VERSION,
        "model_spec": spec,
        "generator": generator.state_dict(),
        "discriminator": discriminator.state_dict(),
        "generator_ema": generator_ema.state_dict() if generator_ema is not None else None,
        "opt_g": opt_g.state_dict(),
        "opt_d": opt_d.state_dict(),
        "step": step,
        "epoch": epoch,
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "mlflow_run_id": mlflow_run_id,
    })


def load_checkpoint(path: str | Path, expected_spec: dict) -> dict:
    """Load a checkpoint and make sure it was made for the model that params.yaml describes."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No checkpoint at {path}. Train first: dvc repro train")
    try:
        checkpoint = load_tensors(path)
    except Exception as exc:  # truncated file, foreign pickle refused by weights_only, ...
        raise CheckpointError(f"{path} cannot be loaded safely ({type(exc).__name__}: {exc}). It is corrupt "
                              "or not a checkpoint of this pipeline; re-train with: dvc repro -f train") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} is not a checkpoint of this pipeline (format {FORMAT_VERSION}). "
                              "Re-train with: dvc repro -f train")
    found = checkpoint["model_spec"]
    if found != expected_spec:
        differences = ", ".join(f"{key}: checkpoint {found.get(key)!r} vs params {expected_spec.get(key)!r}"
                                for key in sorted(set(found) | set(expected_spec))
                                if found.get(key) != expected_spec.get(key))
        raise CheckpointError(f"{path} was made for another model ({differences}). Either restore the params "
                              "it was trained with, or re-train for the current ones: dvc repro train")
    return checkpoint
