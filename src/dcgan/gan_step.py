"""One training step of the DCGAN, and what the loop needs around it: the batches of each epoch,
the learning rates' schedule, and the running means of the logged values.

Data lives on the device as uint8 and batches are index slices of a per-epoch permutation: no
DataLoader, no decoding, no host-to-device copy per step. Logged values accumulate on the device
and are read once every `log_every` steps, so the loop never waits on the host.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Iterator

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from dcgan.config import Config
from dcgan.data.normalize import normalize
from dcgan.distributed import World


class GANStep:
    """One training step of the tutorial's DCGAN on a uint8 batch, with the fast path's switches.

    Under torchrun each process steps on its shard of the global batch; DistributedDataParallel
    averages the gradients, so the update is the one of the whole batch (BatchNorm's statistics
    are each process's own). Returns the LOGGED values as one tensor on the device, so that the
    loop never waits on the host.
    """

    def __init__(self, generator, discriminator, cfg: Config, device: torch.device, speed,
                 world: World = World()):
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
        g_net, d_net = self.generator, self.discriminator
        if world.size > 1:
            device_ids = [device.index] if device.type == "cuda" else None
            g_net, d_net = (DistributedDataParallel(net, device_ids=device_ids) for net in (g_net, d_net))
        self.d_net = d_net
        # Compiled views share their parameters with the nets above, which grids and checkpoints use.
        self.g_forward = torch.compile(g_net) if speed.compile else g_net
        self.d_forward = torch.compile(d_net) if speed.compile else d_net
        self.memory_format = memory_format
        local_batch = cfg.batch_size // world.size
        # One-sided label smoothing: only D's target for real images moves (1 - label_smoothing).
        self.real_target_d = torch.full((local_batch,), 1.0 - cfg.label_smoothing, device=device)
        self.real_target = torch.ones(local_batch, device=device)
        self.fake_target = torch.zeros(local_batch, device=device)

    @property
    def sampled_generator(self) -> torch.nn.Module:
        """What grids, snapshots and the sample stage draw from: the moving average of G if on, else G."""
        return self.ema.module if self.ema else self.generator

    def d_local(self):
        """Under DDP, keep D's gradients local for this forward/backward: they are all-reduced once,
        after the fake half of the D step, and never for the G step (which does not use them)."""
        return self.d_net.no_sync() if isinstance(self.d_net, DistributedDataParallel) else nullcontext()

    def step(self, real_u8: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        bce = F.binary_cross_entropy_with_logits
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.speed.amp)
        real = normalize(real_u8).contiguous(memory_format=self.memory_format)
        with autocast:
            fake = self.g_forward(noise)

        # (1) D step: maximize log D(x) + log(1 - D(G(z))), real and fake in separate batches as in
        # the tutorial (one mixed batch would change BatchNorm's statistics), one backward of the sum.
        self.opt_d.zero_grad(set_to_none=True)
        if isinstance(self.d_net, DistributedDataParallel):
            # DDP all-reduces in backward: the real half's gradients stay local, and the fake half's
            # backward all-reduces their sum once.
            with self.d_local():
                with autocast:
                    d_real_logits = self.d_forward(real).float()
                loss_d_real = bce(d_real_logits, self.real_target_d)
                loss_d_real.backward()
            with autocast:
                d_fake_logits = self.d_forward(fake.detach()).float()
            loss_d_fake = bce(d_fake_logits, self.fake_target)
            loss_d_fake.backward()
        else:
            with autocast:
                d_real_logits = self.d_forward(real).float()
                d_fake_logits = self.d_forward(fake.detach()).float()
            loss_d_real = bce(d_real_logits, self.real_target_d)
            loss_d_fake = bce(d_fake_logits, self.fake_target)
            (loss_d_real + loss_d_fake).backward()
        self.opt_d.step()

        # (2) G step: maximize log D(G(z)) (the non-saturating loss), against the updated D.
        self.opt_g.zero_grad(set_to_none=True)
        with self.d_local():
            with autocast:
                d_fake_after_logits = self.d_forward(fake).float()
            loss_g = bce(d_fake_after_logits, self.real_target)
            loss_g.backward()
        self.opt_g.step()
        if self.ema:
            self.ema.update_parameters(self.generator)
        return torch.stack([loss_d_real + loss_d_fake, loss_g, torch.sigmoid(d_real_logits).mean(),
                            torch.sigmoid(d_fake_logits).mean(), torch.sigmoid(d_fake_after_logits).mean()]).detach()

    def set_lr_scale(self, scale: float) -> None:
        for optimizer, lr in ((self.opt_g, self.cfg.lr_g_effective), (self.opt_d, self.cfg.lr_d_effective)):
            for group in optimizer.param_groups:
                group["lr"] = lr * scale

    def weights_finite(self) -> bool:
        return all(torch.isfinite(p).all() for net in (self.generator, self.discriminator) for p in net.parameters())

    def state(self) -> dict:
        return dict(generator=self.generator, discriminator=self.discriminator, opt_g=self.opt_g, opt_d=self.opt_d,
                    generator_ema=self.ema.module if self.ema else None)

    def load(self, checkpoint: dict) -> None:
        self.generator.load_state_dict(checkpoint["generator"])
        self.discriminator.load_state_dict(checkpoint["discriminator"])
        self.opt_g.load_state_dict(checkpoint["opt_g"])
        self.opt_d.load_state_dict(checkpoint["opt_d"])
        if self.ema:
            self.ema.module.load_state_dict(checkpoint["generator_ema"])
            self.ema.n_averaged.fill_(checkpoint["step"])


def lr_scale(step: int, total_steps: int, decay_start: float) -> float:
    """The learning rates' share at 0-based `step`: 1 until `decay_start` of training, then linearly down to
    1/n at the last step of the n that decay. A function of the step alone, so a resumed run needs no state."""
    first_decaying = math.ceil(decay_start * total_steps)
    if step < first_decaying:
        return 1.0
    return (total_steps - step) / (total_steps - first_decaying)


def epoch_batches(n_images: int, batch_size: int, seed: int, first_step: int = 0,
                  device: torch.device | str = "cpu") -> Iterator[torch.Tensor]:
    """Index batches forever from step `first_step` on: each epoch a permutation of its own seed,
    cut into full batches (the last partial one is dropped, as BatchNorm prefers), so every image is
    seen at most once per epoch, and a resumed run sees exactly the batches it would have seen."""
    steps_per_epoch = n_images // batch_size
    epoch, offset = divmod(first_step, steps_per_epoch)
    while True:
        order = torch.randperm(n_images, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).to(device)
        for start in range(offset * batch_size, steps_per_epoch * batch_size, batch_size):
            yield order[start:start + batch_size]
        epoch, offset = epoch + 1, 0


class RunningMeans:
    """Sums of the logged values on the device, and the first step whose values were not finite.
    `read` is the only host sync, every `log_every` steps; under DDP it averages over processes."""

    NONE = 2**62

    def __init__(self, size: int, device: torch.device, world: World = World()):
        self.world = world
        self.sums = torch.zeros(size, device=device)
        self.count = 0
        self.first_bad = torch.tensor(self.NONE, device=device)

    def add(self, values: torch.Tensor, step: int) -> None:
        self.sums += values
        self.count += 1
        bad_here = torch.where(torch.isfinite(values).all(), self.NONE, step)
        torch.minimum(self.first_bad, bad_here, out=self.first_bad)

    def first_bad_step(self) -> int | None:
        step = int(self.world.min(self.first_bad))
        return None if step == self.NONE else step

    def read(self) -> list[float]:
        means = self.world.mean(self.sums / self.count).tolist()
        self.sums.zero_()
        self.count = 0
        return means

    def state(self) -> dict:
        return {"sums": self.sums.cpu(), "count": self.count}

    def load(self, state: dict) -> None:
        self.sums.copy_(state["sums"])
        self.count = state["count"]
