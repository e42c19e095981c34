"""preprocess: the training split resized to image_size, as one uint8 tensor file, and reports/data.json."""

from dcgan import paths
from dcgan.config import load_config
from dcgan.data.preprocess import prepare_split, summarize
from dcgan.errors import run_stage
from dcgan.io import save_tensors, write_json


def main() -> None:
    cfg = load_config()
    split = prepare_split(paths.RAW_DATA, train=True, size=cfg.image_size, dataset=cfg.dataset,
                          max_images=cfg.max_train_images, channels=cfg.nc,
                          max_bad_fraction=cfg.max_bad_image_fraction)
    unreadable = split.pop("unreadable")
    save_tensors(paths.TRAIN_DATA, split)
    report = {"dataset": cfg.dataset, "split": "train", **summarize(split["images"], split.get("labels")),
              "unreadable_images": len(unreadable), "unreadable_files": unreadable}
    write_json(paths.DATA_REPORT, report)
    skipped = f" ({len(unreadable)} unreadable skipped, listed in {paths.DATA_REPORT})" if unreadable else ""
    print(f"{report['count']} images of shape {report['shape']} -> {paths.TRAIN_DATA}{skipped}")


if __name__ == "__main__":
    run_stage(main)
