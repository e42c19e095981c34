"""download: the raw data set files, verified, into data/raw/."""

from dcgan import paths
from dcgan.config import load_config
from dcgan.data.download import fetch
from dcgan.errors import run_stage


def main() -> None:
    cfg = load_config()
    source = fetch(cfg, paths.RAW_DATA)
    print(f"{cfg.dataset}: verified raw files from {source} -> {paths.RAW_DATA}/")


if __name__ == "__main__":
    run_stage(main)
