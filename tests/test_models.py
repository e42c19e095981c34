import pytest
import torch
from torch import nn

from conftest import make_config
from dcgan.models import Discriminator, Generator, build_models


@pytest.mark.parametrize("image_size", [16, 32, 64, 128, 256])
@pytest.mark.parametrize("nc", [1, 3])
def test_shapes_at_every_supported_size(image_size, nc):
    generator, discriminator = Generator(nz=8, ngf=4, nc=nc, image_size=image_size), Discriminator(4, nc, image_size)
    images = generator(torch.randn(2, 8, 1, 1))
    assert images.shape == (2, nc, image_size, image_size)
    assert images.abs().max() <= 1  # tanh output, the range of the normalized data
    assert discriminator(images).shape == (2,)


def test_64x64_nets_are_the_pytorch_tutorials_layer_for_layer():
    generator, discriminator = build_models(make_config())
    convs_g = [(m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0])
               for m in generator.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert convs_g == [(100, 512, 4, 1, 0), (512, 256, 4, 2, 1), (256, 128, 4, 2, 1), (128, 64, 4, 2, 1),
                       (64, 1, 4, 2, 1)]
    convs_d = [(m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0])
               for m in discriminator.modules() if isinstance(m, nn.Conv2d)]
    assert convs_d == [(1, 64, 4, 2, 1), (64, 128, 4, 2, 1), (128, 256, 4, 2, 1), (256, 512, 4, 2, 1),
                       (512, 1, 4, 1, 0)]
    # BatchNorm everywhere but G's output and D's input; tanh out of G; LeakyReLU(0.2) in D.
    assert sum(isinstance(m, nn.BatchNorm2d) for m in generator.modules()) == 4
    assert sum(isinstance(m, nn.BatchNorm2d) for m in discriminator.modules()) == 3
    assert isinstance(generator.main[-1], nn.Tanh) and isinstance(discriminator.main[1], nn.LeakyReLU)
    assert discriminator.main[1].negative_slope == 0.2
    assert not isinstance(discriminator.main[-1], nn.Sigmoid)  # logits: the loss applies the sigmoid


def test_initialisation_statistics():
    torch.manual_seed(0)
    generator, discriminator = build_models(make_config())
    conv_weights = torch.cat([m.weight.flatten() for net in (generator, discriminator) for m in net.modules()
                              if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
    bn = [m for net in (generator, discriminator) for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    bn_weights, bn_biases = torch.cat([m.weight for m in bn]), torch.cat([m.bias for m in bn])
    assert abs(conv_weights.mean().item()) < 1e-3 and abs(conv_weights.std().item() - 0.02) < 1e-3
    assert abs(bn_weights.mean().item() - 1) < 5e-3 and abs(bn_weights.std().item() - 0.02) < 5e-3
    assert torch.all(bn_biases == 0)
