"""prepare_eval: both splits at eval_image_size, with labels, for the classifier and the scores."""

from dcgan import paths
from dcgan.config import load_config
from dcgan.data.preprocess import prepare_split
from dcgan.errors import run_stage
from dcgan.io import save_tensors


def main() -> None:
    cfg = load_config()
    for train, path in ((True, paths.EVAL_TRAIN_DATA), (False, paths.EVAL_TEST_DATA)):
        save_tensors(path, prepare_split(paths.RAW_DATA, train=train, size=cfg.eval_image_size))
        print(f"{'train' if train else 'test'} split at {cfg.eval_image_size}x{cfg.eval_image_size} -> {path}")


if __name__ == "__main__":
    run_stage(main)
