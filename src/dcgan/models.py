"""The DCGAN of Radford et al. (2016), as in the PyTorch tutorial, at any power-of-two size.

At 64x64 these are layer for layer the tutorial's nets. Other sizes add or drop one stride-2
block per factor of two, so the feature map is always 4x4 next to the latent vector.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _hidden_blocks(image_size: int) -> int:
    """Stride-2 blocks between the 4x4 map and the image: 3 at 64x64 (8, 16, 32)."""
    return int(math.log2(image_size)) - 3


class Generator(nn.Module):
    def __init__(self, nz: int, ngf: int, nc: int, image_size: int):
        super().__init__()
        mult = 2 ** _hidden_blocks(image_size)
        layers: list[nn.Module] = [  # latent nz x 1 x 1 -> (ngf*mult) x 4 x 4
            nn.ConvTranspose2d(nz, ngf * mult, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * mult),
            nn.ReLU(True),
        ]
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

    def __init__(self, ndf: int, nc: int, image_size: int):
        super().__init__()
        layers: list[nn.Module] = [  # no BN on D's input layer
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        mult = 1
        for _ in range(_hidden_blocks(image_size)):
            layers += [
                nn.Conv2d(ndf * mult, ndf * mult * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ndf * mult * 2),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            mult *= 2
        layers += [nn.Conv2d(ndf * mult, 1, 4, 1, 0, bias=False)]  # 4x4 -> 1 logit
        self.main = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.main(images).flatten()


def init_weights(module: nn.Module) -> None:
    """The paper's init: conv weights N(0, 0.02); BatchNorm weights N(1, 0.02), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def model_spec(cfg) -> dict:
    """What fixes the shapes of G's and D's weights; stored in checkpoints to catch mismatches."""
    return {"arch": "dcgan", "image_size": cfg.image_size, "nz": cfg.nz,
            "ngf": cfg.ngf, "ndf": cfg.ndf, "nc": cfg.nc}


def build_models(cfg) -> tuple[Generator, Discriminator]:
    generator = Generator(cfg.nz, cfg.ngf, cfg.nc, cfg.image_size)
    discriminator = Discriminator(cfg.ndf, cfg.nc, cfg.image_size)
    generator.apply(init_weights)
    discriminator.apply(init_weights)
    return generator, discriminator
