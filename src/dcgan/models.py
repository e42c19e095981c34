"""The DCGAN of Radford et al. (2016), as in the PyTorch tutorial, and the fully connected baseline.

At 64x64 the DCGAN is layer for layer the PyTorch tutorial's. Other powers of two add or drop one
stride-2 block per factor of two, so the map next to the latent vector is always 4x4. At 28x28 it
is the MNIST tutorials' layout: a 7x7 map, a 5x5 stride-1 layer, then 7 -> 14 -> 28 (with ngf =
ndf = 64 the channels are the Flux tutorial's 256 -> 128 -> 64 -> 1 and D's 64 -> 128 -> logit).
`arch: mlp` is the TensorFlow tutorial's baseline GAN (one hidden layer each), to show what
convolution buys.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


def _layout(image_size: int) -> tuple[int, int]:
    """(side of the first feature map, stride-2 blocks from it to the image): (4, 4) at 64, (7, 2) at 28."""
    base = 7 if image_size == 28 else 4
    return base, int(math.log2(image_size // base))


class Generator(nn.Module):
    def __init__(self, nz: int, ngf: int, nc: int, image_size: int):
        super().__init__()
        base, blocks = _layout(image_size)
        mult = 2 ** (blocks - 1)
        if base == 7:  # the MNIST tutorials' extra stride-1 layer at 7x7 doubles the width of the first map
            mult *= 2
        layers: list[nn.Module] = [  # latent nz x 1 x 1 -> (ngf*mult) x base x base
            nn.ConvTranspose2d(nz, ngf * mult, base, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * mult),
            nn.ReLU(True),
        ]
        if base == 7:
            layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 5, 1, 2, bias=False),
                       nn.BatchNorm2d(ngf * mult // 2), nn.ReLU(True)]
            mult //= 2
        while mult > 1:  # each block doubles the size and halves the channels
            layers += [
                nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ngf * mult // 2),
                nn.ReLU(True),
            ]
            mult //= 2
        layers += [nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh()]  # no BN on G's output
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z)


class Discriminator(nn.Module):
    """Outputs logits: the loss applies the sigmoid (BCE with logits is the numerically stable form)."""

    def __init__(self, ndf: int, nc: int, image_size: int, dropout: float = 0.0):
        super().__init__()

        def activation() -> list[nn.Module]:  # dropout after each activation, as the Flux tutorial's revision
            return [nn.LeakyReLU(0.2, inplace=True)] + ([nn.Dropout(dropout)] if dropout else [])

        base, blocks = _layout(image_size)
        layers: list[nn.Module] = [nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), *activation()]  # no BN on D's input
        mult = 1
        for _ in range(blocks - 1):
            layers += [nn.Conv2d(ndf * mult, ndf * mult * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * mult * 2),
                       *activation()]
            mult *= 2
        layers += [nn.Conv2d(ndf * mult, 1, base, 1, 0, bias=False)]  # base x base -> 1 logit
        self.main = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.main(images).flatten()


class MLPGenerator(nn.Module):
    """The TensorFlow tutorial's baseline G: z -> hidden (ReLU) -> pixels (tanh)."""

    def __init__(self, nz: int, hidden: int, nc: int, image_size: int):
        super().__init__()
        self.shape = (nc, image_size, image_size)
        self.main = nn.Sequential(nn.Flatten(), nn.Linear(nz, hidden), nn.ReLU(True),
                                  nn.Linear(hidden, nc * image_size * image_size), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z).view(-1, *self.shape)


class MLPDiscriminator(nn.Module):
    """The baseline D: pixels -> hidden (ReLU) -> one logit."""

    def __init__(self, hidden: int, nc: int, image_size: int, dropout: float = 0.0):
        super().__init__()
        self.main = nn.Sequential(nn.Flatten(), nn.Linear(nc * image_size * image_size, hidden), nn.ReLU(True),
                                  *([nn.Dropout(dropout)] if dropout else []), nn.Linear(hidden, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.main(images).flatten()


class LatentToImage(nn.Module):
    """G as a model to serve: latent vectors [N, nz] -> images [N, nc, H, W] in [-1, 1] (G's tanh)."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z.reshape(z.shape[0], -1, 1, 1))


def init_weights(module: nn.Module) -> None:
    """The paper's init: conv weights N(0, 0.02); BatchNorm weights N(1, 0.02), biases 0. (The mlp
    baseline keeps PyTorch's default init of its linear layers.)"""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def model_spec(cfg) -> dict:
    """What fixes the shapes of G's and D's weights; stored in checkpoints to catch mismatches."""
    return {"arch": cfg.arch, "image_size": cfg.image_size, "nz": cfg.nz,
            "ngf": cfg.ngf, "ndf": cfg.ndf, "nc": cfg.nc}


def build_generator(cfg) -> nn.Module:
    net = {"dcgan": Generator, "mlp": MLPGenerator}[cfg.arch]
    return net(cfg.nz, cfg.ngf, cfg.nc, cfg.image_size)


def build_models(cfg) -> tuple[nn.Module, nn.Module]:
    generator = build_generator(cfg)
    discriminator = {"dcgan": Discriminator, "mlp": MLPDiscriminator}[cfg.arch](
        cfg.ndf, cfg.nc, cfg.image_size, cfg.d_dropout)
    generator.apply(init_weights)
    discriminator.apply(init_weights)
    return generator, discriminator


def draw_noise(count: int, cfg, device: torch.device | str = "cpu", rng: torch.Generator | None = None
               ) -> torch.Tensor:
    """G's input [count, nz, 1, 1]: N(0, 1), or U(-1, 1) as in the TensorFlow tutorial (`noise` param)."""
    shape = (count, cfg.nz, 1, 1)
    if cfg.noise == "uniform":
        return torch.rand(shape, generator=rng, device=device) * 2 - 1
    return torch.randn(shape, generator=rng, device=device)


@torch.no_grad()
def generate(generator: nn.Module, noise: torch.Tensor, bn_mode: str = "eval") -> torch.Tensor:
    """G's images for `noise`. BatchNorm in `eval` mode uses its running statistics; in `train` mode
    it uses the batch's (the TensorFlow tutorial found that sharper), on a copy of G so that its
    running statistics are left as they were. G's own mode is restored afterwards."""
    if bn_mode == "train":
        return copy.deepcopy(generator).train()(noise)
    was_training = generator.training
    generator.eval()
    images = generator(noise)
    generator.train(was_training)
    return images
