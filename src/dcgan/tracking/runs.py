"""MLflow: one run per pipeline run, started by train and continued by select_g, sample and evaluate."""

from __future__ import annotations

import json
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

from dcgan import paths
from dcgan.config import Config
from dcgan.errors import UserError
from dcgan.io import write_json
from dcgan.metrics import (CURVE_SCORES, FLOOR, GAN, NOTES, OVER_TRAINING, SAMPLE_SPREAD, SCORES, SELECTION, flatten,
                           metric_key)
from dcgan.tracking import lineage
from dcgan.tracking.run_logger import RunLogger
from dcgan.tracking.store import EXPERIMENT, connect, experiment_id, refusal, refused, tracking_uri, unreachable

# CPU, memory, disk and network (and the GPU with nvidia-ml-py), as MLflow's System metrics tab shows them.
SYSTEM_METRICS_SECONDS = 10


def training_run(cfg: Config, device: str, run_file: str | Path, resume_run_id: str | None = None) -> RunLogger:
    """Start the pipeline run's MLflow run (or continue `resume_run_id`, the run of a resumed training),
    log params, tags, the training data and a description, and record its id in run_file."""
    mlflow = connect()
    client = mlflow.MlflowClient()
    params = cfg.flat()
    try:
        if resume_run_id:
            run = client.get_run(resume_run_id)
            client.update_run(resume_run_id, status="RUNNING")
        else:
            commit = lineage.git_commit()
            tags = {**lineage.source_tags(commit, "stages/train.py"), "mlflow.note.content": lineage.describe(cfg),
                    "device": device, "torch_version": torch.__version__}
            run = client.create_run(experiment_id(mlflow), run_name=lineage.run_name(commit), tags=tags)
    except Exception as exc:
        status = refused(exc)
        raise UserError(("Nothing was trained: " + (refusal(status, f"write to experiment '{EXPERIMENT}'") if status
                                                     else unreachable(exc)))) from None
    logger = RunLogger(client, run.info.run_id)
    if resume_run_id:
        print(f"MLflow run {run.info.run_id} ({run.info.run_name}) continued in {tracking_uri()}")
    else:
        logger.log_params(params)
        inputs = lineage.dataset_inputs(cfg, lineage.TRAINING_DATA)
        logger.upload("the training data set", lambda: client.log_inputs(run.info.run_id, datasets=inputs))
        print(f"MLflow run {run.info.run_id} ({run.info.run_name}) in {tracking_uri()}")
    logger.start_system_metrics(SYSTEM_METRICS_SECONDS, resume=bool(resume_run_id))
    write_json(run_file, {"run_id": run.info.run_id, "experiment": EXPERIMENT, "run_name": run.info.run_name})
    return logger


def _derived_run(mlflow, base, cfg: Config, differing: list[str]):
    """A new run for this pipeline run, carrying over what the earlier stages logged in `base`."""
    client = mlflow.MlflowClient()
    commit = lineage.git_commit()
    tags = {key: value for key, value in base.data.tags.items() if not key.startswith("mlflow.")}
    tags.update(lineage.source_tags(commit, "dvc.yaml"))  # sample or evaluate, after DVC reused train's results
    tags.update({"derived_from_run": base.info.run_id, "changed_params": ", ".join(differing),
                 "mlflow.note.content": lineage.describe(cfg)})
    run = mlflow.start_run(experiment_id=base.info.experiment_id, run_name=lineage.run_name(commit), tags=tags)
    mlflow.log_params({**base.data.params, **{key: str(value) for key, value in cfg.flat().items()}})
    for key in base.data.metrics:  # the training curves, so that the compare view shows them here too
        history = client.get_metric_history(base.info.run_id, key)
        for start in range(0, len(history), 1000):
            client.log_batch(run.info.run_id, metrics=history[start:start + 1000])
    if base.inputs and base.inputs.dataset_inputs:
        client.log_inputs(run.info.run_id, datasets=base.inputs.dataset_inputs)
    with tempfile.TemporaryDirectory() as tmp:
        if client.list_artifacts(base.info.run_id):
            mlflow.log_artifacts(mlflow.artifacts.download_artifacts(run_id=base.info.run_id, dst_path=tmp))
    print(f"MLflow run {run.info.run_id} ({run.info.run_name}): {', '.join(differing)} changed since run "
          f"{base.info.run_id}, whose results DVC reused; a new run keeps each experiment's scores apart")
    return run


@contextmanager
def continued_run(run_file: str | Path, cfg: Config, next_run_file: str | Path | None = None) -> Iterator[object]:
    """Re-open the run that the previous stage logged to (its id is in run_file), so that one pipeline
    run is one MLflow run. If the params differ from that run's (say only `sample_bn_mode` changed, so
    DVC restored train from its cache), a new run is started instead, with the current params and
    the earlier run's tags, metric histories, datasets and artifacts: each experiment keeps its own
    run, and no run's scores are overwritten by another's. next_run_file records the run used, for
    the next stage. Yields the active MLflow run."""
    run_file = Path(run_file)
    if not run_file.is_file():
        raise UserError(f"{run_file} is missing: the stage before this one writes it. Run: dvc repro")
    run_id = json.loads(run_file.read_text())["run_id"]
    mlflow = connect()
    try:
        base = mlflow.get_run(run_id)
    except Exception as exc:
        status = refused(exc)
        if status:
            raise UserError(refusal(status)) from None
        raise UserError(f"MLflow run {run_id} (from {run_file}) is not in the store {tracking_uri()}. "
                        "Was MLFLOW_TRACKING_URI changed since training? Set it back, or re-train: "
                        "dvc repro -f train") from None
    differing = [key for key, value in cfg.flat().items() if base.data.params.get(key) != str(value)]
    run = _derived_run(mlflow, base, cfg, differing) if differing else mlflow.start_run(run_id=run_id)
    with run:
        if next_run_file is not None:
            write_json(next_run_file, {"run_id": run.info.run_id, "experiment": EXPERIMENT,
                                       "run_name": run.info.run_name})
        yield run


def log_samples(run, figures_folder: Path, step: int) -> None:
    """The sample stage's figures: files under Artifacts, and the final grid and real-vs-fake as image charts."""
    import mlflow
    from PIL import Image

    mlflow.log_artifacts(str(figures_folder), "samples")
    for key, name in (("samples/grid", "grid.png"), ("samples/real_vs_fake", "real_vs_fake.png")):
        with Image.open(figures_folder / name) as image:
            mlflow.log_image(image.convert("RGB"), key=key, step=step, synchronous=True)


def log_selection(run, selection: dict, curve: list[dict], tags: dict[str, str]) -> None:
    """The select_g stage's results: the quality curve as metric histories (so the compare view overlays
    runs), which G was kept and the last one's score (`selection/`), the curve's files, and `tags`."""
    import mlflow

    mlflow.set_tags(tags)
    for row in curve:
        mlflow.log_metrics({metric_key(OVER_TRAINING, name): row[name] for name in CURVE_SCORES if name in row},
                           step=row["step"])
    mlflow.log_metrics(flatten({SELECTION: selection}))
    mlflow.set_tag("keep_g", f"{selection['keep_g']}: step {selection['chosen_step']} of {selection['last_step']}, "
                             f"by {selection['score']} on {selection['validation_images']} validation images")
    mlflow.log_artifact(str(paths.QUALITY_CURVE))
    mlflow.log_artifact(str(paths.QUALITY_CURVE_FIGURE), "figures")


def log_evaluation(run, cfg: Config, metrics: dict[str, dict]) -> None:
    """The evaluate stage's results: every score as `<section>/<name>` (the training's `gan/` values and
    the selection's are there already), the evaluation data set, the figures and a description with the
    headline scores."""
    import mlflow

    numbers = flatten({section: values for section, values in metrics.items() if section not in (GAN, SELECTION)})
    mlflow.log_metrics(numbers)
    for name, note in metrics[NOTES].items():
        mlflow.set_tag(name, note)
    mlflow.MlflowClient().log_inputs(run.info.run_id, datasets=lineage.dataset_inputs(cfg, lineage.EVALUATION_DATA))
    mlflow.log_artifact(str(paths.METRICS))
    for path in (paths.CLASS_HISTOGRAM, paths.NEAREST_TRAINING_IMAGES):
        mlflow.log_artifact(str(path), "figures")
    headline = lineage.headline(metrics[SCORES], metrics[SAMPLE_SPREAD], metrics[FLOOR])
    mlflow.set_tag("mlflow.note.content", lineage.describe(cfg, headline))
