"""The scores mean what they say, on real Fashion-MNIST: real-vs-real sits at the floor, and each
kind of bad generator scores worse in the direction the score's definition predicts."""

import numpy as np
import pytest

from conftest import DEBIAN_MIRROR, make_config, requires_fashion_mnist
from dcgan.data.download import fetch_fashion_mnist
from dcgan.data.preprocess import prepare_split
from dcgan.evaluate.classes import class_shares
from dcgan.evaluate.calibration import GREY_LEVEL, reference_sets
from dcgan.evaluate.classifier import predict, train_classifier
from dcgan.evaluate.pixels import pixel_scores
from dcgan import paths
from dcgan.evaluate.scores import classifier_scores, floor_images
from dcgan.io import save_tensors

N = 2000
CFG = make_config(kid_subset_size=500, kid_subsets=20)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A classifier trained on 10k real images, the test split's features, and a scorer."""
    root = tmp_path_factory.mktemp("fashion")
    fetch_fashion_mnist(DEBIAN_MIRROR, root)
    train = prepare_split(root, train=True, size=32, max_images=10_000 + 2 * N)
    test = prepare_split(root, train=False, size=32, max_images=N)
    classifier = train_classifier(train["images"][:10_000], train["labels"][:10_000], 10, epochs=1, seed=0)
    test_features, test_probabilities = predict(classifier, test["images"], 32)
    assert (test_probabilities.argmax(1) == test["labels"].numpy()).mean() > 0.8

    def score(images):  # as the evaluate stage scores a run: the classifier's space, and pixels
        features, probabilities = predict(classifier, images, 32)
        return {**classifier_scores(features, probabilities, test_features, class_shares(test_probabilities), CFG),
                **pixel_scores(images, test["images"], seed=0)}

    held_out = train["images"][10_000:], train["labels"][10_000:]  # real images the classifier never saw
    return score, held_out


@pytest.fixture(scope="module")
def floor(lab):
    score, held_out = lab
    return score(reference_sets(*held_out, CFG, N)["real (the floor)"])


def fake_sets(held_out):
    sets = reference_sets(*held_out, CFG, N)
    return {"noise": sets["uniform noise"], "untrained G": sets["untrained G"],
            "one image repeated": sets["one image repeated"], "half of the classes": sets["half of the classes"],
            "blurred": sets["blurred real (Gaussian, sigma 2)"]}


@requires_fashion_mnist
def test_real_vs_real_is_at_the_floor(floor):
    assert floor["fd_classifier"] < 1.0 and abs(floor["kid_classifier"]) < 3 * floor["kid_classifier_std"] + 0.05
    for name in ("precision_classifier", "recall_classifier", "coverage_classifier"):
        assert floor[name] > 0.8, name
    assert floor["density_classifier"] == pytest.approx(1.0, abs=0.15)
    assert floor["classes_covered"] == 10 and floor["class_entropy_ratio"] > 0.98


@requires_fashion_mnist
@pytest.mark.parametrize("kind", ["noise", "untrained G", "one image repeated", "half of the classes", "blurred"])
def test_every_bad_generator_is_far_from_the_floor(lab, floor, kind):
    score, held_out = lab
    scores = score(fake_sets(held_out)[kind])
    assert scores["fd_classifier"] > 10 * floor["fd_classifier"] + 5 * scores["fd_classifier_std"]
    assert scores["kid_classifier"] > floor["kid_classifier"] + 5 * scores["kid_classifier_std"]
    assert scores["coverage_classifier"] < floor["coverage_classifier"] - 0.3


@requires_fashion_mnist
def test_a_grey_background_moves_the_pixel_score_by_the_grey_levels_it_adds(lab, floor):
    score, held_out = lab
    grey = score(reference_sets(*held_out, CFG, N)[f"grey background (dark pixels lifted to {GREY_LEVEL})"])
    # Real vs real moves under a grey level; lifting the dark pixels (about half of them) to 16 moves
    # the pooled histogram by at most 16, and here by about half of that.
    assert floor["pixel_intensity_emd"] < 1.0
    assert 10 * floor["pixel_intensity_emd"] < grey["pixel_intensity_emd"] <= GREY_LEVEL + floor["pixel_intensity_emd"]
    assert grey["pixel_intensity_emd"] > floor["pixel_intensity_emd"] + 5 * grey["pixel_intensity_emd_std"]


@requires_fashion_mnist
def test_collapse_keeps_precision_and_loses_recall(lab, floor):
    score, held_out = lab
    sets = fake_sets(held_out)
    half = score(sets["half of the classes"])
    assert half["precision_classifier"] > floor["precision_classifier"] - 0.1  # still realistic images...
    # ...of only half the variety. Recall falls less than half: Shirt (a missing class) lies next to
    # T-shirt, Pullover and Coat (present ones) in feature space. Coverage is the sharper measure.
    assert half["recall_classifier"] < floor["recall_classifier"] - 0.1
    assert half["coverage_classifier"] < 0.7 * floor["coverage_classifier"]
    # 5 classes, give or take the classifier's T-shirt/Shirt confusion (~10% of those images).
    assert 5 <= half["classes_covered"] <= 6
    assert half["class_entropy_ratio"] < np.log(6) / np.log(10) < floor["class_entropy_ratio"]

    one = score(sets["one image repeated"])
    assert one["recall_classifier"] < 0.01 and one["classes_covered"] == 1
    assert one["class_entropy_ratio"] == 0 and one["is_classifier"] < 1.01


@requires_fashion_mnist
def test_noise_is_neither_realistic_nor_varied(lab, floor):
    score, held_out = lab
    noise = score(fake_sets(held_out)["noise"])
    assert noise["precision_classifier"] < 0.05 and noise["density_classifier"] < 0.05
    assert noise["is_classifier"] < floor["is_classifier"]


@requires_fashion_mnist
def test_blur_lowers_fidelity(lab, floor):
    score, held_out = lab
    blurred = score(fake_sets(held_out)["blurred"])
    assert blurred["precision_classifier"] < floor["precision_classifier"] - 0.1
    assert blurred["density_classifier"] < floor["density_classifier"] - 0.2


@requires_fashion_mnist
def test_the_same_samples_give_the_same_scores(lab):
    score, (images, _) = lab
    assert score(images[:500]) == score(images[:500])  # bootstrap and subsets are seeded


def test_the_floor_of_a_64_px_run_is_where_real_64_px_images_land(lab, tmp_path, monkeypatch):
    """A perfect G of a 64-px run gives real 64-px images, scored through the samples' path (64 -> 32):
    evaluate's floor takes the same path, so such images land on it within the spreads. The floor taken
    from 28 px straight to 32 px (before) sat far below them."""
    score, held_out = lab
    fetch_fashion_mnist(DEBIAN_MIRROR, tmp_path / "raw")
    at_64 = prepare_split(tmp_path / "raw", train=True, size=64, max_images=10_000 + 2 * N)["images"][10_000:]
    monkeypatch.chdir(tmp_path)
    save_tensors(paths.TRAIN_DATA, {"images": at_64[:N]})  # what preprocess writes for a 64-px run
    floor = score(floor_images(make_config(image_size=64), N))
    perfect = score(at_64[N:])  # other real images at 64 px, as a perfect G would draw them
    spread = 3 * (floor["fd_classifier_std"] + perfect["fd_classifier_std"])
    assert abs(perfect["fd_classifier"] - floor["fd_classifier"]) < spread
    straight = score(held_out[0][N:])  # the same images as `perfect`, from 28 px straight to 32
    assert straight["fd_classifier"] < perfect["fd_classifier"] - spread
