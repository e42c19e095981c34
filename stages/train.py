"""train: the DCGAN, logged to MLflow (params, losses, D outputs, grids) and to reports/train/."""

from dcgan.config import load_config
from dcgan.errors import run_stage
from dcgan.train import train


def main() -> None:
    train(load_config())


if __name__ == "__main__":
    run_stage(main)
