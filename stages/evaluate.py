"""evaluate: scores of the samples and the real-vs-real floor -> reports/metrics.json and MLflow."""

import json

from dcgan import paths
from dcgan.config import load_config
from dcgan.errors import run_stage
from dcgan.evaluate.scores import evaluate
from dcgan.io import write_json
from dcgan.tracking import continued_run


def main() -> None:
    cfg = load_config()
    with continued_run(paths.MLFLOW_RUN) as mlflow:
        classifier = json.loads(paths.CLASSIFIER_REPORT.read_text())
        metrics = {**evaluate(cfg), "classifier_test_accuracy": classifier["classifier_test_accuracy"]}
        write_json(paths.METRICS, metrics)
        mlflow.log_metrics({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
        mlflow.log_artifact(str(paths.METRICS))
    for name in ("fd_classifier", "kid_classifier"):
        print(f"{name}: {metrics[name]:.4g}  (real-vs-real floor {metrics[name + '_floor']:.4g})")


if __name__ == "__main__":
    run_stage(main)
