"""prepare_eval: the real images the scores compare with, at eval_image_size: a real set for the
floor (and the classifier's training) and a test set, with labels where the data set has them."""

from dcgan import paths
from dcgan.config import load_config
from dcgan.data.datasets import DATASETS
from dcgan.data.preprocess import held_out_split, prepare_split
from dcgan.errors import run_stage
from dcgan.io import save_tensors

# Without labels the real set only feeds the floor, which uses as many images as there are samples.
UNLABELLED_REAL_IMAGES = 20_000


def main() -> None:
    cfg = load_config()
    spec = DATASETS[cfg.dataset]

    def split(train: bool, max_images: int = 0) -> dict:
        found = prepare_split(paths.RAW_DATA, train=train, size=cfg.eval_image_size, dataset=cfg.dataset,
                              max_images=max_images, channels=cfg.nc, max_bad_fraction=cfg.max_bad_image_fraction)
        if found["unreadable"]:
            print(f"{len(found['unreadable'])} unreadable images skipped")
        return {key: value for key, value in found.items() if key != "unreadable"}

    real_cap = 0 if spec.labelled else UNLABELLED_REAL_IMAGES
    if spec.has_test_split:
        real, test = split(train=True, max_images=real_cap), split(train=False)
    else:
        real, test = held_out_split(split(train=True), cfg.eval_seed)
        print(f"{cfg.dataset} has no test split: {len(test['images'])} images held out as the test set")
    for name, data, path in (("real", real, paths.EVAL_TRAIN_DATA), ("test", test, paths.EVAL_TEST_DATA)):
        save_tensors(path, data)
        print(f"{name}: {len(data['images'])} images at {cfg.eval_image_size}x{cfg.eval_image_size} -> {path}")


if __name__ == "__main__":
    run_stage(main)
