"""The select_g stage's choice, on curves whose answer is known; the whole stage runs in the end-to-end
tests (tests/test_pipeline.py: keep_g last and best on one trained G)."""

import torch

from conftest import make_config
from dcgan import paths
from dcgan.evaluate.selection import VALIDATION_IMAGES, best_row, selection_score, validation_images
from dcgan.io import load_tensors


def test_the_best_row_is_the_lowest_score_and_on_a_tie_the_later_step():
    curve = [{"step": 500, "fd": 9.0}, {"step": 1000, "fd": 4.0}, {"step": 1500, "fd": 4.0}, {"step": 2000, "fd": 7.0}]
    assert best_row(curve, "fd")["step"] == 1500
    assert best_row(curve[:2], "fd")["step"] == 1000


def test_labelled_data_sets_select_by_the_classifier_others_by_pixels():
    assert selection_score(make_config(dataset="fashion_mnist")) == "fd_classifier"
    assert selection_score(make_config(dataset="celeba")) == "pixel_intensity_emd"


def rows(images: torch.Tensor) -> set[tuple]:
    return {tuple(image.flatten().tolist()) for image in images}


def test_validation_and_curve_floor_images_are_disjoint_training_images(work_folder):
    cfg = make_config(image_size=16, eval_image_size=16, curve_samples=64)
    validation, floor = validation_images(cfg)
    assert len(validation) == min(VALIDATION_IMAGES, 64 // 2) == 32 and len(floor) == 32  # the 64 images, halved
    assert not rows(validation) & rows(floor)
    assert rows(validation) | rows(floor) <= rows(load_tensors(paths.TRAIN_DATA)["images"])
    assert validation_images(cfg)[0].equal(validation)  # eval_seed: the same images for every run
    other = validation_images(make_config(image_size=16, eval_image_size=16, curve_samples=64, eval_seed=1))[0]
    assert not other.equal(validation)
