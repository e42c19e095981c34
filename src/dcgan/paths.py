"""Where each stage reads and writes. dvc.yaml declares the same paths (a test keeps them in step),
except the unfinished trainings' checkpoints, which are not a stage's output (see UNFINISHED_RUNS)."""

import os
from pathlib import Path

RAW_DATA = Path("data/raw")
TRAIN_DATA = Path("data/processed/train.pt")
EVAL_TRAIN_DATA = Path("data/eval/train.pt")
EVAL_TEST_DATA = Path("data/eval/test.pt")
DATA_REPORT = Path("reports/data.json")

CLASSIFIER = Path("models/classifier.pt")
CLASSIFIER_REPORT = Path("reports/classifier.json")

CHECKPOINT = Path("models/checkpoint.pt")
MLFLOW_RUN = Path("models/mlflow_run.json")
TRAIN_LOG = Path("reports/train/log.csv")
TRAIN_GRIDS = Path("reports/train/grids")
TRAIN_CURVES = Path("reports/train/curves.png")
SNAPSHOTS = Path("models/snapshots")

GENERATOR = Path("models/generator.pt")  # the G the run keeps (keep_g): sampled, scored, logged as a model
GENERATOR_MLFLOW_RUN = Path("models/generator_mlflow_run.json")
SELECTION = Path("reports/select/selection.json")
QUALITY_CURVE = Path("reports/select/quality_curve.csv")
QUALITY_CURVE_FIGURE = Path("reports/select/quality_curve.png")

SAMPLES = Path("data/samples/samples.pt")
SAMPLE_MLFLOW_RUN = Path("data/samples/mlflow_run.json")
SAMPLE_FIGURES = Path("reports/samples")

METRICS = Path("reports/metrics.json")
CLASS_HISTOGRAM = Path("reports/evaluate/class_histogram.png")
NEAREST_TRAINING_IMAGES = Path("reports/evaluate/nearest_training_images.png")

# Unfinished trainings, each in its own folder <key>/ (see checkpoint.RunFolder), under the main
# repository's root: DVC deletes a `--temp` or `--queue` run's copy of the project, and a declared
# output with `persist: true` would keep DVC from run-caching the train stage. Git-ignored, and no
# stage's output, so DVC never touches it; a run's folder is removed when its training completes.
UNFINISHED_RUNS = Path("checkpoints")


def project_root() -> Path:
    """The main repository root: DVC_ROOT under DVC (also in exp clones), else the nearest .dvc/."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / ".dvc").is_dir():
            return folder
    return here


def unfinished_runs() -> Path:
    return project_root() / UNFINISHED_RUNS
