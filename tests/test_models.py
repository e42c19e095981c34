import pytest
import torch
from torch import nn

from conftest import make_config
import torch.nn.functional as F

from dcgan.config import IMAGE_SIZES
from dcgan.models import build_models, draw_noise, generate


@pytest.mark.parametrize("arch", ["dcgan", "mlp"])
@pytest.mark.parametrize("image_size", IMAGE_SIZES)
@pytest.mark.parametrize("nc", [1, 3])
def test_every_arch_and_size_has_the_right_shapes_and_one_step_changes_the_weights(arch, image_size, nc):
    dataset = {1: "mnist", 3: "cifar10"}[nc]
    width = 4 if arch == "dcgan" else 64  # (a few ReLU units can all be dead for a batch)
    cfg = make_config(arch=arch, image_size=image_size, dataset=dataset, nz=8, ngf=width, ndf=width, d_dropout=0.3)
    torch.manual_seed(0)
    generator, discriminator = build_models(cfg)
    images = generator(draw_noise(4, cfg))
    assert images.shape == (4, nc, image_size, image_size)
    assert images.abs().max() <= 1  # tanh output, the range of the normalized data
    logits = discriminator(images)
    assert logits.shape == (4,)

    before = {name: p.detach().clone() for net in (generator, discriminator) for name, p in
              ((f"{type(net).__name__}.{n}", p) for n, p in net.named_parameters())}
    opt = torch.optim.Adam([*generator.parameters(), *discriminator.parameters()], lr=1e-3)
    F.binary_cross_entropy_with_logits(logits, torch.ones(4)).backward()
    opt.step()
    after = {f"{type(net).__name__}.{n}": p for net in (generator, discriminator) for n, p in net.named_parameters()}
    assert all(not torch.equal(before[name], after[name]) for name in before), \
        [name for name in before if torch.equal(before[name], after[name])]


def test_28x28_is_the_flux_mnist_tutorials_layout():
    generator, discriminator = build_models(make_config(dataset="mnist", image_size=28))
    convs_g = [(m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0])
               for m in generator.modules() if isinstance(m, nn.ConvTranspose2d)]
    # Dense(100 -> 7*7*256) as a 7x7 transposed conv on the 1x1 latent, then 256 -> 128 -> 64 -> 1.
    assert convs_g == [(100, 256, 7, 1), (256, 128, 5, 1), (128, 64, 4, 2), (64, 1, 4, 2)]
    convs_d = [(m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0])
               for m in discriminator.modules() if isinstance(m, nn.Conv2d)]
    assert convs_d == [(1, 64, 4, 2), (64, 128, 4, 2), (128, 1, 7, 1)]  # the last = Dense(7*7*128 -> 1)


def test_mlp_is_the_tensorflow_tutorials_baseline():
    generator, discriminator = build_models(make_config(dataset="mnist", image_size=28, arch="mlp", ngf=128, ndf=128))
    shapes = [tuple(m.weight.shape) for net in (generator, discriminator) for m in net.modules()
              if isinstance(m, nn.Linear)]
    assert shapes == [(128, 100), (784, 128), (128, 784), (1, 128)]


def test_d_dropout_follows_each_activation_of_d():
    _, discriminator = build_models(make_config(d_dropout=0.3))
    layers = list(discriminator.main)
    dropouts = [i for i, m in enumerate(layers) if isinstance(m, nn.Dropout)]
    assert len(dropouts) == 4 and all(isinstance(layers[i - 1], nn.LeakyReLU) for i in dropouts)
    assert not any(isinstance(m, nn.Dropout) for m in build_models(make_config())[1].modules())


def test_uniform_noise_is_in_the_cube_and_normal_noise_is_not():
    uniform = draw_noise(1000, make_config(noise="uniform", nz=10))
    assert uniform.shape == (1000, 10, 1, 1) and uniform.min() >= -1 and uniform.max() <= 1
    assert abs(uniform.std().item() - 1 / 3 ** 0.5) < 0.02  # U(-1, 1) has std 1/sqrt(3)
    assert draw_noise(1000, make_config(noise="normal", nz=10)).abs().max() > 2


def test_sampling_in_train_mode_uses_batch_statistics_and_leaves_g_untouched():
    cfg = make_config(image_size=16, nz=8, ngf=4)
    generator, _ = build_models(cfg)
    with torch.no_grad():  # make running statistics differ from any batch's
        for m in generator.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.fill_(3.0)
    state = {k: v.clone() for k, v in generator.state_dict().items()}
    noise = draw_noise(16, cfg)
    in_eval, in_train = generate(generator, noise, "eval"), generate(generator, noise, "train")
    assert not torch.allclose(in_eval, in_train)
    assert generator.training  # its mode is restored
    assert all(torch.equal(v, generator.state_dict()[k]) for k, v in state.items())  # running stats untouched


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
