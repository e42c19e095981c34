"""Data-parallel training with torchrun and DDP, on this CPU with gloo and 2 processes."""

import csv

import mlflow
import pytest
import torch
import yaml

from conftest import make_config, make_work_folder, project_params
from dcgan import paths
from dcgan.checkpoint import load_checkpoint
from dcgan.config import load_config
from dcgan.errors import ConfigError
from dcgan.metric_keys import TRAINING as LOGGED
from dcgan.models import model_spec
from test_faults import TINY_FAULTS, run_train

# No BatchNorm and no dropout: the one thing DDP changes on purpose (each process normalises with its
# own share of the batch) is absent, so 2 processes must train what 1 does, up to float rounding.
# amp is off: `auto` decides by a probe in one process and by the CPU flags under DDP.
NO_BATCHNORM = dict(arch="mlp", ngf=32, ndf=32, epochs=5, amp="off")  # bf16: fp32 is the reference


def trained(folder, **params) -> tuple[dict, list[dict], str]:
    make_work_folder(folder, {**TINY_FAULTS, **params})
    result = run_train(folder)
    checkpoint = load_checkpoint(folder / paths.CHECKPOINT, model_spec(make_config(**{**TINY_FAULTS, **params})))
    rows = list(csv.DictReader(open(folder / paths.TRAIN_LOG)))
    return checkpoint, rows, result.stdout


@pytest.mark.slow
def test_two_gloo_processes_train_what_one_process_trains(tmp_path):
    single, single_log, _ = trained(tmp_path / "one", **NO_BATCHNORM)
    parallel, parallel_log, stdout = trained(tmp_path / "two", **NO_BATCHNORM, nproc=2)
    assert "data parallel: 2 processes, 8 images each per step (global batch 16)" in stdout
    for net in ("generator", "discriminator"):
        for name, tensor in single[net].items():
            assert torch.allclose(tensor, parallel[net][name], atol=1e-5, rtol=0), f"{net}.{name}"
    assert parallel["step"] == single["step"] == 20  # the same steps: batch_size is the global batch
    # The logged means are over the whole global batch (averaged over the processes).
    assert [row["step"] for row in parallel_log] == [row["step"] for row in single_log]
    for one, two in zip(single_log, parallel_log):
        for name in LOGGED:
            assert float(two[name]) == pytest.approx(float(one[name]), abs=1e-4), name


@pytest.mark.slow
def test_a_dcgan_on_two_processes_trains_and_logs_once(tmp_path):
    checkpoint, rows, _ = trained(tmp_path / "dcgan", epochs=3, nproc=2)
    assert checkpoint["step"] == 12 and [int(row["step"]) for row in rows] == [5, 10, 12]
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'dcgan' / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["dcgan"], output_format="list")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"  # rank 0 alone talks to MLflow
    assert runs[0].data.params["processes"] == "2"
    history = mlflow.MlflowClient().get_metric_history(runs[0].info.run_id, "gan/loss_d")
    assert [m.step for m in history] == [5, 10, 12]  # each value once, not once per process
    grids = sorted(p.name for p in (tmp_path / "dcgan" / paths.TRAIN_GRIDS).iterdir())
    assert grids == ["step_0000000.png", "step_0000012.png"]


def test_the_global_batch_must_split_evenly_over_the_processes(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({**project_params(), "batch_size": 128, "nproc": 3}))
    with pytest.raises(ConfigError, match="`batch_size` = 128 must split evenly over `nproc` = 3"):
        load_config(tmp_path / "params.yaml")
