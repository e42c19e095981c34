"""The sample stage: draw images from the trained G for evaluation, and the figures people look at."""

from __future__ import annotations

import torch

from dcgan import paths
from dcgan.checkpoint import load_checkpoint
from dcgan.config import Config
from dcgan.data.normalize import denormalize
from dcgan.figures import display_scale, grid_image, progress_gif, real_vs_fake, save_image
from dcgan.io import load_tensors, save_tensors
from dcgan.models import LatentToImage, build_generator, draw_noise, generate, model_spec
from dcgan.device import pick_device
from dcgan.errors import CheckpointError

BATCH = 500


def last_generator(cfg: Config, device: torch.device) -> tuple[torch.nn.Module, int]:
    """The G of the training's last step (the moving average of its weights when training kept one,
    ema_decay > 0), and that step."""
    checkpoint = load_checkpoint(paths.CHECKPOINT, model_spec(cfg))
    generator = build_generator(cfg)
    generator.load_state_dict(checkpoint["generator_ema"] or checkpoint["generator"])
    return generator.to(device).eval(), checkpoint["step"]


def kept_generator(cfg: Config, device: torch.device) -> tuple[torch.nn.Module, int]:
    """The G the run keeps (the select_g stage's choice, keep_g), and the training step of its snapshot."""
    kept = load_tensors(paths.GENERATOR)
    generator = build_generator(cfg)
    try:
        generator.load_state_dict(kept["generator"])
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{paths.GENERATOR} does not hold a G for these params ({str(exc).splitlines()[0]}). "
                              "Run the stages before sample again: dvc repro select_g") from None
    return generator.to(device).eval(), kept["step"]


def served_generator(cfg: Config) -> tuple[torch.nn.Module, torch.Tensor, dict]:
    """The kept G as the run's MLflow model (latent vectors [N, nz] in, images in [-1, 1] out, on the
    CPU), four latent vectors for its input example, and what a user of the model needs to know."""
    generator, _ = kept_generator(cfg, torch.device("cpu"))
    latents = draw_noise(4, cfg, rng=torch.Generator().manual_seed(cfg.seed)).reshape(4, cfg.nz)
    metadata = {"latent": cfg.noise, "nz": cfg.nz, "image_size": cfg.image_size, "channels": cfg.nc,
                "output_range": [-1, 1], "to_uint8": "round((x + 1) * 127.5)"}
    return LatentToImage(generator), latents, metadata


def generate_images(generator: torch.nn.Module, count: int, cfg: Config, noise_rng: torch.Generator,
                    device: torch.device) -> torch.Tensor:
    """`count` uint8 images from G in batches of BATCH (with `sample_bn_mode: train`, the batch is what
    BatchNorm normalizes over), with noise drawn on the CPU so that any device gives the same z."""
    chunks = []
    for start in range(0, count, BATCH):
        noise = draw_noise(min(BATCH, count - start), cfg, rng=noise_rng).to(device)
        chunks.append(denormalize(generate(generator, noise, cfg.sample_bn_mode)).cpu())
    return torch.cat(chunks)


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Straight-line interpolation: right for uniform latents, which fill a cube."""
    return torch.stack([(1 - s) * a + s * b for s in t])


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation: stays where Gaussian latents live, unlike a straight line (White, 2016)."""
    a_flat, b_flat = a.flatten(), b.flatten()
    omega = torch.arccos((a_flat / a_flat.norm()).dot(b_flat / b_flat.norm()).clamp(-1, 1))
    if omega.abs() < 1e-6:
        return lerp(a, b, t)
    return torch.stack([(torch.sin((1 - s) * omega) * a + torch.sin(s * omega) * b) / torch.sin(omega)
                        for s in t])


def sample(cfg: Config) -> int:
    """Samples and figures of the G the run keeps; returns the training step of its snapshot."""
    device = pick_device(cfg.device)
    generator, trained_steps = kept_generator(cfg, device)
    noise_rng = torch.Generator(device="cpu").manual_seed(cfg.seed + 1)  # independent of training's RNG

    samples = generate_images(generator, cfg.n_samples, cfg, noise_rng, device)
    save_tensors(paths.SAMPLES, {"images": samples})  # uint8, like the real data it is compared with

    out = paths.SAMPLE_FIGURES
    scale = display_scale(cfg.image_size)
    save_image(grid_image(samples[:64], scale=scale), out / "grid.png")
    real = load_tensors(paths.TRAIN_DATA)["images"]
    pick = torch.randperm(real.shape[0], generator=torch.Generator().manual_seed(cfg.seed))[:64]
    real_vs_fake(real[pick], samples[:64], out / "real_vs_fake.png", real_title=f"Real ({cfg.dataset})")

    ends = draw_noise(16, cfg, rng=noise_rng)
    steps = torch.linspace(0, 1, 10)
    between = slerp if cfg.noise == "normal" else lerp
    path_noise = torch.cat([between(ends[2 * row], ends[2 * row + 1], steps) for row in range(8)]).to(device)
    interpolation = denormalize(generate(generator, path_noise, cfg.sample_bn_mode)).cpu()
    save_image(grid_image(interpolation, nrow=len(steps), scale=scale), out / "interpolation.png")

    grids = sorted(paths.TRAIN_GRIDS.glob("step_*.png"))
    progress_gif(grids, out / "progress.gif")
    print(f"{cfg.n_samples} samples -> {paths.SAMPLES}; figures -> {out}/")
    return trained_steps
