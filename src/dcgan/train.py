"""The train stage: the DCGAN training loop of the PyTorch tutorial, tracked in MLflow and DVC.

Data lives on the device as uint8 and batches are index slices of a per-epoch permutation: no
DataLoader, no decoding, no host-to-device copy per step. Logged values accumulate on the device
and are read once every `log_every` steps, so the loop never waits on the host.
"""

from __future__ import annotations

import csv
import time
from dataclasses import asdict
from typing import Iterator

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from dcgan import paths
from dcgan.checkpoint import save_checkpoint
from dcgan.config import Config
from dcgan.data.normalize import denormalize, normalize
from dcgan.errors import ConfigError
from dcgan.figures import display_scale, grid_image, save_image, training_curves
from dcgan.io import load_tensors, progress_bar, save_tensors
from dcgan.models import build_models, draw_noise, generate, model_spec
from dcgan.speed import Speed, resolve_speed
from dcgan.tracking import training_run

LOGGED = ("loss_d", "loss_g", "d_real", "d_fake_before", "d_fake_after")


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


class GANStep:
    """One training step of the tutorial's DCGAN on a uint8 batch, with the fast path's switches.

    Returns the LOGGED values as one tensor on the device, so that the loop never waits on the host.
    """

    def __init__(self, generator, discriminator, cfg: Config, device: torch.device, speed: Speed):
        self.cfg, self.device, self.speed = cfg, device, speed
        memory_format = torch.channels_last if speed.channels_last else torch.contiguous_format
        self.generator = generator.to(device, memory_format=memory_format)
        self.discriminator = discriminator.to(device, memory_format=memory_format)
        torch.backends.cudnn.benchmark = speed.cudnn_benchmark
        adam = dict(betas=(cfg.beta1, 0.999), fused=speed.fused_adam or None)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=cfg.lr_g_effective, **adam)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=cfg.lr_d_effective, **adam)
        # An exponential moving average of G's weights (and BatchNorm statistics) for sampling, if asked.
        self.ema = (AveragedModel(self.generator, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay),
                                  use_buffers=True) if cfg.ema_decay else None)
        # Compiled views share their parameters with the nets above, which grids and checkpoints use.
        self.g_forward = torch.compile(self.generator) if speed.compile else self.generator
        self.d_forward = torch.compile(self.discriminator) if speed.compile else self.discriminator
        self.memory_format = memory_format
        # One-sided label smoothing: only D's target for real images moves (1 - label_smoothing).
        self.real_target_d = torch.full((cfg.batch_size,), 1.0 - cfg.label_smoothing, device=device)
        self.real_target = torch.ones(cfg.batch_size, device=device)
        self.fake_target = torch.zeros(cfg.batch_size, device=device)

    def step(self, real_u8: torch.Tensor) -> torch.Tensor:
        cfg, bce = self.cfg, F.binary_cross_entropy_with_logits
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.speed.amp)
        real = normalize(real_u8).contiguous(memory_format=self.memory_format)
        with autocast:
            fake = self.g_forward(draw_noise(cfg.batch_size, cfg, self.device))
            # (1) D step: maximize log D(x) + log(1 - D(G(z))), real and fake in separate batches.
            d_real_logits = self.d_forward(real).float()
            d_fake_logits = self.d_forward(fake.detach()).float()
        loss_d = bce(d_real_logits, self.real_target_d) + bce(d_fake_logits, self.fake_target)
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()

        # (2) G step: maximize log D(G(z)) (the non-saturating loss), against the updated D.
        with autocast:
            d_fake_after_logits = self.d_forward(fake).float()
        loss_g = bce(d_fake_after_logits, self.real_target)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        if self.ema:
            self.ema.update_parameters(self.generator)
        return torch.stack([loss_d, loss_g, torch.sigmoid(d_real_logits).mean(), torch.sigmoid(d_fake_logits).mean(),
                            torch.sigmoid(d_fake_after_logits).mean()]).detach()


def epoch_batches(n_images: int, batch_size: int, device: torch.device) -> Iterator[torch.Tensor]:
    """Index batches forever: each epoch a new permutation on the device, cut into full batches (the
    last partial one is dropped, as BatchNorm prefers), so every image is seen at most once per epoch."""
    while True:
        order = torch.randperm(n_images, device=device)
        for start in range(0, n_images - batch_size + 1, batch_size):
            yield order[start:start + batch_size]


class RunningMeans:
    """Sums of the logged values on the device; `read` is the only host sync, every `log_every` steps."""

    def __init__(self, size: int, device: torch.device):
        self.sums = torch.zeros(size, device=device)
        self.count = 0

    def add(self, values: torch.Tensor) -> None:
        self.sums += values
        self.count += 1

    def read(self) -> list[float]:
        means = (self.sums / self.count).tolist()
        self.sums.zero_()
        self.count = 0
        return means


def train(cfg: Config) -> None:
    device = pick_device(cfg.device)
    speed = resolve_speed(cfg, device)  # refuses impossible switches before any work
    torch.manual_seed(cfg.seed)

    images = load_tensors(paths.TRAIN_DATA)["images"].to(device)  # uint8, resident for the whole run
    n_images = images.shape[0]
    steps_per_epoch = n_images // cfg.batch_size  # the last partial batch is dropped, as BatchNorm prefers
    if steps_per_epoch == 0:
        raise ConfigError(f"`batch_size` = {cfg.batch_size} is larger than the {n_images} training images.")
    total_steps = cfg.epochs * steps_per_epoch

    generator, discriminator = build_models(cfg)
    gan = GANStep(generator, discriminator, cfg, device, speed)
    print("fast path: " + ", ".join(f"{name} {'on' if on else 'off'}" for name, on in asdict(speed).items()))
    sampled_generator = gan.ema.module if gan.ema else gan.generator  # grids, snapshots and the sample stage
    fixed_noise = draw_noise(64, cfg, device)  # the same z all run long: watch G learn

    paths.TRAIN_GRIDS.mkdir(parents=True, exist_ok=True)
    paths.SNAPSHOTS.mkdir(parents=True, exist_ok=True)
    paths.TRAIN_LOG.parent.mkdir(parents=True, exist_ok=True)

    with training_run(cfg.flat(), str(device), paths.MLFLOW_RUN) as mlflow, \
            open(paths.TRAIN_LOG, "w", newline="") as log_file:
        run_id = mlflow.active_run().info.run_id
        mlflow.log_params(speed.as_params())
        log = csv.writer(log_file)
        log.writerow(["step", "epoch", "images_seen", "seconds", *LOGGED])

        def save_grid(step: int) -> None:
            fake = denormalize(generate(sampled_generator, fixed_noise)).cpu()
            path = paths.TRAIN_GRIDS / f"step_{step:07d}.png"
            save_image(grid_image(fake, scale=display_scale(cfg.image_size)), path)
            mlflow.log_artifact(str(path), "train_grids")

        def snapshot(step: int) -> None:  # G alone, scored later for the quality curve
            save_tensors(paths.SNAPSHOTS / f"step_{step:07d}.pt",
                         {"generator": sampled_generator.state_dict(), "step": step, "images_seen": step * cfg.batch_size,
                          "seconds": time.perf_counter() - started})

        def checkpoint(step: int, epoch: int) -> None:
            save_checkpoint(paths.CHECKPOINT, spec=model_spec(cfg), generator=gan.generator,
                            discriminator=gan.discriminator, opt_g=gan.opt_g, opt_d=gan.opt_d,
                            generator_ema=gan.ema.module if gan.ema else None,
                            step=step, epoch=epoch, mlflow_run_id=run_id)

        running = RunningMeans(len(LOGGED), device)
        batches = epoch_batches(n_images, cfg.batch_size, device)
        started = time.perf_counter()
        progress = progress_bar(range(total_steps), desc="train", unit="step")
        for step in progress:
            epoch = step // steps_per_epoch
            running.add(gan.step(images[next(batches)]))

            done = step + 1
            if done % cfg.log_every == 0 or done == total_steps:
                means = dict(zip(LOGGED, running.read()))  # the one host sync
                seconds = time.perf_counter() - started
                log.writerow([done, epoch, done * cfg.batch_size, round(seconds, 3),
                              *(f"{means[name]:.6f}" for name in LOGGED)])
                log_file.flush()
                mlflow.log_metrics({**means, "epoch": epoch, "images_per_second": done * cfg.batch_size / seconds},
                                   step=done)
                progress.set_postfix(loss_d=f"{means['loss_d']:.3f}", loss_g=f"{means['loss_g']:.3f}",
                                     d_real=f"{means['d_real']:.2f}", refresh=False)
            if done % cfg.sample_every == 0 or done == total_steps:
                save_grid(done)
            if done % cfg.eval_every == 0 or done == total_steps:
                snapshot(done)
            if done % steps_per_epoch == 0:
                checkpoint(done, epoch + 1)
        progress.close()

        training_curves(paths.TRAIN_LOG, paths.TRAIN_CURVES)
        mlflow.log_artifact(str(paths.TRAIN_CURVES), "figures")
        mlflow.log_metric("train_seconds", time.perf_counter() - started)
        print(f"trained {total_steps} steps ({cfg.epochs} epochs of {n_images} images) "
              f"in {time.perf_counter() - started:.0f} s on {device}")
