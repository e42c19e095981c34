"""sample: n_samples images from the trained G for evaluation, and figures, into the training's MLflow run."""

from dcgan import paths
from dcgan.config import load_config
from dcgan.errors import run_stage
from dcgan.sample import sample
from dcgan.tracking import continued_run


def main() -> None:
    cfg = load_config()
    with continued_run(paths.MLFLOW_RUN, cfg.flat(), paths.SAMPLE_MLFLOW_RUN) as mlflow:
        sample(cfg)
        mlflow.log_artifacts(str(paths.SAMPLE_FIGURES), "samples")


if __name__ == "__main__":
    run_stage(main)
