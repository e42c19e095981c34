"""Faults: kill -9 then resume (bit-identical on the CPU), SIGTERM, a crash with a corrupt checkpoint,
an injected NaN, a full disk, and an MLflow server that goes down mid-run. Nothing is lost."""

import csv
import errno
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import torch
import yaml

import dcgan.train as training
from conftest import ROOT, TINY, free_port, make_config, make_work_folder
from dcgan import paths
from dcgan.checkpoint import load_checkpoint
from dcgan.io import write_json
from dcgan.models import model_spec
from dcgan.tracking import PipelineRun

# TINY as the fault tests run it, with `epochs` named at each call: make_work_folder's 64 images at batch
# 16 are 4 steps an epoch; small enough to be quick, long enough to be killed mid-way.
TINY_FAULTS = {**TINY, "log_every": 5, "sample_every": 20, "eval_every": 20, "checkpoint_every": 10,
               "keep_checkpoints": 2,
               "amp": "off", "channels_last": "off",  # fixed: `auto` could decide two runs apart differently
               "lr_decay_start": 0.5}  # the learning rates fall in the second half: a resumed run must pick that up too


def stage_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "DVC_ROOT")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_train(folder: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "stages" / "train.py")], cwd=folder, env=env or stage_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_train(folder: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, str(ROOT / "stages" / "train.py")], cwd=folder, env=env or stage_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def wait_for_checkpoint(folder: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not list((folder / paths.UNFINISHED_RUNS).glob("*/step_*.pt")):
        assert process.poll() is None, f"train ended before its first checkpoint:\n{process.communicate()}"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)


def kill_9_after_a_checkpoint(folder: Path) -> subprocess.Popen:
    """The train stage in `folder`, killed with SIGKILL a little after its first checkpoint."""
    process = start_train(folder)
    wait_for_checkpoint(folder, process)
    time.sleep(0.3)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return process


def weights(folder: Path) -> dict:
    cfg = make_config(**TINY_FAULTS)
    checkpoint = load_checkpoint(folder / paths.CHECKPOINT, model_spec(cfg))
    return {f"{net}.{k}": v for net in ("generator", "discriminator", "opt_g", "opt_d")
            for k, v in flatten(checkpoint[net]).items()}


def flatten(state, prefix=""):
    if isinstance(state, dict):
        return {k: v for key, value in state.items() for k, v in flatten(value, f"{prefix}{key}.").items()}
    if isinstance(state, list):
        return {k: v for i, value in enumerate(state) for k, v in flatten(value, f"{prefix}{i}.").items()}
    return {prefix: state}


def assert_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), f"{key} differs"
        else:
            assert a[key] == b[key], f"{key}: {a[key]} != {b[key]}"


def log_values(folder: Path) -> list[list[str]]:
    """The training log without its wall-clock column."""
    rows = list(csv.DictReader(open(folder / paths.TRAIN_LOG)))
    return [[value for key, value in row.items() if key != "seconds"] for row in rows]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    folder = make_work_folder(tmp_path_factory.mktemp("uninterrupted"), {**TINY_FAULTS, "epochs": 150})
    run_train(folder)
    return folder


def test_kill_9_then_resume_ends_bit_identical_to_an_uninterrupted_run(tmp_path, uninterrupted):
    folder = make_work_folder(tmp_path / "killed", {**TINY_FAULTS, "epochs": 150})  # 600 steps
    process = kill_9_after_a_checkpoint(folder)
    assert process.returncode == -signal.SIGKILL
    run_id = yaml.safe_load((folder / paths.MLFLOW_RUN).read_text())["run_id"]
    assert not (folder / paths.CHECKPOINT).exists()

    resumed = run_train(folder)
    step = int(resumed.stdout.split("resuming from step ")[1].split()[0])
    assert 0 < step < 600  # it was killed mid-way, and resumed from there, not from the start
    assert_identical(weights(folder), weights(uninterrupted))
    assert log_values(folder) == log_values(uninterrupted)  # every logged value, none lost or repeated
    assert sorted(p.name for p in (folder / paths.TRAIN_GRIDS).iterdir()) == \
        sorted(p.name for p in (uninterrupted / paths.TRAIN_GRIDS).iterdir())
    assert not list((folder / paths.UNFINISHED_RUNS).iterdir())  # the finished run's folder is gone

    # The same MLflow run continued, its steps too.
    assert yaml.safe_load((folder / paths.MLFLOW_RUN).read_text())["run_id"] == run_id
    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    run = mlflow.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["resumed_at_step"] == str(step)
    logged_steps = {m.step for m in mlflow.MlflowClient().get_metric_history(run_id, "gan/loss_d")}
    assert logged_steps == set(range(5, 601, 5))
    assert len(mlflow.search_runs(experiment_names=["dcgan"], output_format="list")) == 1


def test_a_killed_training_resumes_after_a_param_that_does_not_shape_the_weights_changed(tmp_path, uninterrupted):
    """n_samples, kid_subsets, ... are read by sample and evaluate only (not config.WEIGHTS_PARAMS):
    changing them between the kill and the next run must not restart the training."""
    folder = make_work_folder(tmp_path / "killed", {**TINY_FAULTS, "epochs": 150})
    kill_9_after_a_checkpoint(folder)

    params = yaml.safe_load((folder / "params.yaml").read_text())
    (folder / "params.yaml").write_text(yaml.safe_dump({**params, "n_samples": 5000, "kid_subsets": 7,
                                                        "sample_bn_mode": "train", "eval_image_size": 16}))
    resumed = run_train(folder)
    assert "resuming from step " in resumed.stdout, resumed.stdout
    step = int(resumed.stdout.split("resuming from step ")[1].split()[0])
    assert 0 < step < 600
    assert_identical(weights(folder), weights(uninterrupted))
    assert log_values(folder) == log_values(uninterrupted)


def test_sigterm_writes_a_checkpoint_marks_the_run_killed_and_exits_non_zero(tmp_path, uninterrupted):
    folder = make_work_folder(tmp_path / "terminated", {**TINY_FAULTS, "epochs": 150})
    process = start_train(folder)
    wait_for_checkpoint(folder, process)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, stdout + stderr
    assert "Traceback" not in stderr
    step = int(stderr.split("stopped by SIGTERM at step ")[1].split()[0])
    assert "Run `dvc repro` to resume" in stderr
    checkpoints = sorted((folder / paths.UNFINISHED_RUNS).glob("*/step_*.pt"))
    assert int(checkpoints[-1].stem.removeprefix("step_")) == step  # written at the step it stopped
    run_id = yaml.safe_load((folder / paths.MLFLOW_RUN).read_text())["run_id"]
    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    assert mlflow.get_run(run_id).info.status == "KILLED"

    run_train(folder)
    assert_identical(weights(folder), weights(uninterrupted))
    assert mlflow.get_run(run_id).info.status == "FINISHED"


def trained_reference(tmp_path: Path, monkeypatch) -> Path:
    """40 steps of TINY_FAULTS without a fault, in a folder and MLflow store of their own."""
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    folder = make_work_folder(tmp_path / "reference", {**TINY_FAULTS, "epochs": 10})
    monkeypatch.chdir(folder)
    training.train(make_config(**{**TINY_FAULTS, "epochs": 10}))
    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # mlflow.set_tracking_uri exported this folder's store
    return folder


def test_a_crash_with_a_corrupt_last_checkpoint_resumes_from_the_one_before(tmp_path, monkeypatch):
    reference = trained_reference(tmp_path, monkeypatch)
    crashed = make_work_folder(tmp_path / "crashed", {**TINY_FAULTS, "epochs": 10})
    monkeypatch.chdir(crashed)
    original, calls = training.GANStep.step, []

    def crash_at_step_35(self, *args):
        calls.append(1)
        if len(calls) == 35:
            raise RuntimeError("injected crash (power loss)")
        return original(self, *args)

    monkeypatch.setattr(training.GANStep, "step", crash_at_step_35)
    with pytest.raises(RuntimeError, match="injected crash"):
        training.train(make_config(**{**TINY_FAULTS, "epochs": 10}))
    checkpoints = sorted(paths.UNFINISHED_RUNS.glob("*/step_*.pt"))
    # every 10 steps and at each epoch end (4 steps), the last K = 2 kept
    assert [p.name for p in checkpoints] == ["step_00000030.pt", "step_00000032.pt"]
    checkpoints[-1].write_bytes(checkpoints[-1].read_bytes()[:1000])  # truncated, as a failing disk would

    monkeypatch.setattr(training.GANStep, "step", original)
    training.train(make_config(**{**TINY_FAULTS, "epochs": 10}))
    assert_identical(weights(crashed), weights(reference))


def test_a_stop_while_publishing_a_completed_training_publishes_on_the_next_run(tmp_path, monkeypatch, capsys):
    """A stage's starter can die after its last step (lifetime.py): the outputs come on the next run."""
    reference = trained_reference(tmp_path, monkeypatch)
    stopped = make_work_folder(tmp_path / "stopped", {**TINY_FAULTS, "epochs": 10})
    monkeypatch.chdir(stopped)
    original = training.training_curves

    def stopped_mid_publish(*args):
        raise RuntimeError("injected stop while publishing")

    monkeypatch.setattr(training, "training_curves", stopped_mid_publish)
    with pytest.raises(RuntimeError, match="injected stop"):
        training.train(make_config(**{**TINY_FAULTS, "epochs": 10}))
    run_id = yaml.safe_load((stopped / paths.MLFLOW_RUN).read_text())["run_id"]
    assert sorted(p.name for p in paths.UNFINISHED_RUNS.glob("*/step_*.pt"))[-1] == "step_00000040.pt"

    monkeypatch.setattr(training, "training_curves", original)
    capsys.readouterr()
    training.train(make_config(**{**TINY_FAULTS, "epochs": 10}))
    assert "resuming from step 40 of 40" in capsys.readouterr().out  # no step trained again
    assert not list(paths.UNFINISHED_RUNS.iterdir())
    assert (stopped / paths.TRAIN_CURVES).is_file()
    assert_identical(weights(stopped), weights(reference))
    assert yaml.safe_load((stopped / paths.MLFLOW_RUN).read_text())["run_id"] == run_id
    mlflow.set_tracking_uri(f"sqlite:///{stopped / 'mlflow.db'}")
    assert mlflow.get_run(run_id).info.status == "FINISHED"


def test_an_injected_nan_stops_training_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.chdir(make_work_folder(tmp_path / "nan", {**TINY_FAULTS, "epochs": 10}))
    original, calls = training.GANStep.step, []

    def nan_from_step_23(self, *args):
        calls.append(1)
        values = original(self, *args)
        if len(calls) >= 23:  # as an exploding loss would: the weights go too
            with torch.no_grad():
                next(self.generator.parameters()).fill_(float("nan"))
            return values * float("nan")
        return values

    monkeypatch.setattr(training.GANStep, "step", nan_from_step_23)
    with pytest.raises(training.TrainingDiverged, match="not finite at step 23 of 40") as error:
        training.train(make_config(**{**TINY_FAULTS, "epochs": 10}))
    assert "step_00000020.pt" in str(error.value) and "lower the learning rates" in str(error.value)
    kept = sorted(paths.UNFINISHED_RUNS.glob("*/step_*.pt"))
    assert [p.name for p in kept] == ["step_00000016.pt", "step_00000020.pt"]  # none from step 23 on
    good = load_checkpoint(kept[-1], model_spec(make_config(**TINY_FAULTS)))
    assert all(torch.isfinite(t).all() for t in good["generator"].values() if t.is_floating_point())
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'nan' / 'mlflow.db'}")
    run = mlflow.get_run(good["mlflow_run_id"])
    assert run.info.status == "FAILED" and "not finite at step 23" in run.data.tags["failure"]


def test_a_full_disk_while_writing_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    target = tmp_path / "reports" / "metrics.json"
    write_json(target, {"fd": 1.0})

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)  # the data of the new file cannot reach the disk
    with pytest.raises(OSError, match="No space left"):
        write_json(target, {"fd": 2.0})
    assert yaml.safe_load(target.read_text()) == {"fd": 1.0}
    assert [p.name for p in target.parent.iterdir()] == ["metrics.json"]  # no temporary file left behind


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_files_written_atomically_get_the_mode_of_any_new_file(tmp_path, umask):
    """Not mkstemp's private 0600: colleagues sharing the project read its reports as any other file."""
    previous = os.umask(umask)
    try:
        write_json(tmp_path / "metrics.json", {"fd": 1.0})
        (tmp_path / "plain.json").write_text("{}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "metrics.json").stat().st_mode) == stat.S_IMODE((tmp_path / "plain.json").stat().st_mode)
    assert stat.S_IMODE((tmp_path / "metrics.json").stat().st_mode) == 0o666 & ~umask


class MlflowServer:
    """`mlflow server` on 127.0.0.1 with a SQLite backend and an artifact root, stopped and started at will."""

    def __init__(self, folder: Path):
        self.folder, self.port, self.process = folder, free_port(), None
        self.uri = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{self.folder / 'mlflow.db'}",
             "--artifacts-destination", str(self.folder / "artifacts"), "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 90
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                assert self.process.poll() is None, "mlflow server did not start"
                assert time.monotonic() < deadline, "mlflow server did not answer"
                time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)  # as a crashed server: no goodbye
            self.process.wait()


@pytest.mark.slow
def test_an_mlflow_server_down_mid_run_never_stops_training_and_gets_everything_when_back(tmp_path, monkeypatch,
                                                                                           capsys):
    server = MlflowServer(tmp_path / "server")
    server.start()
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
        monkeypatch.delenv("DVC_ROOT", raising=False)
        monkeypatch.setattr(PipelineRun, "retry_seconds", 0.0)
        monkeypatch.chdir(make_work_folder(tmp_path / "project", {**TINY_FAULTS, "epochs": 10}))
        original, calls = training.GANStep.step, []

        def outage_from_step_8_to_27(self, *args):
            calls.append(1)
            if len(calls) == 8:
                server.stop()
            if len(calls) == 27:
                server.start()
            return original(self, *args)

        monkeypatch.setattr(training.GANStep, "step", outage_from_step_8_to_27)
        training.train(make_config(**{**TINY_FAULTS, "epochs": 10}))
        captured = capsys.readouterr()
        assert captured.err.count("is unreachable") == 1  # said once, not at every step
        assert "MLflow is reachable again" in captured.out
        check_everything_arrived(server.uri)
    finally:
        server.stop()


def check_everything_arrived(uri: str) -> None:
    rows = list(csv.DictReader(open(paths.TRAIN_LOG)))
    assert [int(row["step"]) for row in rows] == list(range(5, 41, 5))

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["dcgan"], output_format="list")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    client = mlflow.MlflowClient()
    history = client.get_metric_history(runs[0].info.run_id, "gan/loss_d")
    assert sorted(m.step for m in history) == list(range(5, 41, 5))  # the outage's values arrived too
    for metric in history:
        logged = next(float(row["loss_d"]) for row in rows if int(row["step"]) == metric.step)
        assert metric.value == pytest.approx(logged, abs=1e-6)
    grids = [a.path for a in client.list_artifacts(runs[0].info.run_id, "train_grids")]
    assert grids == ["train_grids/step_0000000.png", "train_grids/step_0000020.png", "train_grids/step_0000040.png"]
