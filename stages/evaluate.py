"""evaluate: scores of the samples and the real-vs-real floor -> reports/metrics.json, figures, MLflow."""

import json

from dcgan import paths
from dcgan.config import load_config
from dcgan.data.preprocess import CLASS_NAMES
from dcgan.errors import run_stage
from dcgan.evaluate.scores import evaluate
from dcgan import figures
from dcgan.evaluate.curve import COLUMNS
from dcgan.figures import class_histogram
from dcgan.io import write_csv, write_json
from dcgan.tracking import continued_run


def main() -> None:
    cfg = load_config()
    with continued_run(paths.MLFLOW_RUN) as mlflow:
        scores, shares, curve = evaluate(cfg)
        classifier = json.loads(paths.CLASSIFIER_REPORT.read_text())
        metrics = {**scores, "classifier_test_accuracy": classifier["classifier_test_accuracy"]}
        write_json(paths.METRICS, metrics)
        class_histogram(shares, CLASS_NAMES[cfg.dataset], paths.CLASS_HISTOGRAM)
        write_csv(paths.QUALITY_CURVE, curve, COLUMNS)
        figures.quality_curve(curve, paths.QUALITY_CURVE_FIGURE)
        mlflow.log_metrics({name: value for name, value in metrics.items() if isinstance(value, (int, float))})
        mlflow.set_tag("inception", metrics["inception"])
        for row in curve:  # the curve as metric histories, so the compare view overlays runs
            mlflow.log_metrics({f"curve_{name}": row[name] for name in COLUMNS[3:]}, step=row["step"])
        for path in (paths.METRICS, paths.QUALITY_CURVE):
            mlflow.log_artifact(str(path))
        for path in (paths.CLASS_HISTOGRAM, paths.QUALITY_CURVE_FIGURE):
            mlflow.log_artifact(str(path), "figures")
    print(f"scores of {metrics['n_generated']} samples (lower is better for fd and kid):")
    for name in ("fd_classifier", "kid_classifier", "precision_classifier", "recall_classifier",
                 "density_classifier", "coverage_classifier", "class_entropy_ratio", "classes_covered",
                 "is_classifier", "fid_inception", "kid_inception", "precision_inception", "recall_inception"):
        if name not in metrics:
            continue
        spread = f" ± {metrics[name + '_std']:.3g}" if name + "_std" in metrics else ""
        print(f"  {name}: {metrics[name]:.4g}{spread}   real-vs-real floor: {metrics[name + '_floor']:.4g}")


if __name__ == "__main__":
    run_stage(main)
