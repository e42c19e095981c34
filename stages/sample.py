"""sample: n_samples images from the G the run keeps (the select_g stage's), and figures, into the training's MLflow run."""

from dcgan import paths
from dcgan.config import load_config
from dcgan.errors import run_stage
from dcgan.sample import sample
from dcgan.tracking import PipelineRun


def main() -> None:
    cfg = load_config()
    with PipelineRun.continued(paths.GENERATOR_MLFLOW_RUN, cfg, paths.SAMPLE_MLFLOW_RUN) as mlflow_run:
        trained_steps = sample(cfg)
        mlflow_run.log_samples(paths.SAMPLE_FIGURES, trained_steps)


if __name__ == "__main__":
    run_stage(main)
