"""The scores separate real from fake: real-vs-real sits far below an untrained generator."""

import torch

from conftest import DEBIAN_MIRROR, make_config, requires_fashion_mnist
from dcgan.data.download import fetch_fashion_mnist
from dcgan.data.normalize import denormalize
from dcgan.data.preprocess import prepare_split
from dcgan.evaluate.classifier import predict, train_classifier
from dcgan.evaluate.distances import frechet_distance, kernel_distance
from dcgan.models import build_models


@requires_fashion_mnist
def test_real_vs_real_floor_is_far_below_an_untrained_generator(tmp_path):
    fetch_fashion_mnist(DEBIAN_MIRROR, tmp_path)
    train = prepare_split(tmp_path, train=True, size=32, max_images=12_000)
    test = prepare_split(tmp_path, train=False, size=32, max_images=2_000)
    classifier = train_classifier(train["images"][:10_000], train["labels"][:10_000], 10, epochs=1, seed=0)
    assert (predict(classifier, test["images"], 32)[1].argmax(1) == test["labels"].numpy()).mean() > 0.7

    torch.manual_seed(0)
    generator, _ = build_models(make_config(image_size=32))
    with torch.no_grad():
        untrained = denormalize(generator.eval()(torch.randn(2_000, 100, 1, 1)))

    test_features = predict(classifier, test["images"], 32)[0]
    real_features = predict(classifier, train["images"][10_000:], 32)[0]  # held out from the classifier
    fake_features = predict(classifier, untrained, 32)[0]
    fd_floor, fd_fake = frechet_distance(real_features, test_features), frechet_distance(fake_features, test_features)
    kid_floor, _ = kernel_distance(real_features, test_features, 500, 20)
    kid_fake, _ = kernel_distance(fake_features, test_features, 500, 20)
    assert fd_floor * 20 < fd_fake, (fd_floor, fd_fake)
    assert kid_floor * 20 < kid_fake, (kid_floor, kid_fake)
