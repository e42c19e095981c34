"""What a pipeline run leaves in MLflow beyond its numbers: G as a model (loaded and served), the data
it saw, where it came from and what it changed, and the experiment marked as model training."""

import json
import subprocess
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
import yaml

from conftest import TINY_PROJECT, generator_server, requires_fashion_mnist
from dcgan import paths
from dcgan.config import load_config
from dcgan.data.normalize import denormalize
from dcgan.io import load_tensors
from dcgan.models import draw_noise
from dcgan.digests import md5_of

pytestmark = [pytest.mark.slow, requires_fashion_mnist]


def workspace_run(copy: Path):
    """The MLflow run of the results in the project's workspace (lower-lr, the last `dvc exp run`)."""
    mlflow.set_tracking_uri(f"sqlite:///{copy / 'mlflow.db'}")
    return mlflow.get_run(json.loads((copy / paths.SAMPLE_MLFLOW_RUN).read_text())["run_id"])


def sample_stage_latents(copy: Path) -> tuple[np.ndarray, torch.Tensor]:
    """The latent vectors the sample stage drew (its first batch), and the images it made of them."""
    cfg = load_config(copy / "params.yaml")
    noise = draw_noise(TINY_PROJECT["n_samples"], cfg, rng=torch.Generator().manual_seed(cfg.seed + 1))
    return noise.reshape(len(noise), cfg.nz).numpy(), load_tensors(copy / paths.SAMPLES)["images"]


def test_the_logged_generator_draws_the_sample_stages_images(project):
    copy, _ = project
    run = workspace_run(copy)
    latents, sampled = sample_stage_latents(copy)
    generator = mlflow.pytorch.load_model(f"runs:/{run.info.run_id}/generator")
    images = denormalize(generator(torch.from_numpy(latents)))
    assert images.shape == sampled.shape
    difference = (images.int() - sampled.int()).abs()
    assert difference.max() <= 1 and (difference == 0).float().mean() > 0.99  # rounding at .5 may differ
    model = mlflow.get_logged_model(run.data.tags["generator_model_uri"].removeprefix("models:/"))
    assert model.source_run_id == run.info.run_id and model.experiment_id == run.info.experiment_id
    assert model.name == "generator" and model.status == "READY"


def test_mlflow_models_serve_answers_latent_vectors_with_images(project):
    copy, env = project
    run = workspace_run(copy)
    latents, sampled = sample_stage_latents(copy)
    env = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{copy / 'mlflow.db'}"}
    with generator_server(f"runs:/{run.info.run_id}/generator", env, cwd=copy) as ask:
        images = np.asarray(ask(latents[:5].tolist()), dtype=np.float32)
    assert images.shape == (5, 1, TINY_PROJECT["image_size"], TINY_PROJECT["image_size"])
    assert images.min() >= -1 and images.max() <= 1  # G's tanh
    served = denormalize(torch.from_numpy(images))
    assert (served.int() - sampled[:5].int()).abs().max() <= 1


def test_each_run_records_its_data_its_source_and_what_it_changed(project):
    copy, _ = project
    run = workspace_run(copy)
    lock = yaml.safe_load((copy / "dvc.lock").read_text())
    recorded = {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])}
    inputs = {d.tags[0].value: d.dataset for d in run.inputs.dataset_inputs}
    assert inputs["training"].digest == recorded[str(paths.TRAIN_DATA)] == md5_of(copy / paths.TRAIN_DATA)
    assert inputs["training"].name == "fashion_mnist-train"
    assert inputs["evaluation"].digest == recorded[str(paths.EVAL_TEST_DATA)]
    assert json.loads(inputs["evaluation"].source)["dvc_path"] == str(paths.EVAL_TEST_DATA)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=copy, capture_output=True, text=True).stdout.strip()
    tags = run.data.tags
    assert tags["mlflow.source.git.commit"] == commit and tags["mlflow.source.name"] == "stages/train.py"
    description = tags["mlflow.note.content"]
    assert description.startswith(f"DVC experiment `lower-lr`, against its baseline {commit[:7]}: `lr`: 0.0002 → 0.0001.")
    assert "`fd_classifier`" in description and "(floor " in description


def test_the_experiment_is_marked_as_model_training(project):
    copy, _ = project
    mlflow.set_tracking_uri(f"sqlite:///{copy / 'mlflow.db'}")
    experiment = mlflow.get_experiment_by_name("dcgan")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
