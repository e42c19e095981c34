"""evaluate: scores of the samples and the real-vs-real floor -> reports/metrics.json, figures, MLflow."""

import json

from dcgan import figures, paths
from dcgan.config import load_config
from dcgan.data.datasets import DATASETS
from dcgan.errors import run_stage
from dcgan.evaluate.curve import COLUMNS
from dcgan.evaluate.scores import evaluate
from dcgan.io import write_csv, write_json
from dcgan.tracking import continued_run

SHOWN = ("fd_classifier", "kid_classifier", "precision_classifier", "recall_classifier", "density_classifier",
         "coverage_classifier", "class_entropy_ratio", "classes_covered", "is_classifier", "fid_inception",
         "kid_inception", "precision_inception", "recall_inception", "density_inception", "coverage_inception")


def main() -> None:
    cfg = load_config()
    with continued_run(paths.SAMPLE_MLFLOW_RUN, cfg.flat()) as mlflow:
        metrics, shares, curve = evaluate(cfg)
        classifier = json.loads(paths.CLASSIFIER_REPORT.read_text())
        if "classifier_test_accuracy" in classifier:
            metrics["classifier_test_accuracy"] = classifier["classifier_test_accuracy"]
        write_json(paths.METRICS, metrics)
        write_csv(paths.QUALITY_CURVE, curve, COLUMNS)
        if shares is not None:
            figures.class_histogram(shares, DATASETS[cfg.dataset].class_names, paths.CLASS_HISTOGRAM)
            figures.quality_curve(curve, paths.QUALITY_CURVE_FIGURE)
        else:
            for path in (paths.CLASS_HISTOGRAM, paths.QUALITY_CURVE_FIGURE):
                figures.notice(metrics["classifier_scores"], path)
        mlflow.log_metrics({name: value for name, value in metrics.items() if isinstance(value, (int, float))})
        for note in ("inception", "classifier_scores"):
            mlflow.set_tag(note, metrics[note])
        for row in curve:  # the curve as metric histories, so the compare view overlays runs
            mlflow.log_metrics({f"curve_{name}": row[name] for name in COLUMNS[3:]}, step=row["step"])
        for path in (paths.METRICS, paths.QUALITY_CURVE):
            mlflow.log_artifact(str(path))
        for path in (paths.CLASS_HISTOGRAM, paths.QUALITY_CURVE_FIGURE):
            mlflow.log_artifact(str(path), "figures")
    print(f"scores of {metrics['n_generated']} samples (lower is better for fd and kid):")
    shown = [name for name in SHOWN if name in metrics]
    for name in shown:
        spread = f" ± {metrics[name + '_std']:.3g}" if name + "_std" in metrics else ""
        print(f"  {name}: {metrics[name]:.4g}{spread}   real-vs-real floor: {metrics[name + '_floor']:.4g}")
    if not shown:
        print(f"  none: classifier scores {metrics['classifier_scores']}; Inception scores {metrics['inception']}")


if __name__ == "__main__":
    run_stage(main)
