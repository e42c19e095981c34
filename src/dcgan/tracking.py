"""MLflow: one run per pipeline run, started by train and continued by sample and evaluate.

The store needs no server: SQLite in the project root, unless MLFLOW_TRACKING_URI says otherwise.
`dvc exp run --queue/--temp` runs stages in a throw-away clone under .dvc/tmp/exps/, but DVC sets
DVC_ROOT to the main repository there too, so every run lands in the same store.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

from dcgan.errors import UserError
from dcgan.io import write_json

EXPERIMENT = "dcgan"


def project_root() -> Path:
    """The main repository root: DVC_ROOT under DVC (also in exp clones), else the nearest .dvc/."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / ".dvc").is_dir():
            return folder
    return here


def local_store_uri() -> str:
    return f"sqlite:///{project_root() / 'mlflow.db'}"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or local_store_uri()


def _uses_local_store() -> bool:
    # Compared by value: mlflow.set_tracking_uri() itself exports MLFLOW_TRACKING_URI.
    return tracking_uri() == local_store_uri()


def _connect():
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    return mlflow


def _experiment_id(mlflow, name: str) -> str:
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    # An explicit location under the main root: created from a temp clone, MLflow would otherwise
    # put the artifacts inside that clone, which DVC deletes afterwards.
    location = (project_root() / "mlartifacts" / name).as_uri() if _uses_local_store() else None
    return mlflow.create_experiment(name, artifact_location=location)


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


@contextmanager
def training_run(params: dict, device: str, run_file: str | Path) -> Iterator[object]:
    """Start the pipeline run's MLflow run, log params and tags, and record its id in run_file."""
    mlflow = _connect()
    exp_name = os.environ.get("DVC_EXP_NAME", "")
    commit = _git_commit()
    tags = {
        "git_commit": commit,
        "mlflow.source.git.commit": commit,
        "dvc_exp_name": exp_name or "(workspace)",
        "dvc_exp_baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV", commit),
        "device": device,
        "torch_version": torch.__version__,
    }
    run_name = _run_name(commit)
    with mlflow.start_run(experiment_id=_experiment_id(mlflow, EXPERIMENT), run_name=run_name,
                          tags=tags) as run:
        mlflow.log_params(params)
        write_json(run_file, {"run_id": run.info.run_id, "experiment": EXPERIMENT, "run_name": run_name})
        print(f"MLflow run {run.info.run_id} ({run_name}) in {tracking_uri()}")
        yield mlflow


def _run_name(commit: str) -> str:
    return os.environ.get("DVC_EXP_NAME") or f"workspace-{commit[:7]}"


def _derived_run(mlflow, base, params: dict, differing: list[str]):
    """A new run for this pipeline run, carrying over what the earlier stages logged in `base`."""
    client = mlflow.MlflowClient()
    commit = _git_commit()
    tags = {key: value for key, value in base.data.tags.items() if not key.startswith("mlflow.")}
    tags.update({"derived_from_run": base.info.run_id, "changed_params": ", ".join(differing),
                 "dvc_exp_name": os.environ.get("DVC_EXP_NAME") or "(workspace)", "git_commit": commit})
    run = mlflow.start_run(experiment_id=base.info.experiment_id, run_name=_run_name(commit), tags=tags)
    mlflow.log_params({**base.data.params, **{key: str(value) for key, value in params.items()}})
    for key in base.data.metrics:  # the training curves, so that the compare view shows them here too
        history = client.get_metric_history(base.info.run_id, key)
        for start in range(0, len(history), 1000):
            client.log_batch(run.info.run_id, metrics=history[start:start + 1000])
    with tempfile.TemporaryDirectory() as tmp:
        if client.list_artifacts(base.info.run_id):
            mlflow.log_artifacts(mlflow.artifacts.download_artifacts(run_id=base.info.run_id, dst_path=tmp))
    print(f"MLflow run {run.info.run_id} ({run.info.run_name}): {', '.join(differing)} changed since run "
          f"{base.info.run_id}, whose results DVC reused; a new run keeps each experiment's scores apart")
    return run


@contextmanager
def continued_run(run_file: str | Path, params: dict, next_run_file: str | Path | None = None) -> Iterator[object]:
    """Re-open the run that the previous stage logged to (its id is in run_file), so that one pipeline
    run is one MLflow run. If `params` differ from that run's (say only `sample_bn_mode` changed, so
    DVC restored train from its cache), a new run is started instead, with the current params and
    the earlier run's tags, metric histories and artifacts: each experiment keeps its own run, and
    no run's scores are overwritten by another's. next_run_file records the run used, for the next stage."""
    run_file = Path(run_file)
    if not run_file.is_file():
        raise UserError(f"{run_file} is missing: the stage before this one writes it. Run: dvc repro")
    run_id = json.loads(run_file.read_text())["run_id"]
    mlflow = _connect()
    try:
        base = mlflow.get_run(run_id)
    except Exception:
        raise UserError(f"MLflow run {run_id} (from {run_file}) is not in the store {tracking_uri()}. "
                        "Was MLFLOW_TRACKING_URI changed since training? Set it back, or re-train: "
                        "dvc repro -f train") from None
    differing = [key for key, value in params.items() if base.data.params.get(key) != str(value)]
    run = _derived_run(mlflow, base, params, differing) if differing else mlflow.start_run(run_id=run_id)
    with run:
        if next_run_file is not None:
            write_json(next_run_file, {"run_id": run.info.run_id, "experiment": EXPERIMENT,
                                       "run_name": run.info.run_name})
        yield mlflow
