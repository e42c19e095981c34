"""evaluate: scores of the samples and the real-vs-real floor -> reports/metrics.json, figures, MLflow."""

from dcgan.config import load_config
from dcgan.errors import run_stage
from dcgan.evaluate.evaluation import run_evaluation


def main() -> None:
    run_evaluation(load_config())


if __name__ == "__main__":
    run_stage(main)
