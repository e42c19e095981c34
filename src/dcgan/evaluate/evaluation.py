"""The evaluate stage's work: score the run, write reports/metrics.json and the figures, log to MLflow."""

from __future__ import annotations

import csv
import json

from dcgan import figures, paths
from dcgan.config import Config
from dcgan.data.datasets import DATASETS
from dcgan.evaluate.scores import evaluate
from dcgan.io import write_json
from dcgan.metric_keys import FLOOR, GAN, NOTES, SAMPLE_SPREAD, SCORE_NAMES, SCORES, SELECTION, SETUP, TRAINING
from dcgan.tracking import PipelineRun



def training_summary(log_csv=paths.TRAIN_LOG) -> dict[str, float]:
    """The `gan` section of metrics.json: the last logged window of the training log, and its pace."""
    rows = list(csv.DictReader(open(log_csv)))
    if not rows:
        return {}
    last = rows[-1]
    seconds = float(last["seconds"])
    return {**{name: float(last[name]) for name in TRAINING}, "seconds": seconds,
            "images_per_second": float(last["images_seen"]) / seconds if seconds > 0 else float("nan")}


def run_evaluation(cfg: Config) -> dict[str, dict]:
    with PipelineRun.continued(paths.SAMPLE_MLFLOW_RUN, cfg) as mlflow_run:
        metrics, shares, nearest = evaluate(cfg)
        metrics = {GAN: training_summary(), **metrics, SELECTION: json.loads(paths.SELECTION.read_text())}
        classifier = json.loads(paths.CLASSIFIER_REPORT.read_text())
        if "classifier_test_accuracy" in classifier:
            metrics[SETUP]["classifier_test_accuracy"] = classifier["classifier_test_accuracy"]
        write_json(paths.METRICS, metrics)
        if shares is not None:
            figures.class_histogram(shares, DATASETS[cfg.dataset].class_names, paths.CLASS_HISTOGRAM)
        else:
            figures.notice(metrics[NOTES]["classifier_scores"], paths.CLASS_HISTOGRAM)
        figures.nearest_training_images(nearest["samples"], nearest["training"], nearest["space"],
                                        paths.NEAREST_TRAINING_IMAGES)
        mlflow_run.log_evaluation(cfg, metrics)
    print_scores(metrics)
    return metrics


def print_scores(metrics: dict[str, dict]) -> None:
    scores, spread, floor = metrics[SCORES], metrics[SAMPLE_SPREAD], metrics[FLOOR]
    print(f"scores of {metrics[SETUP]['n_generated']} samples (lower is better for fd and kid; ± is the sample "
          "spread, over resamples of this one G's samples: training again with another seed moves a score "
          "several times more, so compare configurations over seeds with dcgan-compare):")
    shown = [name for name in SCORE_NAMES if name in scores]
    for name in shown:
        spread_text = f" ± {spread[name]:.3g} (sample spread)" if name in spread else ""
        print(f"  {SCORES}.{name}: {scores[name]:.4g}{spread_text}   real-vs-real floor: {floor[name]:.4g}")
    if shown:
        print(f"  floor: {metrics[NOTES]['floor_path']}")
    kept = metrics[SELECTION]
    print(f"  G kept (keep_g: {kept['keep_g']}): step {kept['chosen_step']}, validation {kept['score']} "
          f"{kept['chosen_validation_score']:.4g}; the last step's G ({kept['last_step']}): {kept['last_validation_score']:.4g}")
    if "fd_classifier" not in scores:
        notes = metrics[NOTES]
        print(f"  no classifier scores: {notes['classifier_scores']}; Inception scores {notes['inception']}")
