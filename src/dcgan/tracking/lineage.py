"""Where a run came from: its source (git commit, DVC experiment), the data it saw, what it changed.

These fill the runs table's Source, Dataset and Description in MLflow, with MLflow's own tag names.
"""

from __future__ import annotations

import getpass
import json
import os
import subprocess
from pathlib import Path

import yaml

from dcgan import paths
from dcgan.config import Config
from dcgan.digests import md5_of
from dcgan.metric_keys import HEADLINE_SCORES


def git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def git_commit() -> str:
    return git("rev-parse", "HEAD") or "unknown"


def experiment_name() -> str | None:
    return os.environ.get("DVC_EXP_NAME") or None


def run_name(commit: str) -> str:
    return experiment_name() or f"workspace-{commit[:7]}"


def baseline_rev() -> str:
    """The commit a DVC experiment started from; HEAD's for a plain `dvc repro`."""
    return os.environ.get("DVC_EXP_BASELINE_REV") or git_commit()


def user() -> str:
    """Who ran it, as the runs table's User column shows: the user signed in to a tracking server, else
    the OS user (MLflow's own default, which MlflowClient.create_run does not apply: it says `unknown`)."""
    return os.environ.get("MLFLOW_TRACKING_USERNAME") or getpass.getuser()


def source_tags(commit: str, source: str) -> dict[str, str]:
    """MLflow's standard source tags (mlflow/utils/mlflow_tags.py), and the DVC experiment's names.
    `source`: what started the run (the stage script, or dvc.yaml for a run derived from another)."""
    tags = {
        "mlflow.source.type": "LOCAL",
        "mlflow.source.name": source,
        "mlflow.source.git.commit": commit,
        "git_commit": commit,
        "mlflow.user": user(),
        "dvc_exp_name": experiment_name() or "(workspace)",
        "dvc_exp_baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV", commit),
    }
    remote = git("config", "--get", "remote.origin.url")
    if remote:
        tags["mlflow.source.git.repoURL"] = remote
    branch = git("rev-parse", "--abbrev-ref", "HEAD")
    if branch and branch != "HEAD":
        tags["mlflow.source.git.branch"] = branch
    return tags


def baseline_params(rev: str | None = None) -> dict | None:
    """params.yaml as committed at `rev` (default: the DVC baseline), as written; None outside git."""
    text = git("show", f"{rev or baseline_rev()}:params.yaml")
    return None if text is None else (yaml.safe_load(text) or {})


def baseline_changes(params: dict, rev: str) -> list[tuple[str, object, object]]:
    """(key, baseline value, this run's value) for each param that differs from params.yaml at `rev`."""
    baseline = baseline_params(rev)
    if baseline is None:
        return []
    return [(key, baseline[key], value) for key, value in params.items()
            if key in baseline and baseline[key] != value]


def describe(cfg: Config, headline: str = "") -> str:
    """The run's description (the `mlflow.note.content` tag, shown as Description): what the run
    changed against its baseline commit's params.yaml, then `headline`."""
    name = experiment_name()
    rev = baseline_rev()
    changes = baseline_changes(cfg.model_dump(), rev)
    what = f"DVC experiment `{name}`" if name else "`dvc repro` in the workspace"
    if changes:
        changed = "; ".join(f"`{key}`: {old} → {new}" for key, old, new in changes)
        text = f"{what}, against its baseline {rev[:7]}: {changed}."
    else:
        text = f"{what}, with the params of its baseline {rev[:7]} (nothing changed)."
    return f"{text}\n\n{headline}" if headline else text


def headline(scores: dict, sample_spread: dict, floor: dict) -> str:
    """The scores a reader looks at first, beside the real-vs-real floor."""
    parts = []
    for name in HEADLINE_SCORES:
        if name in scores:
            spread_text = f" ± {sample_spread[name]:.2g}" if name in sample_spread else ""
            parts.append(f"`{name}` {scores[name]:.4g}{spread_text} (floor {floor[name]:.3g})")
    if not parts:
        return ""
    return ("Scores: " + ", ".join(parts) + ". ± is the sample spread: over resamples of this G's samples, "
            "not over training seeds (compare seeds with dcgan-compare).")


def dataset_entity(cfg: Config, path: Path):
    """One of the pipeline's data files as an MLflow dataset: the data set and split (the file's stem:
    train or test), the digest DVC records for it, and the file it came from."""
    from mlflow.entities import Dataset

    return Dataset(name=f"{cfg.dataset}-{path.stem}", digest=md5_of(path), source_type="local",
                   source=json.dumps({"uri": str(path.resolve()), "dvc_path": str(path)}))


def dataset_inputs(cfg: Config, files: dict[str, Path]) -> list:
    """DatasetInputs for `{context: file}` (contexts: training, evaluation), for MlflowClient.log_inputs."""
    from mlflow.entities import DatasetInput, InputTag

    return [DatasetInput(dataset=dataset_entity(cfg, path),
                         tags=[InputTag(key="mlflow.data.context", value=context)])
            for context, path in files.items()]


TRAINING_DATA = {"training": paths.TRAIN_DATA}
EVALUATION_DATA = {"evaluation": paths.EVAL_TEST_DATA}
